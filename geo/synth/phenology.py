"""Crop calendars and NDVI curves of the scene generator.

Time frame: every date here is a *day of season* (float days since 1 November of
``season.year - 1``; negative = before the season starts, e.g. a winter wheat sown in October).
NDVI is unitless (-1..1).

The NDVI curve of a crop (parameters from ``data/crop_calendar.csv``, one row per crop) is a
double logistic with a winter plateau, an inter-crop cover and an autumn regrowth::

    ndvi(t) = base
            + cover * (1 - S((t - cover_end) / 10))                  # cover crop / weeds
            + [(winter - base) * S((t - emergence) / 10)             # autumn establishment
               + (peak - winter) * S((t - greenup) / rise)] * (1 - S((t - senescence) / fall))
            + regrow * S((t - regrowth) / 10) * (1 - S((t - regrow_end) / 8))  # after harvest

with ``S`` the logistic function. Calendar columns ``sowing``, ``peak`` and ``harvest``
are derived from the curve (``eval/calibrate_generator.py`` writes them) and are documentation
for people; the generator uses the curve parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo.errors import TableError
from geo.paths import shipped_dir
from geo.types import CROPS, Season

#: Repository data folder holding the generator's reference tables.
DATA_DIR = shipped_dir()
CALENDAR_PATH = DATA_DIR / "crop_calendar.csv"

#: Curve parameters (columns of ``crop_calendar.csv``), in the order of :data:`CurveParams`.
CURVE_COLUMNS: tuple[str, ...] = (
    "ndvi_base",
    "ndvi_cover",
    "cover_end",
    "ndvi_winter",
    "emergence",
    "ndvi_peak",
    "greenup",
    "rise_days",
    "senescence",
    "fall_days",
    "ndvi_regrow",
    "regrowth",
    "regrow_end",
)
#: Date-like curve parameters (days of season): these move with a parcel's date jitter.
DATE_COLUMNS: tuple[str, ...] = (
    "cover_end",
    "emergence",
    "greenup",
    "senescence",
    "regrowth",
    "regrow_end",
)
#: Documentation columns of ``crop_calendar.csv`` (days of season).
CALENDAR_DATE_COLUMNS: tuple[str, ...] = ("sowing", "emergence", "peak", "senescence", "harvest")

#: Curve of the trees and hedges of non-crop land (deciduous-dominated bocage woodland).
FOREST_CURVE: dict[str, float] = {
    "ndvi_base": 0.55,
    "ndvi_cover": 0.0,
    "cover_end": 0.0,
    "ndvi_winter": 0.55,
    "emergence": -100.0,
    "ndvi_peak": 0.86,
    "greenup": 165.0,
    "rise_days": 10.0,
    "senescence": 350.0,
    "fall_days": 12.0,
    "ndvi_regrow": 0.0,
    "regrowth": 400.0,
    "regrow_end": 500.0,
}


@dataclass(frozen=True)
class CropCalendar:
    """One crop's calendar row: curve parameters (days of season, NDVI) and the dry maximum."""

    crop: str
    params: dict[str, float]
    dry_max: float

    def ndvi(self, t: np.ndarray) -> np.ndarray:
        """Noise-free NDVI at days of season ``t`` (any shape)."""
        return ndvi_curve(t, {k: np.float64(v) for k, v in self.params.items()})


def sigmoid(x: Any) -> np.ndarray:
    """Logistic function, numerically safe for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


def ndvi_curve(t: Any, p: Mapping[str, Any]) -> np.ndarray:
    """NDVI at day of season ``t`` for curve parameters ``p`` (scalars or arrays broadcasting
    against ``t``, e.g. (H, W) per-pixel maps). See the module docstring for the formula."""
    t = np.asarray(t, dtype=np.float64) if np.isscalar(t) else t
    keep: Any = 1.0 - sigmoid((t - p["senescence"]) / p["fall_days"])
    crop = (p["ndvi_winter"] - p["ndvi_base"]) * sigmoid((t - p["emergence"]) / 10.0) + (
        p["ndvi_peak"] - p["ndvi_winter"]
    ) * sigmoid((t - p["greenup"]) / p["rise_days"])
    return np.asarray(
        p["ndvi_base"]
        + p["ndvi_cover"] * (1.0 - sigmoid((t - p["cover_end"]) / 10.0))
        + crop * keep
        + p["ndvi_regrow"]
        * sigmoid((t - p["regrowth"]) / 10.0)
        * (1.0 - sigmoid((t - p["regrow_end"]) / 8.0))
    )


def day_of_season(day: dt.date, season: Season) -> float:
    """Days since the season start (1 Nov of ``season.year - 1``)."""
    return float((day - season.start).days)


def dekad_days(season: Season) -> np.ndarray:
    """Day of season of the middle of each of the 36 dekads, shape (36,)."""
    starts = season.dekads()
    ends = [*starts[1:], season.end + dt.timedelta(days=1)]
    return np.array(
        [
            day_of_season(s, season) + ((e - s).days - 1) / 2.0
            for s, e in zip(starts, ends, strict=True)
        ]
    )


@cache
def _read_calendar(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise TableError(
            f"crop calendar {path} is missing; regenerate it with "
            "`python -m eval.calibrate_generator` or restore it from git"
        )
    df = pd.read_csv(path)
    missing = {"crop", "dry_max", *CURVE_COLUMNS} - set(df.columns)
    if missing:
        raise TableError(f"{path}: missing columns {sorted(missing)}; expected {CURVE_COLUMNS}")
    unknown = set(df["crop"]) - set(CROPS)
    if unknown:
        raise TableError(f"{path}: unknown crops {sorted(unknown)}; expected names of CROPS")
    return df


def load_calendar(path: Path | None = None) -> dict[str, CropCalendar]:
    """Read ``data/crop_calendar.csv`` into one :class:`CropCalendar` per crop.

    Raises:
        TableError: the file is missing, lacks a column or names an unknown crop.
    """
    df = _read_calendar(Path(path) if path is not None else CALENDAR_PATH)
    out: dict[str, CropCalendar] = {}
    for row in df.to_dict("records"):
        params = {c: float(row[c]) for c in CURVE_COLUMNS}
        out[str(row["crop"])] = CropCalendar(str(row["crop"]), params, float(row["dry_max"]))
    return out


def derived_dates(params: dict[str, float], season: Season) -> dict[str, float]:
    """Documentation dates (days of season) of a curve: sowing, emergence, peak_day,
    senescence, harvest (emergence and senescence are the curve parameters themselves)."""
    t = np.arange(-60.0, 366.0)
    nd = ndvi_curve(t, {k: np.float64(v) for k, v in params.items()})
    in_season = (t >= 0) & (t < (season.end - season.start).days)
    peak_day = float(t[in_season][np.argmax(nd[in_season])])
    autumn = params["ndvi_winter"] - params["ndvi_base"] > 0.1
    emergence = params["emergence"]
    return {
        "sowing": round(emergence - (15.0 if autumn else 12.0)),
        "emergence": round(emergence),
        "peak": round(peak_day),
        "senescence": round(params["senescence"]),
        "harvest": round(params["senescence"] + 2.5 * params["fall_days"]),
    }
