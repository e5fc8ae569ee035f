"""A season run's outputs as the review app sees them: portfolio, farmers, parcels, history.

Reads what :func:`flows.season.season` writes into ``out_dir``: ``run.json``,
``stages/<stage>/assessment.parquet`` and ``curves.parquet`` (the latest stage present is the
one shown), the lender's parcels (GeoParquet in UTM, from the run's archive) and the decision
ledger (``ledger.sqlite`` or ``ledger_url``), which stays the source of truth for limits,
reasons and overrides. Tables are re-read when their file changes, so a running app follows
the next stage's batch without a restart.

Frames: parcels are kept in their UTM CRS (metres, areas in ha) and served to the browser as
GeoJSON in EPSG:4326 (lon, lat). Money in EUR.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import pandas as pd

from flows.report import CROP_COLORS, HEALTH_COLORS, current_limits_table, override_columns
from geo.errors import TableError
from geo.types import STAGES, GrowthStage, Season
from scoring.layout import RunLayout
from scoring.ledger import STAGE_ORDER, Ledger
from scoring.policy import PolicyConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Columns of the portfolio table (one row per farmer), in display order.
PORTFOLIO_COLUMNS: tuple[str, ...] = (
    "farmer_id",
    "region",
    "parcels",
    "declared_crops",
    "detected_crops",
    "stage",
    "action",
    "limit_eur",
    "source",
    "previous_limit_eur",
    "change_eur",
    "drawn_eur",
    "pd",
    "pd_band",
    "flags",
    "needs_review",
    "officer",
    "set_by",
    "override_reason",
    "overridden_at",
)


def clean(value: Any) -> Any:
    """A JSON-safe scalar: NaN/NaT -> None, numpy scalars -> Python, dates -> ISO text."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NaT:
        return None
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``df`` as JSON-safe dicts."""
    return [{str(k): clean(v) for k, v in row.items()} for row in df.to_dict("records")]


@dataclass(frozen=True)
class Filters:
    """Portfolio filters, as given in the page's query string."""

    region: str | None = None
    crop: str | None = None
    flagged: bool = False
    review: bool = False

    def apply(self, portfolio: pd.DataFrame) -> pd.DataFrame:
        """The farmers of ``portfolio`` that pass every filter set."""
        keep = pd.Series(True, index=portfolio.index)
        if self.region:
            keep &= portfolio["region"] == self.region
        if self.crop:
            keep &= portfolio.apply(
                lambda r: self.crop in r["declared_crops"] or self.crop in r["detected_crops"],
                axis=1,
            )
        if self.flagged:
            keep &= portfolio["flags"].map(bool)
        if self.review:
            keep &= portfolio["needs_review"].astype(bool)
        return portfolio[keep]


