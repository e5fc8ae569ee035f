"""Crop economics: expected yield, price, cultivation cost and its timing per crop and region.

The table ``data/crop_economics.csv`` has one row per (crop, region, season); ``"*"`` in
``region`` or ``season`` is a wildcard. Every crop of :data:`geo.types.CROPS` must have a
``("*", "*")`` default row, so any region and season resolve. Units:

* ``yield_t_ha``: expected yield, t/ha (fresh matter; hay for grassland);
* ``yield_cv``: coefficient of variation of the farm yield, 0-1;
* ``price_eur_t``: EUR/t;
* ``cost_<item>``: cultivation cost, EUR/ha, for seed, fertiliser, crop_protection, labour,
  machinery, irrigation;
* ``share_<stage>``: share (0-1) of the cost paid at each growth stage; they sum to 1;
* ``visible_from``: first growth stage at which imagery can confirm the crop (spring crops are
  bare soil at pre-sowing and sowing);
* ``table_version``: one value for the whole table, recorded with every decision.

See ``data/ECONOMICS.md`` for the sources. A lender's override file with the same columns
replaces the rows with the same (crop, region, season) key and may add rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pandas as pd

from geo.errors import TableError
from geo.paths import shipped_file
from geo.tablecells import parse_numbers
from geo.types import CROPS, GrowthStage, Season

log = logging.getLogger(__name__)

DEFAULT_PATH: Final[Path] = shipped_file("crop_economics.csv")
WILDCARD: Final[str] = "*"
COST_ITEMS: Final[tuple[str, ...]] = (
    "seed",
    "fertiliser",
    "crop_protection",
    "labour",
    "machinery",
    "irrigation",
)
COST_COLUMNS: Final[tuple[str, ...]] = tuple(f"cost_{c}" for c in COST_ITEMS)
SHARE_COLUMNS: Final[tuple[str, ...]] = tuple(f"share_{s.value}" for s in GrowthStage)
NUMERIC_COLUMNS: Final[tuple[str, ...]] = (
    "yield_t_ha",
    "yield_cv",
    "price_eur_t",
    *COST_COLUMNS,
    *SHARE_COLUMNS,
)
REQUIRED_COLUMNS: Final[tuple[str, ...]] = (
    "table_version",
    "crop",
    "region",
    "season",
    *NUMERIC_COLUMNS,
    "visible_from",
)
SHARE_TOLERANCE: Final[float] = 1e-3


@dataclass(frozen=True)
class EconomicsRow:
    """Economics of one crop in one region and season (per hectare).

    Attributes:
        yield_t_ha: expected yield, t/ha.
        yield_cv: coefficient of variation of the farm yield (0-1).
        price_eur_t: expected farm-gate price, EUR/t.
        costs_eur_ha: cultivation cost by item, EUR/ha.
        stage_shares: share of the cost paid at each stage (sums to 1).
        visible_from: first stage at which imagery can confirm the crop.
    """

    crop: str
    region: str
    season: str
    yield_t_ha: float
    yield_cv: float
    price_eur_t: float
    costs_eur_ha: dict[str, float]
    stage_shares: dict[GrowthStage, float]
    visible_from: GrowthStage
    table_version: str

    @property
    def cost_eur_ha(self) -> float:
        """Total cultivation cost, EUR/ha."""
        return float(sum(self.costs_eur_ha.values()))

    @property
    def revenue_eur_ha(self) -> float:
        """Expected revenue at the prior yield, EUR/ha."""
        return self.yield_t_ha * self.price_eur_t

    def share_from(self, stage: GrowthStage) -> float:
        """Share of the cost paid at ``stage`` or later (0-1)."""
        return float(sum(v for s, v in self.stage_shares.items() if s.order >= stage.order))

    def share_through(self, stage: GrowthStage) -> float:
        """Share of the cost paid up to and including ``stage`` (0-1)."""
        return float(sum(v for s, v in self.stage_shares.items() if s.order <= stage.order))

    def visible_at(self, stage: GrowthStage) -> bool:
        """True when imagery at ``stage`` can confirm or contradict this crop."""
        return stage.order >= self.visible_from.order


class Economics:
    """A validated crop economics table with wildcard lookup.

    Build it with :func:`load_economics`; lookups are exact first, then ``region="*"`` /
    ``season="*"`` fallbacks in the order (r, s), (r, *), (*, s), (*, *).
    """

    def __init__(self, rows: dict[tuple[str, str, str], EconomicsRow], version: str) -> None:
        self._rows = rows
        self.version = version

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, crop: str, region: str, season: Season | int | str) -> EconomicsRow:
        """Economics of ``crop`` in ``region`` and ``season``, with wildcard fallback.

        Raises:
            TableError: the crop has no row (cannot happen for a validated table and a legend
                crop; names an unknown crop).
        """
        s = str(season)
        for key in ((crop, region, s), (crop, region, WILDCARD), (crop, WILDCARD, s)):
            if key in self._rows:
                return self._rows[key]
        key = (crop, WILDCARD, WILDCARD)
        if key not in self._rows:
            raise TableError(
                f"crop economics: no row for crop {crop!r}; expected one of {', '.join(CROPS)} "
                "(map the crop to the legend or add a '*,*' row to the economics table)"
            )
        return self._rows[key]

    def cost_to_come(
        self, crop: str, region: str, season: Season | int | str, stage: GrowthStage
    ) -> float:
        """Cost still to be paid from ``stage`` (inclusive) to harvest, EUR/ha."""
        row = self.lookup(crop, region, season)
        return row.cost_eur_ha * row.share_from(stage)

    def rows(self) -> list[EconomicsRow]:
        """All rows, in table order."""
        return list(self._rows.values())


def cost_to_come(
    economics: Economics, crop: str, region: str, season: Season | int | str, stage: GrowthStage
) -> float:
    """Cost still to be paid from ``stage`` (inclusive) to harvest, EUR/ha."""
    return economics.cost_to_come(crop, region, season, stage)


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise TableError(f"{path}: crop economics file not found; pass an existing CSV path")
    try:
        # blank lines kept then dropped: a row's index + 2 stays its line in the file
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
        df = df[(df.apply(lambda col: col.str.strip()) != "").any(axis=1)] if len(df) else df
    except pd.errors.EmptyDataError as exc:
        raise TableError(
            f"{path}: the file is empty; expected a CSV whose header holds "
            f"{', '.join(REQUIRED_COLUMNS)} (start from data/crop_economics.csv)"
        ) from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TableError(f"{path}: cannot parse as CSV ({exc}); save it as UTF-8 CSV") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TableError(
            f"{path}: missing column(s) {', '.join(missing)}; "
            f"the header must contain {', '.join(REQUIRED_COLUMNS)}"
        )
    return df


def _parse_rows(df: pd.DataFrame, path: Path) -> dict[tuple[str, str, str], EconomicsRow]:
    rows: dict[tuple[str, str, str], EconomicsRow] = {}
    stages = {s.value: s for s in GrowthStage}
    for index, rec in zip(df.index, df.to_dict("records"), strict=True):
        line = int(index) + 2  # header is line 1; blank lines are counted
        crop = str(rec["crop"]).strip()
        region = str(rec["region"]).strip()
        season = str(rec["season"]).strip()
        where = f"{path} line {line} ({crop}, {region}, {season})"
        if crop not in CROPS:
            raise TableError(f"{where}: unknown crop {crop!r}; use one of {', '.join(CROPS)}")
        values: dict[str, float] = {}
        for col in NUMERIC_COLUMNS:
            parsed, problems = parse_numbers([str(rec[col])], [line], col)
            if problems:
                raise TableError(f"{problems[0].message(str(path))} ({crop}, {region}, {season})")
            values[col] = float(parsed[0])
        if values["yield_cv"] > 1:
            raise TableError(
                f"{where}: yield_cv {values['yield_cv']} > 1; give it as a fraction (0.15)"
            )
        total = sum(values[c] for c in SHARE_COLUMNS)
        if abs(total - 1) > SHARE_TOLERANCE:
            raise TableError(
                f"{where}: stage shares sum to {total:.4f}, expected 1; "
                f"fix {', '.join(SHARE_COLUMNS)} so they add up to 1"
            )
        vis = str(rec["visible_from"]).strip()
        if vis not in stages:
            raise TableError(
                f"{where}: visible_from {vis!r} is not a stage; use one of {', '.join(stages)}"
            )
        key = (crop, region, season)
        if key in rows:
            raise TableError(f"{where}: duplicate row for {key}; keep one row per key")
        rows[key] = EconomicsRow(
            crop=crop,
            region=region,
            season=season,
            yield_t_ha=values["yield_t_ha"],
            yield_cv=values["yield_cv"],
            price_eur_t=values["price_eur_t"],
            costs_eur_ha={c: values[f"cost_{c}"] for c in COST_ITEMS},
            stage_shares={s: values[f"share_{s.value}"] for s in GrowthStage},
            visible_from=stages[vis],
            table_version=str(rec["table_version"]).strip(),
        )
    return rows


def load_economics(path: Path | str | None = None, override: Path | str | None = None) -> Economics:
    """Load and validate the crop economics table, optionally patched by a lender's file.

    Args:
        path: the table (default ``data/crop_economics.csv``).
        override: a CSV with the same columns; its rows replace rows of the same
            (crop, region, season) key, or are added. Its ``table_version`` becomes part of the
            version string ("2026.1+lender-3").

    Raises:
        TableError: missing file or column, unknown crop, non-numeric or negative value, stage
            shares not summing to 1, duplicate key, or a legend crop without a ``*,*`` row.
    """
    base_path = Path(path) if path is not None else DEFAULT_PATH
    rows = _parse_rows(_read(base_path), base_path)
    versions = {r.table_version for r in rows.values()}
    if len(versions) != 1:
        raise TableError(
            f"{base_path}: table_version has several values {sorted(versions)}; use one version"
        )
    version = versions.pop()
    if override is not None:
        opath = Path(override)
        orows = _parse_rows(_read(opath), opath)
        replaced = sum(1 for k in orows if k in rows)
        rows.update(orows)
        over_versions = sorted({r.table_version for r in orows.values()})
        version = f"{version}+{'+'.join(over_versions)}"
        log.info(
            "crop economics override %s: %d row(s) replaced, %d added",
            opath,
            replaced,
            len(orows) - replaced,
        )
    missing = [c for c in CROPS if (c, WILDCARD, WILDCARD) not in rows]
    if missing:
        raise TableError(
            f"{base_path}: no default row for crop(s) {', '.join(missing)}; "
            "add a row with region '*' and season '*' for each"
        )
    return Economics(rows, version)
