"""Crop health: how a parcel's index curve compares with its crop's reference curve.

Frames: per-parcel index series are (n, T) arrays over the T = 36 dekads of the season
(``geo.types.Season.dekads()``), index values in -1..1 (NDVI, NDRE, NDMI); ``valid`` (n, T)
marks dekads with a clear observation over the parcel. The reference table
``data/reference_curves.csv`` has one row per (crop, region, dekad 0..35) with
``<index>_mean`` / ``<index>_sd`` for ndvi, ndre, ndmi; region "*" is the default.

Rules (documented thresholds, all keyword arguments):

- A dekad is *emerged* when the reference NDVI is >= ``EMERGED_NDVI`` (0.3): before that the
  field is bare soil and its colour says nothing about the crop, so it is not judged.
- ``health_zscore``: z = (obs - ref_mean) / max(ref_sd, SD_FLOOR) per dekad; the parcel's z
  is the mean of its last ``window`` (3) valid z values among the last ``lookback`` (4)
  emerged dekads up to ``as_of``; NaN (unknown) when none is valid there.
- ``health_class``: good z > -1, watch -2 < z <= -1, stressed -3 < z <= -2, failed z <= -3
  or the last NDVI below ``COLLAPSE_RATIO`` (0.5) x reference; unknown when z is NaN.
- ``health_since``: first dekad of the current run of smoothed z < -1 (the mean of the last
  ``window`` valid z values; gaps without a valid observation do not break the run).
- ``health_drop``: how far the parcel fell against its *own* earlier curve: the median of up to
  ``baseline`` (4) judged z values before its last ``recent`` (2) ones minus the mean of those
  last ``recent`` (sd; > 0 = worse now); NaN with fewer than ``recent`` + 2 judged values. The
  reference curves' spread is wide, so a parcel going from +0.9 to -0.5 sd still looks like
  an average field on z alone; its drop shows it. Two recent dekads, so one bad image is not a
  drop; a median baseline, so one bright dekad (or a spike in the reference) is not either.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from geo.errors import TableError
from geo.paths import data_file
from geo.types import CROPS, GrowthStage

log = logging.getLogger(__name__)

#: Reference NDVI at which a crop counts as emerged (bare soil is below).
EMERGED_NDVI: Final[float] = 0.3
#: Lowest reference SD used in z-scores (index units), so flat curves do not explode z.
SD_FLOOR: Final[float] = 0.05
#: NDVI below this share of the reference marks a collapsed (failed) crop.
COLLAPSE_RATIO: Final[float] = 0.5
INDICES: Final[tuple[str, ...]] = ("ndvi", "ndre", "ndmi")
HEALTH_CLASSES: Final[tuple[str, ...]] = ("good", "watch", "stressed", "failed", "unknown")
_COLUMNS: Final[tuple[str, ...]] = (
    "crop",
    "region",
    "dekad",
    *(f"{i}_{s}" for i in INDICES for s in ("mean", "sd")),
)


def load_reference_curves(path: Path | None = None) -> pd.DataFrame:
    """Read and check ``data/reference_curves.csv``.

    Returns:
        DataFrame with columns crop, region, dekad (int 0..35) and ndvi/ndre/ndmi _mean/_sd.

    Raises:
        TableError: the file is missing, lacks a column, names an unknown crop or a dekad
            outside 0..35, or a (crop, region) lacks some dekads.
    """
    path = Path(path) if path is not None else data_file("reference_curves.csv")
    if not path.is_file():
        raise TableError(f"{path}: reference curves not found; restore data/reference_curves.csv")
    table = pd.read_csv(path, dtype={"crop": str, "region": str})
    missing = set(_COLUMNS) - set(table.columns)
    if missing:
        raise TableError(f"{path}: missing columns {sorted(missing)}; expected {list(_COLUMNS)}")
    unknown = sorted(set(table["crop"]) - set(CROPS))
    if unknown:
        raise TableError(f"{path}: unknown crops {unknown}; expected names from geo.types.CROPS")
    if not table["dekad"].between(0, 35).all():
        raise TableError(f"{path}: dekad values must be 0..35 (index into Season.dekads())")
    counts = table.groupby(["crop", "region"])["dekad"].nunique()
    short = counts[counts != 36]
    if len(short):
        raise TableError(
            f"{path}: {list(short.index)} do not have all 36 dekads; add the missing rows"
        )
    table["dekad"] = table["dekad"].astype(int)
    return table.sort_values(["crop", "region", "dekad"]).reset_index(drop=True)


def reference_arrays(
    curves: pd.DataFrame,
    crops: Sequence[str],
    regions: Sequence[str] | None = None,
    index: str = "ndvi",
) -> tuple[np.ndarray, np.ndarray]:
    """Reference mean and SD of ``index`` for each (crop, region) pair.

    Args:
        curves: from :func:`load_reference_curves`.
        crops: n crop names; regions: n region names (None: all "*"); a region without its
            own rows falls back to "*".
        index: "ndvi", "ndre" or "ndmi".

    Returns:
        (mean, sd), each (n, 36) float32; rows of crops without any reference are NaN.
    """
    if index not in INDICES:
        raise ValueError(f"unknown index {index!r}; expected one of {INDICES}")
    lut = _curve_lut(curves, index)
    regions = regions if regions is not None else ["*"] * len(crops)
    n = len(crops)
    mean = np.full((n, 36), np.nan, dtype=np.float32)
    sd = np.full((n, 36), np.nan, dtype=np.float32)
    for i, (crop, region) in enumerate(zip(crops, regions, strict=True)):
        hit = lut.get((crop, region)) or lut.get((crop, "*"))
        if hit is not None:
            mean[i], sd[i] = hit
    return mean, sd


def _curve_lut(curves: pd.DataFrame, index: str) -> dict[tuple[str, str], tuple[np.ndarray, ...]]:
    out: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}
    for (crop, region), grp in curves.groupby(["crop", "region"], sort=False):
        grp = grp.sort_values("dekad")
        out[(str(crop), str(region))] = (
            grp[f"{index}_mean"].to_numpy(np.float32),
            grp[f"{index}_sd"].to_numpy(np.float32),
        )
    return out


def zscores(
    obs: np.ndarray, ref_mean: np.ndarray, ref_sd: np.ndarray, *, sd_floor: float = SD_FLOOR
) -> np.ndarray:
    """Per-dekad z = (obs - ref_mean) / max(ref_sd, sd_floor); all (n, T); NaN stays NaN."""
    with np.errstate(invalid="ignore"):
        return ((obs - ref_mean) / np.maximum(ref_sd, sd_floor)).astype(np.float32)


def judged_dekads(
    valid: np.ndarray,
    ref_ndvi: np.ndarray,
    as_of_index: int,
    *,
    lookback: int = 4,
    emerged_ndvi: float = EMERGED_NDVI,
) -> np.ndarray:
    """(n, T) bool: valid dekads among each parcel's last ``lookback`` emerged dekads <= as_of.

    ``ref_ndvi`` (n, T) is the reference NDVI of each parcel's crop; a dekad is emerged when
    it is >= ``emerged_ndvi``. After harvest (reference back below the threshold) the window
    is the crop's last emerged dekads, so a harvested crop is judged on its late season.
    """
    n, t = valid.shape
    upto = np.arange(t) <= as_of_index
    emerged = (np.nan_to_num(ref_ndvi, nan=-1.0) >= emerged_ndvi) & upto[None, :]
    # rank of each emerged dekad counted back from the latest one (0 = latest)
    rank_back = np.cumsum(emerged[:, ::-1], axis=1)[:, ::-1] - 1
    in_window = emerged & (rank_back < lookback)
    return np.asarray(in_window & valid.astype(bool))


def health_zscore(
    obs: np.ndarray,
    ref_mean: np.ndarray,
    ref_sd: np.ndarray,
    valid: np.ndarray,
    as_of_index: int,
    *,
    ref_ndvi: np.ndarray | None = None,
    window: int = 3,
    lookback: int = 4,
    sd_floor: float = SD_FLOOR,
) -> np.ndarray:
    """Health z-score of each parcel at ``as_of_index``.

    Args:
        obs: (n, T) index values per parcel and dekad (NaN = none).
        ref_mean, ref_sd: (n, T) reference of the parcel's crop for the same index.
        valid: (n, T) bool, a clear observation over the parcel in that dekad.
        as_of_index: last dekad index (0..T-1) with information.
        ref_ndvi: (n, T) reference NDVI deciding emergence (default: ``ref_mean``, i.e. obs
            is NDVI).
        window: number of latest valid z values averaged; lookback: emerged dekads searched.

    Returns:
        (n,) float32 z; NaN when the crop has not emerged or no judged dekad is valid.
    """
    ref_ndvi = ref_mean if ref_ndvi is None else ref_ndvi
    z = zscores(obs, ref_mean, ref_sd, sd_floor=sd_floor)
    judged = judged_dekads(
        valid & np.isfinite(z), ref_ndvi, as_of_index, lookback=lookback, emerged_ndvi=EMERGED_NDVI
    )
    # keep the last `window` judged dekads
    rank_back = np.cumsum(judged[:, ::-1], axis=1)[:, ::-1] - 1
    use = judged & (rank_back < window)
    cnt = use.sum(axis=1)
    tot = np.where(use, z, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return out.astype(np.float32)


def last_judged(
    values: np.ndarray,
    ref: np.ndarray,
    valid: np.ndarray,
    ref_ndvi: np.ndarray,
    as_of_index: int,
    *,
    lookback: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Value and reference at each parcel's latest judged dekad (see :func:`judged_dekads`).

    Returns:
        (value, ref), each (n,) float32, NaN where no dekad is judged.
    """
    judged = judged_dekads(valid & np.isfinite(values), ref_ndvi, as_of_index, lookback=lookback)
    n, t = judged.shape
    has = judged.any(axis=1)
    last = t - 1 - np.argmax(judged[:, ::-1], axis=1)
    rows = np.arange(n)
    v = np.where(has, values[rows, last], np.nan).astype(np.float32)
    r = np.where(has, ref[rows, last], np.nan).astype(np.float32)
    return v, r


