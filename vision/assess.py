"""Per-parcel assessment: detected crop, confidence, planted area, observation and health.

Frames: ``parcels`` in the composite's CRS (UTM, metres; areas in ha), ``composite.data``
(T, C, H, W) reflectance 0-1 with T = 36 dekads, ``proba`` (K, H, W) calibrated class
probabilities over :data:`geo.types.CROPS` on the same grid (:func:`vision.infer.predict_proba`).

Definitions (one row per parcel, columns of DESIGN.md "Parcel assessment"):

- Statistics use the parcel's interior pixels (3x3 neighbourhood inside the parcel,
  ``ParcelPixels.interior_only``; a narrow strip without any keeps all its pixels), so mixed
  edge pixels do not blur class fractions or index curves.
- ``frac_<crop>``: share of the parcel's pixels whose most probable class is ``<crop>``.
- ``detected_crop``: the class with the highest mean calibrated probability over the parcel's
  pixels (a soft vote; it equals the pixel majority except in near ties); ``confidence``: its
  parcel probability, the mean sharpened by the segmenter's parcel temperature
  (:func:`vision.calibration.parcel_probabilities`; the plain mean is underconfident, as a
  parcel is right more often than its average pixel); ``crop_fraction``:
  ``frac_<detected_crop>``.
- ``planted_area_ha`` = crop_fraction x area_ha. The interval ``planted_area_lo_ha`` /
  ``hi_ha`` is crop_fraction -/+ 1.96 standard errors, the SE from the binomial variance of
  the pixel votes (or the mean p(1-p) of the probabilities, whichever is larger) over an
  effective sample of n_pixels / 4 (neighbouring pixels are correlated); with ``area_error``
  (the classifier's (K, K) error matrix, rows = true class, columns = predicted) the lower end
  is further scaled by the class's precision (commission) and the upper end divided by its
  recall (omission). Clipped to [0, area_ha].
- ``observed_fraction``: share of the dekads up to ``as_of`` in which at least half of the
  parcel's pixels had a clear observation (``composite.observed``).
- Health (:mod:`vision.health`) on NDVI against the reference of the *declared* crop when the
  detection agrees with it or is not confident (< ``min_confidence``), else the detected
  crop's. ``growth_stage`` is that crop's stage at ``as_of``. ``health_drop_z``
  (:func:`vision.health.health_drop`): the parcel's fall against its own earlier z over its
  last ``DROP_LOOKBACK`` emerged dekads (sd, > 0 = worse now; NaN when too few are judged).
  ``ndre_z`` (chlorophyll, red edge) and ``ndmi_z`` (canopy water): the same z at ``as_of``
  against the same crop's NDRE / NDMI reference, on the dekads NDVI judges (emerged crop,
  clear view). They are shown beside ``health_z``; the class and the credit features use NDVI.
- Parcels without any pixel (``ParcelPixels.empty``): detected_crop = declared_crop,
  confidence 0, fractions 0, observed_fraction 0, health "unknown", planted area 0 with the
  interval [0, area_ha], so the credit policy holds them for review.

Curves (long format, one row per parcel and dekad of the season): ``parcel_id``, ``dekad``
(date), ``ndvi``, ``ndre``, ``ndmi`` (parcel means of the pixels with a value; NaN when none
or after ``as_of``), ``valid_fraction`` (share of pixels with a clear observation),
``ref_ndvi``, ``ref_ndvi_sd`` (reference of the crop health is judged against).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from geo import indices
from geo.types import CROP_INDEX, CROPS
from geo.zonal import (
    ParcelPixels,
    build_parcel_index,
    parcel_class_fractions,
    parcel_mean,
    parcel_proba_mean,
)
from vision import health as hl
from vision.calibration import parcel_probabilities

if TYPE_CHECKING:
    import geopandas as gpd

    from geo.composite import Composite

log = logging.getLogger(__name__)

#: Columns of the parcel assessment table, in order.
ASSESSMENT_COLUMNS: tuple[str, ...] = (
    "parcel_id",
    "farmer_id",
    "region",
    "declared_crop",
    "declared_area_ha",
    "area_ha",
    "detected_crop",
    "confidence",
    "crop_fraction",
    *(f"frac_{c}" for c in CROPS),
    "planted_area_ha",
    "planted_area_lo_ha",
    "planted_area_hi_ha",
    "observed_fraction",
    "ndvi_last",
    "health_z",
    "ndre_z",
    "ndmi_z",
    "health_season_min_z",
    "health_drop_z",
    "health_class",
    "health_since",
    "growth_stage",
    "as_of",
)
CURVE_COLUMNS: tuple[str, ...] = (
    "parcel_id",
    "dekad",
    "ndvi",
    "ndre",
    "ndmi",
    "valid_fraction",
    "ref_ndvi",
    "ref_ndvi_sd",
)
#: A dekad counts as observed over a parcel when this share of its pixels was clear.
OBSERVED_SHARE = 0.5
#: Effective pixels per independent sample in the binomial area interval.
PIXELS_PER_SAMPLE = 4.0
#: Emerged dekads searched for ``health_drop_z`` (2 recent + a baseline of up to 4, + 2 gaps).
DROP_LOOKBACK = 8


def as_of_index(composite: Composite) -> int:
    """Index of the last dekad starting on or before ``composite.as_of`` (-1 if none)."""
    starts = np.array([d.toordinal() for d in composite.dates])
    return int(np.searchsorted(starts, composite.as_of.toordinal(), side="right")) - 1


def _area_interval(
    frac: np.ndarray,
    p_mean: np.ndarray,
    p_var: np.ndarray,
    counts: np.ndarray,
    area: np.ndarray,
    classes: np.ndarray,
    area_error: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lower / upper planted area (ha); see the module docstring."""
    n_eff = np.maximum(counts / PIXELS_PER_SAMPLE, 1.0)
    var = np.maximum(frac * (1.0 - frac), p_var)
    se = np.sqrt(var / n_eff)
    lo_f = np.minimum(frac, p_mean) - 1.96 * se
    hi_f = np.maximum(frac, p_mean) + 1.96 * se
    if area_error is not None:
        m = np.asarray(area_error, dtype=np.float64)
        k = len(CROPS)
        if m.shape != (k, k):
            raise ValueError(f"area_error has shape {m.shape}; expected ({k}, {k}) (true x pred)")
        diag = np.diag(m)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(m.sum(axis=0) > 0, diag / m.sum(axis=0), 1.0)
            recall = np.where(m.sum(axis=1) > 0, diag / m.sum(axis=1), 1.0)
        lo_f = lo_f * precision[classes]
        hi_f = hi_f / np.maximum(recall[classes], 1e-3)
    lo = np.clip(lo_f, 0.0, 1.0) * area
    hi = np.clip(hi_f, 0.0, 1.0) * area
    return lo, hi


