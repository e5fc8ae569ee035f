"""A tiny hand-made season run for the review app tests (no imagery pipeline, no Prefect).

:func:`write_tiny_run` writes what :func:`flows.season.season` would: ``run.json``, the
archive's ``parcels.parquet`` (UTM 31N), three stages of ``assessment.parquet`` /
``curves.parquet`` / ``decisions.parquet``, a sqlite ledger filled through
``Ledger.record_decisions`` and a 48 x 48 px composite cached as ``.npz``.
:func:`write_report_with_ids` writes the same run with a lender's ids of choice (HTML, say)
and the static report over it, as :func:`flows.report.write_report` makes it.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from shapely.geometry import box

from geo.composite import Composite
from geo.indices import BAND_INDEX
from geo.types import BANDS, CROPS, GrowthStage, Season
from scoring.ledger import Ledger

SEASON = Season(2026)
CRS = "EPSG:32631"
X0, Y0, PX, SIZE = 288_000.0, 5_178_000.0, 10.0, 48
AS_OF = {
    GrowthStage.PRE_SOWING: dt.date(2026, 2, 20),
    GrowthStage.SOWING: dt.date(2026, 4, 20),
    GrowthStage.VEGETATIVE: dt.date(2026, 5, 31),
}

#: parcel_id, farmer_id, region, declared crop, detected crop, pixel box (col0, row0, col1, row1)
PARCELS: tuple[tuple[str, str, str, str, str, tuple[int, int, int, int]], ...] = (
    ("P-01", "F-001", "north", "maize", "maize", (4, 4, 20, 16)),
    ("P-02", "F-001", "north", "winter_cereals", "grassland", (22, 4, 40, 14)),
    ("P-03", "F-002", "north", "winter_cereals", "winter_cereals", (4, 20, 16, 40)),
    ("P-04", "F-002", "north", "rapeseed", "rapeseed", (18, 20, 30, 32)),
    ("P-05", "F-002", "north", "sunflower", "sunflower", (32, 18, 44, 30)),
    ("P-06", "F-003", "south", "potato", "potato", (20, 36, 36, 46)),
)
HEALTH = {
    "P-01": ("good", 0.3),
    "P-02": ("stressed", -2.1),
    "P-03": ("good", 0.1),
    "P-04": ("watch", -1.1),
    "P-05": ("good", 0.4),
    "P-06": ("failed", -3.2),
}


@dataclass(frozen=True)
class TinyRun:
    """Where the tiny run lies and what it holds."""

    out: Path
    ledger_url: str
    parcels: gpd.GeoDataFrame
    farmers: tuple[str, ...]
    composite_path: Path


def _geometry(pixels: tuple[int, int, int, int]) -> Any:
    c0, r0, c1, r1 = pixels
    return box(X0 + c0 * PX, Y0 - r1 * PX, X0 + c1 * PX, Y0 - r0 * PX)


def parcels_frame() -> gpd.GeoDataFrame:
    """The tiny run's parcels, GeoParquet-ready, in UTM 31N."""
    rows = [
        {
            "parcel_id": p,
            "farmer_id": f,
            "region": r,
            "declared_crop": c,
            "declared_area_ha": round(_geometry(b).area / 1e4 * 1.02, 2),
            "geometry": _geometry(b),
        }
        for p, f, r, c, _d, b in PARCELS
    ]
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)


def _assessment(stage: GrowthStage, parcels: gpd.GeoDataFrame) -> pd.DataFrame:
    rows = []
    for (pid, fid, region, declared, detected, _b), geom in zip(
        PARCELS, parcels.geometry, strict=True
    ):
        area = geom.area / 1e4
        health, z = HEALTH[pid] if stage != GrowthStage.PRE_SOWING else ("unknown", float("nan"))
        row: dict[str, Any] = {
            "parcel_id": pid,
            "farmer_id": fid,
            "region": region,
            "declared_crop": declared,
            "declared_area_ha": round(area * 1.02, 2),
            "area_ha": area,
            "detected_crop": detected,
            "confidence": 0.62 if detected != declared else 0.91,
            "crop_fraction": 0.88,
            "planted_area_ha": area * 0.95,
            "planted_area_lo_ha": area * 0.9,
            "planted_area_hi_ha": area,
            "observed_fraction": 0.8,
            "ndvi_last": 0.55,
            "health_z": z,
            "ndre_z": z + 0.25,
            "ndmi_z": z - 0.5,
            "health_class": health,
            "health_since": dt.date(2026, 5, 11) if health in ("stressed", "failed") else None,
            "growth_stage": stage.value,
            "as_of": AS_OF[stage],
        }
        for c in CROPS:
            row[f"frac_{c}"] = 0.88 if c == detected else 0.012
        rows.append(row)
    return pd.DataFrame(rows)