def health_class(
    z: np.ndarray,
    ndvi_last: np.ndarray | None = None,
    ref_ndvi_last: np.ndarray | None = None,
    *,
    collapse_ratio: float = COLLAPSE_RATIO,
) -> np.ndarray:
    """Health class per parcel from z (and an NDVI collapse check).

    Args:
        z: (n,) from :func:`health_zscore` (NaN = unknown).
        ndvi_last, ref_ndvi_last: (n,) NDVI and reference NDVI at the latest judged dekad;
            NDVI < ``collapse_ratio`` x reference means failed whatever z says.

    Returns:
        (n,) object array of "good", "watch", "stressed", "failed", "unknown".
    """
    z = np.asarray(z, dtype=np.float64)
    out = np.full(z.shape, "unknown", dtype=object)
    known = np.isfinite(z)
    out[known & (z > -1)] = "good"
    out[known & (z <= -1) & (z > -2)] = "watch"
    out[known & (z <= -2) & (z > -3)] = "stressed"
    out[known & (z <= -3)] = "failed"
    if ndvi_last is not None and ref_ndvi_last is not None:
        with np.errstate(invalid="ignore"):
            collapsed = (
                np.isfinite(ndvi_last)
                & (np.asarray(ref_ndvi_last) >= EMERGED_NDVI)
                & (np.asarray(ndvi_last) < collapse_ratio * np.asarray(ref_ndvi_last))
            )
        out[known & collapsed] = "failed"
    return out