class _FileCache:
    """Values derived from files, recomputed when any file's mtime or size changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[tuple[Any, ...], Any]] = {}

    def get(self, key: str, files: list[Path], build: Callable[[], T]) -> T:
        stamp = tuple(
            (str(p), p.stat().st_mtime_ns, p.stat().st_size) if p.exists() else (str(p),)
            for p in files
        )
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] == stamp:
                return hit[1]  # type: ignore[no-any-return]
            value = build()
            self._items[key] = (stamp, value)
            return value


class SeasonOutputs:
    """Read access to one season run's outputs, plus the ledger for overrides.

    Args:
        out_dir: the run's output folder (``--out`` of the season command).
        ledger_url: SQLAlchemy URL of the ledger; default the run's own
            (``run.json`` params ``ledger_url``, else ``sqlite:///<out_dir>/ledger.sqlite``).
        season: the season year shown.
        cap_eur: the largest limit an override may set; default the policy's cap.

    Raises:
        TableError: ``out_dir`` holds no season run (no ``stages/*/assessment.parquet``).
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        ledger_url: str | None = None,
        season: int = 2026,
        cap_eur: float | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.layout = RunLayout(self.out_dir)
        self.season = Season(season)
        self.run = self._read_run()
        run_season = self.run.get("params", {}).get("season")
        if run_season is not None and int(run_season) != self.season.year:
            log.warning(
                "review app shows season %s but %s was run for season %s",
                self.season,
                self.layout.run_json,
                run_season,
            )
        self.cap_eur = float(cap_eur if cap_eur is not None else PolicyConfig().cap_eur)
        url = ledger_url or self.run.get("params", {}).get("ledger_url")
        url = url or self.layout.ledger_url()
        self.ledger = Ledger(url, cap_eur=self.cap_eur)
        self.ledger.create()
        self._cache = _FileCache()
        if not self.stages():
            raise TableError(
                f"{self.out_dir}: no stages/<stage>/assessment.parquet found; run a season "
                "first (`cropcredit demo --out ...` or `cropcredit season ...`)"
            )
        log.info(
            "review data: %s, stages %s, ledger %s",
            self.out_dir,
            ", ".join(s.value for s in self.stages()),
            self.ledger.safe_url,
        )

    # -- files --------------------------------------------------------------------------------
    def _read_run(self) -> dict[str, Any]:
        path = self.layout.run_json
        if not path.exists():
            log.warning("%s missing; using the default parcel and ledger paths", path)
            return {}
        try:
            run: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise TableError(
                f"{path}: not valid JSON (line {exc.lineno}); re-run the season to rewrite it"
            ) from None
        return run

    @property
    def run_id(self) -> str:
        """The run's id, or ``"?"`` when run.json is missing."""
        return str(self.run.get("run_id", "?"))

    def parcels_path(self) -> Path:
        """The lender's parcel file the run used (run.json params), resolved.

        Raises:
            TableError: the file cannot be found.
        """
        params = self.run.get("params", {})
        named = params.get("parcels")
        archive = params.get("imagery", {}).get("archive")
        candidates = [Path(named)] if named else []
        if archive:
            candidates.append(Path(archive) / "parcels.parquet")
        candidates.append(self.out_dir / "archive" / "parcels.parquet")
        for path in candidates:
            for where in (path, self.out_dir / path, self.out_dir.parent / path):
                if where.exists():
                    return where
        raise TableError(
            f"{self.out_dir}: the parcels file is missing (looked for "
            f"{', '.join(str(p) for p in candidates)}); keep the run's archive beside it"
        )

    def stages(self) -> list[GrowthStage]:
        """Stages with an assessment on disk, in season order."""
        return [s for s in STAGES if self.layout.assessment(s).exists()]

    def latest_stage(self) -> GrowthStage:
        """The last stage assessed."""
        return self.stages()[-1]

    def assessment(self, stage: GrowthStage | None = None) -> pd.DataFrame:
        """One row per parcel at ``stage`` (default the latest), contract of DESIGN.md."""
        path = self.layout.assessment(stage or self.latest_stage())
        return self._cache.get(f"assessment:{path}", [path], lambda: pd.read_parquet(path))

    def curves(self, stage: GrowthStage | None = None) -> pd.DataFrame:
        """Index curves per parcel and dekad at ``stage`` (default the latest)."""
        path = self.layout.curves(stage or self.latest_stage())

        def build() -> pd.DataFrame:
            if not path.exists():
                return pd.DataFrame(columns=["parcel_id", "dekad", "ndvi", "ref_ndvi"])
            df = pd.read_parquet(path)
            df["dekad"] = pd.to_datetime(df["dekad"]).dt.date
            return df.sort_values(["parcel_id", "dekad"]).reset_index(drop=True)

        return self._cache.get(f"curves:{path}", [path], build)

    def parcels(self) -> gpd.GeoDataFrame:
        """The lender's parcels in their UTM CRS (parcel_id, farmer_id, geometry, ...)."""
        path = self.parcels_path()

        def build() -> gpd.GeoDataFrame:
            gdf = gpd.read_parquet(path)
            gdf["parcel_id"] = gdf["parcel_id"].astype(str)
            gdf["farmer_id"] = gdf["farmer_id"].astype(str)
            return gdf

        return self._cache.get(f"parcels:{path}", [path], build)

    def rejects(self) -> list[dict[str, Any]]:
        """Every parcel and farmer line rejected at onboarding, with its reason (the latest
        stage's ``summary.json`` ``rejects``; empty when the run wrote none)."""
        path = self.layout.summary(self.latest_stage())

        def build() -> list[dict[str, Any]]:
            if not path.exists():
                return []
            try:
                listed = json.loads(path.read_text(encoding="utf-8")).get("rejects", [])
            except (json.JSONDecodeError, AttributeError):
                log.warning("%s: not a stage summary; no rejects shown", path)
                return []
            return [
                {k: str(r.get(k) or "") for k in ("parcel_id", "farmer_id", "file", "error")}
                for r in listed
                if isinstance(r, dict)
            ]

        return self._cache.get(f"rejects:{path}", [path], build)

    # -- portfolio ----------------------------------------------------------------------------
    def portfolio(self) -> pd.DataFrame:
        """One row per farmer with a decision: current limit, last change, PD, flags, review.

        ``needs_review`` is the latest decision's, cleared once an officer has recorded an
        override after it (the officer has reviewed the farmer).
        """
        history = self.ledger.decisions(self.season)
        if history.empty:
            return pd.DataFrame(columns=list(PORTFOLIO_COLUMNS))
        latest = history.groupby("farmer_id").tail(1)
        current = {
            str(r["farmer_id"]): r
            for r in self.ledger.current_limits(self.season).to_dict("records")
        }
        drawn = {str(k): float(v) for k, v in self.ledger.drawn(self.season).items()}
        crops = {
            str(r["farmer_id"]): r
            for r in self.assessment()
            .groupby("farmer_id")
            .agg(
                region=("region", "first"),
                parcels=("parcel_id", "nunique"),
                declared_crops=("declared_crop", lambda s: sorted(set(map(str, s)))),
                detected_crops=("detected_crop", lambda s: sorted(set(map(str, s)))),
            )
            .reset_index()
            .to_dict("records")
        }
        rows = []
        for d in latest.to_dict("records"):
            farmer_id = str(d["farmer_id"])
            cur = current.get(farmer_id)
            info = crops.get(farmer_id, {})
            source = str(cur["source"]) if cur is not None else "decision"
            prev = clean(d["previous_limit_eur"])
            rows.append(
                {
                    "farmer_id": farmer_id,
                    "region": str(info.get("region", "")),
                    "parcels": int(info.get("parcels", 0)),
                    "declared_crops": list(info.get("declared_crops", [])),
                    "detected_crops": list(info.get("detected_crops", [])),
                    "stage": str(d["stage"]),
                    "action": str(d["action"]),
                    "limit_eur": float(cur["limit_eur"] if cur is not None else d["limit_eur"]),
                    "source": source,
                    "previous_limit_eur": None if prev is None else float(prev),
                    "change_eur": None if prev is None else float(d["limit_eur"]) - float(prev),
                    "drawn_eur": drawn.get(farmer_id, float(d["drawn_eur"])),
                    "pd": float(d["pd"]),
                    "pd_band": str(d["pd_band"]),
                    "flags": list(d["flags"]),
                    "needs_review": bool(d["needs_review"]) and source != "override",
                    "officer": cur["officer"] if cur is not None and source == "override" else None,
                    **override_columns(cur if source == "override" else None),
                }
            )
        return pd.DataFrame(rows, columns=list(PORTFOLIO_COLUMNS))

    def limits_export(self) -> pd.DataFrame:
        """Current limits for the core-banking system, live from the ledger (overrides
        included), in the same columns as the run's ``limits.csv``."""
        history = self.ledger.decisions(self.season)
        current = self.ledger.current_limits(self.season)
        if history.empty:
            return current
        return current_limits_table(history, current, self.parcels())

    # -- one farmer ---------------------------------------------------------------------------
    def farmer_parcels(self, farmer_id: str) -> gpd.GeoDataFrame:
        """The farmer's parcels (UTM) joined with their latest assessment row."""
        parcels = self.parcels()
        own = parcels[parcels["farmer_id"] == farmer_id][["parcel_id", "geometry"]]
        table = self.assessment()
        rows = table[table["farmer_id"] == farmer_id]
        merged = own.merge(rows, on="parcel_id", how="outer")
        merged = gpd.GeoDataFrame(merged, geometry="geometry", crs=parcels.crs)
        return merged.sort_values("parcel_id").reset_index(drop=True)

    def farmer_geojson(self, farmer_id: str) -> dict[str, Any]:
        """The farmer's parcels as a GeoJSON FeatureCollection in EPSG:4326 with map styles."""
        gdf = self.farmer_parcels(farmer_id)
        gdf = gdf[gdf.geometry.notna()]
        keep = [
            "parcel_id",
            "declared_crop",
            "detected_crop",
            "confidence",
            "crop_fraction",
            "declared_area_ha",
            "area_ha",
            "planted_area_ha",
            "planted_area_lo_ha",
            "planted_area_hi_ha",
            "observed_fraction",
            "ndvi_last",
            "health_z",
            "ndre_z",
            "ndmi_z",
            "health_class",
            "health_since",
            "growth_stage",
            "as_of",
        ]
        wgs = gdf.to_crs("EPSG:4326")
        features = []
        for row, geom in zip(
            records(wgs[[c for c in keep if c in wgs]]), wgs.geometry, strict=True
        ):
            row["fill"] = CROP_COLORS.get(str(row.get("detected_crop")), CROP_COLORS["unknown"])
            row["outline"] = HEALTH_COLORS.get(
                str(row.get("health_class")), HEALTH_COLORS["unknown"]
            )
            features.append(
                {"type": "Feature", "properties": row, "geometry": geom.__geo_interface__}
            )
        return {"type": "FeatureCollection", "features": features}

    def farmer_curves(self, farmer_id: str) -> dict[str, list[dict[str, Any]]]:
        """Per parcel, its index curve over the season against the crop's reference."""
        own = set(self.farmer_parcels(farmer_id)["parcel_id"])
        curves = self.curves()
        curves = curves[curves["parcel_id"].isin(own)]
        cols = [
            c
            for c in ("dekad", "ndvi", "ndre", "ndmi", "valid_fraction", "ref_ndvi", "ref_ndvi_sd")
            if c in curves
        ]
        return {
            str(pid): records(rows[cols]) for pid, rows in curves.groupby("parcel_id", sort=True)
        }

    def history(self, farmer_id: str) -> list[dict[str, Any]]:
        """The farmer's limit history: each stage's decision, with officers' overrides placed
        after the decision they followed, oldest first."""
        dec = self.ledger.decisions(self.season, farmer_id)
        ovr = self.ledger.overrides(self.season, farmer_id)
        entries: list[dict[str, Any]] = []
        for d in dec.to_dict("records"):
            entries.append(
                {
                    "kind": "decision",
                    "stage": d["stage"],
                    "order": STAGE_ORDER.get(d["stage"], 99),
                    "recorded_at": pd.Timestamp(d["recorded_at"]),
                    "action": d["action"],
                    "limit_eur": float(d["limit_eur"]),
                    "previous_limit_eur": clean(d["previous_limit_eur"]),
                    "drawn_eur": float(d["drawn_eur"]),
                    "pd": float(d["pd"]),
                    "pd_band": d["pd_band"],
                    "reasons": list(d["reasons"]),
                    "flags": list(d["flags"]),
                    "counterfactual": d["counterfactual"],
                    "needs_review": bool(d["needs_review"]),
                    "run_id": d["run_id"],
                    "model_version": d["model_version"],
                    "policy_version": d["policy_version"],
                }
            )
        for o in ovr.to_dict("records"):
            when = pd.Timestamp(o["recorded_at"])
            before = [e for e in entries if e["kind"] == "decision" and e["recorded_at"] <= when]
            after = max(before, key=lambda e: (e["order"], e["recorded_at"]), default=None)
            entries.append(
                {
                    "kind": "override",
                    "id": int(o["id"]),
                    "stage": after["stage"] if after else "",
                    "order": after["order"] if after else -1,
                    "recorded_at": when,
                    "action": "override",
                    "limit_eur": float(o["limit_eur"]),
                    "reason": o["reason"],
                    "officer": o["officer"],
                }
            )
        entries.sort(key=lambda e: (e["order"], e["kind"] == "override", e["recorded_at"]))
        for e in entries:
            e["recorded_at"] = e["recorded_at"].isoformat(timespec="seconds")
            e.pop("order")
        return entries