def _curves(stage: GrowthStage) -> pd.DataFrame:
    rows = []
    days = SEASON.dekads()
    for k, (pid, *_rest) in enumerate(PARCELS):
        for i, d in enumerate(days):
            ref = 0.2 + 0.6 * np.exp(-(((i - 20) / 6.0) ** 2))
            seen = d <= AS_OF[stage]
            obs = ref - (0.15 if HEALTH[pid][0] in ("stressed", "failed") and i > 17 else 0.0)
            rows.append(
                {
                    "parcel_id": pid,
                    "dekad": d,
                    "ndvi": float(obs + 0.01 * k) if seen else np.nan,
                    "ndre": float(obs * 0.6) if seen else np.nan,
                    "ndmi": float(obs * 0.3) if seen else np.nan,
                    "valid_fraction": (0.0 if i % 4 == 3 else 0.9) if seen else 0.0,
                    "ref_ndvi": float(ref),
                    "ref_ndvi_sd": 0.08,
                }
            )
    return pd.DataFrame(rows)


def _decisions(stage: GrowthStage, previous: dict[str, float] | None) -> pd.DataFrame:
    base = {"F-001": 42_000.0, "F-002": 65_000.0, "F-003": 18_000.0}
    rows = []
    for fid, limit in base.items():
        prev = None if previous is None else previous[fid]
        new = limit
        action = "set"
        flags: list[str] = []
        review = False
        if stage == GrowthStage.VEGETATIVE and fid == "F-001":
            new, action, flags, review = limit, "hold", ["wrong_crop:P-02"], True
        elif stage == GrowthStage.VEGETATIVE and fid == "F-003":
            new, action, flags = 9_000.0, "cut", ["failed:P-06"]
        elif prev is not None:
            action = "keep"
        rows.append(
            {
                "farmer_id": fid,
                "stage": stage.value,
                "limit_eur": new,
                "previous_limit_eur": prev,
                "drawn_eur": 0.0 if stage == GrowthStage.PRE_SOWING else 5_000.0,
                "action": action,
                "pd": 0.031 if fid != "F-003" else 0.094,
                "pd_band": "B" if fid != "F-003" else "C",
                "reasons": [
                    f"{stage.value}: farm {fid} funding need EUR {new:,.0f}",
                    "debt service low against revenue (lowers risk)",
                ],
                "flags": flags,
                "counterfactual": f"verifying the declared area of {fid} would raise the limit",
                "needs_review": review,
                "evidence": {"as_of": AS_OF[stage], "observed_fraction": 0.8},
            }
        )
    return pd.DataFrame(rows)