def season_worst_z(z_series: np.ndarray, judged_all: np.ndarray, *, window: int = 3) -> np.ndarray:
    """The season's worst *sustained* deviation per parcel: the lowest running mean of
    ``window`` judged z values over every judged dekad so far (NaN when none is judged).

    A drought that ripened a cereal early still lowers this after the reference curve has
    caught up with the field, so the yield expectation keeps the damage (health memory).

    Args:
        z_series: (n, T) per-dekad z (:func:`zscores`).
        judged_all: (n, T) bool, every valid emerged dekad up to as_of.
    """
    n = z_series.shape[0]
    out = np.full(n, np.nan, dtype=np.float32)
    for i in range(n):
        z = z_series[i, judged_all[i]]
        if z.size:
            smooth = [z[max(0, k - window + 1) : k + 1].mean() for k in range(z.size)]
            out[i] = float(np.min(smooth))
    return out


def health_drop(
    z_series: np.ndarray, judged: np.ndarray, *, recent: int = 2, baseline: int = 4
) -> np.ndarray:
    """Drop of each parcel's z against its own earlier curve (sd; > 0 = worse now).

    ``median(z of up to `baseline` judged dekads before the last `recent`) - mean(z of the
    last `recent` judged dekads)``: a steady parcel scores ~0 however low it sits, a parcel
    whose canopy collapsed scores its fall.

    Args:
        z_series: (n, T) per-dekad z (:func:`zscores`).
        judged: (n, T) bool, the dekads that count (valid, emerged, <= as_of), e.g.
            :func:`judged_dekads` with ``lookback`` = recent + baseline + 2.
        recent: judged dekads making the current level (2: one bad image is no drop).
        baseline: judged dekads before them whose median is the parcel's earlier level.

    Returns:
        (n,) float32; NaN with fewer than ``recent`` + 2 judged dekads.
    """
    if recent < 1 or baseline < 2:
        raise ValueError(
            f"recent={recent}, baseline={baseline}; expected recent >= 1, baseline >= 2"
        )
    n = z_series.shape[0]
    use = judged.astype(bool) & np.isfinite(z_series)
    out = np.full(n, np.nan, dtype=np.float32)
    for i in range(n):
        z = z_series[i, use[i]]
        if z.size < recent + 2:
            continue
        before = z[:-recent][-baseline:]
        out[i] = float(np.median(before)) - float(z[-recent:].mean())
    return out