def assess_parcels(
    parcels: gpd.GeoDataFrame,
    composite: Composite,
    proba: np.ndarray,
    *,
    reference_curves: pd.DataFrame,
    area_error: np.ndarray | None = None,
    index: ParcelPixels | None = None,
    min_confidence: float = 0.6,
    parcel_temperature: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One assessment row per parcel, plus the per-dekad index curves.

    Args:
        parcels: GeoDataFrame (DESIGN.md "Parcels") in the composite's CRS.
        composite: the season's dekad composite up to its ``as_of``.
        proba: (K, H, W) float32 calibrated probabilities on the composite's grid.
        reference_curves: :func:`vision.health.load_reference_curves`.
        area_error: optional (K, K) classifier error matrix (rows true, columns predicted),
            e.g. ``Segmenter.meta["confusion"]``, widening the planted-area interval.
        index: a prebuilt :func:`geo.zonal.build_parcel_index` for these parcels and grid.
        min_confidence: below this, health is judged against the declared crop.
        parcel_temperature: ``Segmenter.parcel_temperature`` (1: confidence = plain mean).

    Returns:
        (assessment, curves): columns :data:`ASSESSMENT_COLUMNS` and :data:`CURVE_COLUMNS`.

    Raises:
        ValueError: ``proba`` does not match the legend or the composite's grid.
    """
    t_steps, _, h, w = composite.data.shape
    k = len(CROPS)
    if proba.shape != (k, h, w):
        raise ValueError(
            f"proba has shape {proba.shape}; expected ({k}, {h}, {w}) on the composite's grid"
        )
    if index is None:
        index = build_parcel_index(parcels, composite.transform, (h, w))
    # statistics over interior pixels (mixed edge pixels left out; narrow strips keep all)
    px = index.interior_only(fallback=True)
    pid_to_row = {str(p): i for i, p in enumerate(px.parcel_ids)}
    order = np.array([pid_to_row[str(p)] for p in parcels["parcel_id"]], dtype=np.int64)
    n = len(parcels)
    t_now = as_of_index(composite)

    # --- crop type -------------------------------------------------------------------------
    p_mean = np.nan_to_num(parcel_proba_mean(px, proba)[order])  # (n, K)
    p_sq = np.nan_to_num(parcel_mean(px, proba * proba)[order])
    class_map = proba.argmax(axis=0).astype(np.uint8)
    fracs = np.nan_to_num(parcel_class_fractions(px, class_map, k)[order])  # (n, K)
    counts = np.asarray(px.counts, dtype=np.float64)[order]
    empty_ids = {str(p) for p in px.empty}
    empty = np.array([str(p) in empty_ids for p in parcels["parcel_id"]]) | (counts == 0)

    declared = parcels["declared_crop"].astype(str).to_numpy()
    declared_idx = np.array([CROP_INDEX.get(c, 0) for c in declared])
    detected_idx = p_mean.argmax(axis=1)
    detected_idx = np.where(empty, declared_idx, detected_idx)
    rows = np.arange(n)
    parcel_p = parcel_probabilities(p_mean, parcel_temperature)
    confidence = np.where(empty, 0.0, parcel_p[rows, detected_idx])
    fracs[empty] = 0.0
    crop_fraction = fracs[rows, detected_idx]
    area = parcels["area_ha"].to_numpy(np.float64)
    p_c = p_mean[rows, detected_idx]
    p_var = np.clip(p_c - p_sq[rows, detected_idx], 0.0, None)  # mean p(1-p) over pixels
    planted = crop_fraction * area
    lo, hi = _area_interval(crop_fraction, p_c, p_var, counts, area, detected_idx, area_error)
    lo = np.where(empty, 0.0, np.minimum(lo, planted))
    hi = np.where(empty, area, np.maximum(hi, planted))

    # --- observations and indices -----------------------------------------------------------
    observed_share = parcel_mean(px, composite.observed)[order]  # (n, T) share of pixels
    observed_share = np.nan_to_num(observed_share, nan=0.0)
    valid = observed_share >= OBSERVED_SHARE
    upto = np.arange(t_steps) <= t_now
    observed_fraction = (valid & upto).sum(axis=1) / max(t_now + 1, 1)
    observed_fraction = np.where(empty, 0.0, observed_fraction)
    curves_idx = {
        name: parcel_mean(px, fn(composite.data))[order].astype(np.float32)
        for name, fn in (("ndvi", indices.ndvi), ("ndre", indices.ndre), ("ndmi", indices.ndmi))
    }
    ndvi = curves_idx["ndvi"]
    valid &= np.isfinite(ndvi) & upto[None, :]

    # --- health -----------------------------------------------------------------------------
    agree = detected_idx == declared_idx
    use_declared = agree | (confidence < min_confidence) | empty
    ref_crop_idx = np.where(use_declared, declared_idx, detected_idx)
    ref_crops = [CROPS[i] for i in ref_crop_idx]
    regions = parcels["region"].astype(str).tolist()
    ref_mean, ref_sd = hl.reference_arrays(reference_curves, ref_crops, regions, "ndvi")
    z = hl.health_zscore(ndvi, ref_mean, ref_sd, valid, t_now)
    other_z = {}
    for name in ("ndre", "ndmi"):
        o_mean, o_sd = hl.reference_arrays(reference_curves, ref_crops, regions, name)
        o_valid = valid & np.isfinite(curves_idx[name])
        oz = hl.health_zscore(curves_idx[name], o_mean, o_sd, o_valid, t_now, ref_ndvi=ref_mean)
        other_z[name] = np.where(empty, np.nan, oz).astype(np.float64)
    ndvi_j, ref_j = hl.last_judged(ndvi, ref_mean, valid, ref_mean, t_now)
    klass = hl.health_class(z, ndvi_j, ref_j)
    z = np.where(empty, np.nan, z)
    klass[empty] = "unknown"
    judged = hl.judged_dekads(valid, ref_mean, t_now)
    z_series = hl.zscores(ndvi, ref_mean, ref_sd)
    since_idx = hl.health_since(z_series, judged, t_now)
    emerged_all = hl.judged_dekads(valid, ref_mean, t_now, lookback=max(t_now + 1, 1))
    worst_z = np.where(empty, np.nan, hl.season_worst_z(z_series, emerged_all))
    drop_judged = hl.judged_dekads(valid, ref_mean, t_now, lookback=DROP_LOOKBACK)
    drop_z = np.where(empty, np.nan, hl.health_drop(z_series, drop_judged))
    since: list[dt.date | None] = [
        composite.dates[i] if i >= 0 and klass[j] != "unknown" else None
        for j, i in enumerate(since_idx)
    ]
    ndvi_last = _last_finite(np.where(valid, ndvi, np.nan))
    stages = hl.growth_stages(ref_crops, max(t_now, 0), reference_curves, regions)

    table: dict[str, Any] = {
        "parcel_id": parcels["parcel_id"].astype(str).to_numpy(),
        "farmer_id": parcels["farmer_id"].astype(str).to_numpy(),
        "region": np.asarray(regions, dtype=object),
        "declared_crop": declared,
        "declared_area_ha": parcels["declared_area_ha"].to_numpy(np.float64),
        "area_ha": area,
        "detected_crop": np.array([CROPS[i] for i in detected_idx], dtype=object),
        "confidence": confidence,
        "crop_fraction": crop_fraction,
        **{f"frac_{c}": fracs[:, i] for i, c in enumerate(CROPS)},
        "planted_area_ha": np.where(empty, 0.0, planted),
        "planted_area_lo_ha": lo,
        "planted_area_hi_ha": hi,
        "observed_fraction": observed_fraction,
        "ndvi_last": ndvi_last,
        "health_z": z.astype(np.float64),
        "ndre_z": other_z["ndre"],
        "ndmi_z": other_z["ndmi"],
        "health_season_min_z": worst_z.astype(np.float64),
        "health_drop_z": drop_z.astype(np.float64),
        "health_class": klass,
        "health_since": since,
        "growth_stage": stages,
        "as_of": [composite.as_of] * n,
    }
    assessment = pd.DataFrame(table, columns=list(ASSESSMENT_COLUMNS))

    ndvi_c = np.where(upto[None, :], ndvi, np.nan)
    curves = pd.DataFrame(
        {
            "parcel_id": np.repeat(table["parcel_id"], t_steps),
            "dekad": np.tile(np.array(composite.dates, dtype=object), n),
            "ndvi": ndvi_c.ravel(),
            "ndre": np.where(upto[None, :], curves_idx["ndre"], np.nan).ravel(),
            "ndmi": np.where(upto[None, :], curves_idx["ndmi"], np.nan).ravel(),
            "valid_fraction": np.where(upto[None, :], observed_share, 0.0).ravel(),
            "ref_ndvi": ref_mean.ravel().astype(np.float64),
            "ref_ndvi_sd": ref_sd.ravel().astype(np.float64),
        },
        columns=list(CURVE_COLUMNS),
    )
    log.info(
        "assessed %d parcels at %s (%d empty, %d low confidence)",
        n,
        composite.as_of,
        int(empty.sum()),
        int((confidence < min_confidence).sum()),
    )
    return assessment, curves


def _last_finite(values: np.ndarray) -> np.ndarray:
    """(n,) last finite value along axis 1 of (n, T) (NaN if none)."""
    finite = np.isfinite(values)
    n, t = values.shape
    last = t - 1 - np.argmax(finite[:, ::-1], axis=1)
    out = values[np.arange(n), last]
    return np.where(finite.any(axis=1), out, np.nan).astype(np.float64)