def composite() -> Composite:
    """The tiny run's 48 x 48 px season composite (UTM 31N, 10 m), clear up to vegetative."""
    days = SEASON.dekads()
    as_of = AS_OF[GrowthStage.VEGETATIVE]
    rng = np.random.default_rng(3)
    t, c = len(days), len(BANDS)
    data = np.full((t, c, SIZE, SIZE), np.nan, dtype=np.float32)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for i, d in enumerate(days):
        if d > as_of:
            break
        green = 0.2 + 0.5 * np.exp(-(((i - 20) / 6.0) ** 2))
        field = ((xx // 8 + yy // 8) % 3) / 3.0
        nd = np.clip(green * (0.6 + 0.6 * field) + rng.normal(0, 0.03, (SIZE, SIZE)), 0.05, 0.9)
        red = np.full((SIZE, SIZE), 0.06, dtype=np.float32)
        nir = red * (1 + nd) / (1 - nd)
        data[i, :] = 0.08
        data[i, BAND_INDEX["B04"]] = red
        data[i, BAND_INDEX["B03"]] = 0.05 + 0.04 * nd
        data[i, BAND_INDEX["B02"]] = 0.04
        data[i, BAND_INDEX["B08"]] = nir
    observed = ~np.isnan(data[:, 0])
    transform = Affine(PX, 0, X0, 0, -PX, Y0)
    return Composite(data, observed, days, transform, CRS, as_of)


def _renamed(df: pd.DataFrame, ids: dict[str, str]) -> pd.DataFrame:
    out = df.copy()
    for col in ("parcel_id", "farmer_id"):
        if col in out:
            out[col] = out[col].map(lambda v: ids.get(v, v))
    return out


def write_tiny_run(out: Path, ids: dict[str, str] | None = None) -> TinyRun:
    """Write a three-stage, three-farmer, six-parcel season run into ``out``.

    Args:
        ids: parcel or farmer ids to replace (``{"P-01": "<b>x</b>"}``) everywhere.
    """
    ids = ids or {}
    out.mkdir(parents=True, exist_ok=True)
    archive = out / "archive"
    archive.mkdir(exist_ok=True)
    parcels = _renamed(parcels_frame(), ids)
    parcels.to_parquet(archive / "parcels.parquet")
    (out / "run.json").write_text(
        json.dumps(
            {
                "run_id": "tiny-run",
                "model_version": "segmenter:test;pd:test",
                "policy_version": "policy-test",
                "params": {
                    "season": 2026,
                    "imagery": {"source": "local", "archive": str(archive)},
                    "ledger_url": None,
                    "out": str(out),
                },
            }
        )
    )
    url = f"sqlite:///{(out / 'ledger.sqlite').resolve()}"
    ledger = Ledger(url)
    ledger.create()
    previous: dict[str, float] | None = None
    for stage in AS_OF:
        raw = _decisions(stage, previous)
        decisions = _renamed(raw, ids)
        ledger.record_decisions(
            "tiny-run",
            SEASON,
            decisions,
            model_version="segmenter:test",
            policy_version="policy-test",
            config={"test": True},
        )
        stage_dir = out / "stages" / stage.value
        stage_dir.mkdir(parents=True, exist_ok=True)
        _renamed(_assessment(stage, parcels), ids).to_parquet(stage_dir / "assessment.parquet")
        _renamed(_curves(stage), ids).to_parquet(stage_dir / "curves.parquet")
        decisions.assign(
            reasons=decisions["reasons"].map(json.dumps),
            flags=decisions["flags"].map(json.dumps),
            evidence=decisions["evidence"].map(lambda e: json.dumps(e, default=str)),
        ).to_parquet(stage_dir / "decisions.parquet")
        previous = dict(zip(raw["farmer_id"], raw["limit_eur"], strict=True))
    draws = {ids.get("F-001", "F-001"): 5_000.0, ids.get("F-002", "F-002"): 5_000.0}
    ledger.record_draws(SEASON, GrowthStage.VEGETATIVE, draws)
    path = composite().to_npz(out / "cache" / "composite-20260531-tiny.npz")
    farmers = tuple(ids.get(f, f) for f in ("F-001", "F-002", "F-003"))
    return TinyRun(out, url, parcels, farmers, path)


def write_report(run: TinyRun) -> dict[str, Path]:
    """:func:`flows.report.write_report` over a tiny run (limits, index.html, map.html)."""
    from flows.report import write_report as write

    stage = GrowthStage.VEGETATIVE
    stage_dir = run.out / "stages" / stage.value
    params = SimpleNamespace(season=SEASON.year, out=run.out, ledger=lambda: run.ledger_url)
    board = SimpleNamespace(parcels=run.parcels, rejects=pd.DataFrame())
    last = SimpleNamespace(
        stage=stage,
        assessment=pd.read_parquet(stage_dir / "assessment.parquet"),
        curves=pd.read_parquet(stage_dir / "curves.parquet"),
        composites={AS_OF[stage]: composite()},
    )
    return write(params, board, [last])  # type: ignore[arg-type]


def write_report_with_ids(out: Path, parcel_id: str, farmer_id: str) -> dict[str, Path]:
    """The tiny run with parcel ``P-01`` and farmer ``F-001`` renamed, and its report."""
    return write_report(write_tiny_run(out, {"P-01": parcel_id, "F-001": farmer_id}))


# -- a live server for the browser tests ---------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The review app under uvicorn in a thread on 127.0.0.1."""

    def __init__(self, out: Path, tokens: dict[str, str]) -> None:
        import uvicorn

        from flows.review import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(out, tokens=tokens), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the review app did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