def health_since(
    z_series: np.ndarray,
    judged: np.ndarray,
    as_of_index: int,
    *,
    threshold: float = -1.0,
    window: int = 3,
) -> np.ndarray:
    """First dekad index of the current run of smoothed z < ``threshold`` per parcel.

    The z of a judged dekad is smoothed as the mean of the last ``window`` judged z values
    ending there (the same smoothing as :func:`health_zscore`), so an early senescence that
    the reference curve catches up with (a drought in a ripening cereal) keeps its run, and a
    single bad dekad starts a run only at the latest dekad (not yet confirmed).

    Args:
        z_series: (n, T) per-dekad z (:func:`zscores`).
        judged: (n, T) bool, the dekads that count (valid, emerged); others neither start nor
            break a run.
        as_of_index: the run must reach the latest judged dekad <= as_of.
        window: judged dekads in the running mean (1 = raw per-dekad z).

    Returns:
        (n,) int, -1 when the latest smoothed z is >= threshold or nothing is judged.
    """
    n, t = z_series.shape
    use = judged.astype(bool) & (np.arange(t) <= as_of_index)[None, :]
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        idx = np.flatnonzero(use[i])
        if idx.size == 0:
            continue
        z = z_series[i, idx]
        smooth = np.array([z[max(0, k - window + 1) : k + 1].mean() for k in range(z.size)])
        low = smooth < threshold
        if not low[-1]:
            continue
        good = idx[~low]
        after = idx[idx > good[-1]] if good.size else idx
        out[i] = int(after[0])
    return out


def growth_stage_of(crop: str, dekad_index: int, curves: pd.DataFrame, region: str = "*") -> str:
    """Growth stage of ``crop`` at ``dekad_index`` read from its reference NDVI curve shape.

    Emergence = first dekad with reference NDVI >= 0.3 before the peak; the stage is
    pre_sowing more than 3 dekads before emergence, sowing in the 3 dekads before it,
    vegetative from emergence to 2 dekads before the peak, flowering from peak-2 to peak+1,
    grain_fill after that while the reference stays >= 0.3, harvest once it falls below.
    A crop whose reference never reaches 0.3 (e.g. non_crop) is always pre_sowing.
    """
    mean, _ = reference_arrays(curves, [crop], [region], "ndvi")
    return _stage_from_curve(tuple(float(v) for v in mean[0]), int(dekad_index))


@lru_cache(maxsize=256)
def _stage_from_curve(curve: tuple[float, ...], t: int) -> str:
    ref = np.nan_to_num(np.asarray(curve, dtype=np.float64), nan=0.0)
    above = ref >= EMERGED_NDVI
    if not above.any():
        return GrowthStage.PRE_SOWING.value
    peak = int(np.argmax(ref))
    before = np.flatnonzero(~above[: peak + 1])
    emerge = int(before[-1] + 1) if before.size else 0
    after = np.flatnonzero(~above[peak:])
    senesce = peak + int(after[0]) if after.size else len(ref)
    if t < emerge - 3:
        stage = GrowthStage.PRE_SOWING
    elif t < emerge:
        stage = GrowthStage.SOWING
    elif t < peak - 2:
        stage = GrowthStage.VEGETATIVE
    elif t <= peak + 1:
        stage = GrowthStage.FLOWERING
    elif t < senesce:
        stage = GrowthStage.GRAIN_FILL
    else:
        stage = GrowthStage.HARVEST
    return stage.value


def growth_stages(
    crops: Sequence[str], dekad_index: int, curves: pd.DataFrame, regions: Sequence[str] | None
) -> list[str]:
    """:func:`growth_stage_of` for many parcels (cached per distinct crop/region)."""
    regions = regions if regions is not None else ["*"] * len(crops)
    mean, _ = reference_arrays(curves, crops, regions, "ndvi")
    return [_stage_from_curve(tuple(float(v) for v in row), int(dekad_index)) for row in mean]
