"""Per-farmer credit features from the parcel assessment and the crop economics table.

:func:`farmer_features` turns one row per parcel into one row per farmer. Each parcel gets a
*status* first:

``verified``         detected crop == declared crop with confidence >= ``min_confidence``;
                     financed on ``min(planted_area_ha, declared_area_ha)``.
``not_yet_visible``  the declared crop cannot be seen yet at this stage (``visible_from`` in
                     the economics table: spring crops are bare soil at pre-sowing and sowing).
                     The detection is ignored (bare soil is not evidence of fraud); the parcel is
                     financed on its declared area times ``unverified_credit_early`` (the
                     verification haircut) and is left out of ``verified_share``, health and
                     the area gap.
``low_confidence``   the crop should be visible but the classifier is unsure; financed on the
                     declared area times ``unverified_credit``, left out of ``verified_share``
                     (no evidence either way); the policy holds for review when much of the
                     farm is in this state.
``wrong_crop``       another crop detected with confidence >= ``contradict_confidence``: not
                     financed, flag ``wrong_crop``. Between ``min_confidence`` and
                     ``contradict_confidence`` a contradiction is ``low_confidence``: parcel
                     confidence is calibrated, so 0.6 leaves a 40 % chance that the declaration
                     is right, too weak to withhold credit on.
``not_cropland``     ``non_crop`` detected with confidence >= ``contradict_confidence``: not
                     financed, flag ``not_cropland``.

Health: ``health_z`` (sd against the crop's reference curve, NaN -> 0; the worse of the current
z and the season's worst sustained z ``health_season_min_z`` when the assessment has it) only
counts on visible
parcels after pre-sowing; at pre-sowing every parcel has health 0 (nothing to compare yet).
Yield factor = clip(1 + ``health_factor_per_sd`` * health_z, 0.2, 1.1); ``failed`` -> 0.2.
Stress is *confirmed* when health_class is watch/stressed/failed since at least
``stress_confirm_days`` (two dekads, the policy's hysteresis) and the parcel was observed.
``watch_share`` / ``stressed_share`` / ``failed_share`` are the shares of the farmer's expected
revenue *at reference health* (financed ha x expected yield x price, before the health
adjustment) on parcels with confirmed stress of that class: the policy cuts in proportion to
the money at risk, so a stressed hectare of potatoes weighs more than one of hay.
``stress_seen_share`` is the same revenue share on parcels whose worst sustained z this season
(``health_season_min_z``) fell to ``stress_seen_z`` (the watch threshold): the policy does not
raise such a farmer again this season.

Stress is also *seen early* (``drop_share``) on a visible parcel, after pre-sowing, without
confirmed stress, whose health fell sharply against its own earlier curve
(``health_drop_z`` >= ``drop_z``, see ``vision.health.health_drop``) AND sits below its crop's
reference (``health_z`` <= ``drop_max_z``): both, so a steady low field or a good field with
one dull image is no alarm. A drought collapses a canopy from +0.9 to -0.5 sd within three
dekads, which the 3-dekad z (against a wide reference spread) shows only a stage later.
``drop_share`` is the revenue share of such parcels, 0 when below ``drop_min_share`` (one
small noisy parcel does not cut a farm); those parcels count in ``n_stressed_parcels``.

All money is EUR, areas ha, yields t.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any, Final, cast

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from geo.errors import TableError
from geo.types import CROP_INDEX, CROPS, GrowthStage, Season
from scoring.tables import Economics

log = logging.getLogger(__name__)

HEALTH_ORDER: Final[dict[str, int]] = {
    "unknown": -1,
    "good": 0,
    "watch": 1,
    "stressed": 2,
    "failed": 3,
}
FLAGS: Final[tuple[str, ...]] = (
    "wrong_crop",
    "overstated_area",
    "overlap",
    "not_cropland",
    "no_vegetation",
)
ASSESSMENT_COLUMNS: Final[tuple[str, ...]] = (
    "parcel_id",
    "farmer_id",
    "region",
    "declared_crop",
    "declared_area_ha",
    "area_ha",
    "detected_crop",
    "confidence",
    "planted_area_ha",
    "planted_area_lo_ha",
    "planted_area_hi_ha",
    "observed_fraction",
    "ndvi_last",
    "health_z",
    "health_class",
    "health_since",
    "as_of",
)
FARMER_COLUMNS: Final[tuple[str, ...]] = (
    "farmer_id",
    "region",
    "annual_debt_service_eur",
    "years_with_lender",
)
#: z-value of the 10th percentile of a normal yield distribution.
Z_P10: Final[float] = 1.2816


class FeatureConfig(BaseModel):
    """Thresholds of the feature step (see the module docstring for their use)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_confidence: float = Field(default=0.6, ge=0, le=1)
    contradict_confidence: float = Field(default=0.9, ge=0, le=1)
    unverified_credit_early: float = Field(default=0.7, ge=0, le=1)
    unverified_credit: float = Field(default=0.5, ge=0, le=1)
    area_tolerance_share: float = Field(default=0.2, ge=0)
    area_tolerance_ha: float = Field(default=0.5, ge=0)
    overlap_min_share: float = Field(default=0.05, ge=0, le=1)
    min_ndvi_green: float = Field(default=0.3, ge=0, le=1)
    health_factor_per_sd: float = Field(default=0.08, ge=0)
    health_factor_min: float = Field(default=0.2, ge=0)
    health_factor_max: float = Field(default=1.1, ge=0)
    failed_factor: float = Field(default=0.2, ge=0)
    stress_confirm_days: int = Field(default=10, ge=0)
    #: a parcel whose season's worst sustained z fell to this had a stress episode (the
    #: watch threshold of the health classes, so a confirmed watch is never forgotten)
    stress_seen_z: float = Field(default=-1.0, le=0)
    #: early stress: health fell this many sd against the parcel's own curve ...
    drop_z: float = Field(default=1.0, gt=0)
    #: ... and its current z is at most this (below its crop's reference) ...
    drop_max_z: float = Field(default=-0.5, le=0)
    #: ... on at least this share of the farmer's expected revenue
    drop_min_share: float = Field(default=0.25, ge=0, le=1)
    neutral_verified_share: float = Field(default=0.85, ge=0, le=1)
    max_debt_service_ratio: float = Field(default=5.0, gt=0)


def area_short(
    declared: np.ndarray, planted: np.ndarray, planted_hi: np.ndarray, cfg: FeatureConfig
) -> np.ndarray:
    """Planted area short of the declaration by more than both tolerances, with the
    declaration above the top of the planted-area interval: ``overstated_area`` where the
    parcel was checked (crop visible, confident detection)."""
    gap = declared - planted
    return np.asarray(
        (gap > cfg.area_tolerance_share * declared)
        & (gap > cfg.area_tolerance_ha)
        & (declared > planted_hi)
    )


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``df`` as plain dicts keyed by column name (Python scalars, like
    ``df.to_dict("records")`` but column by column: several times faster on wide frames)."""
    if not df.columns.is_unique:
        return cast(list[dict[str, Any]], df.to_dict("records"))
    cols = list(df.columns)
    values = []
    for i, c in enumerate(cols):
        col = df.iloc[:, i]
        if isinstance(col.dtype, np.dtype | pd.StringDtype | pd.CategoricalDtype):
            values.append(col.tolist())
        else:  # nullable extension types: keep to_dict's boxing (NA -> None)
            values.append([r[c] for r in df.iloc[:, [i]].to_dict("records")])
    return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)]


def _check_columns(df: pd.DataFrame, required: tuple[str, ...], name: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise TableError(
            f"{name}: missing column(s) {', '.join(missing)}; see DESIGN.md 'Data contracts'"
        )


def _as_date(value: Any) -> dt.date | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return pd.Timestamp(value).date()
    except (ValueError, TypeError):
        return None


def _num(value: Any, default: float = 0.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(v) else v


def _floats(col: pd.Series, default: float) -> np.ndarray:
    """:func:`_num` over a column: float64, with ``default`` for NaN, None and non-numbers."""
    if pd.api.types.is_numeric_dtype(col.dtype):
        x = col.to_numpy(dtype=float, na_value=np.nan)
    else:
        x = np.array([_num(v, math.nan) for v in col.tolist()], dtype=float)
    return np.where(np.isnan(x), default, x)


def _pmax(a: np.ndarray, b: float | np.ndarray) -> np.ndarray:
    """Element-wise ``max(a, b)`` with Python's semantics (``a`` unless ``b > a``)."""
    return np.where(b > a, b, a)


def _pmin(a: np.ndarray, b: float | np.ndarray) -> np.ndarray:
    """Element-wise ``min(a, b)`` with Python's semantics (``a`` unless ``b < a``)."""
    return np.where(b < a, b, a)


def _round(x: np.ndarray, ndigits: int) -> list[float]:
    """Python's ``round(v, ndigits)`` over an array, as a list.

    ``rint(v * 10**n) / 10**n`` gives the same double as Python unless ``v * 10**n`` lies near
    a half-integer (where the product's own rounding may tip it) or is huge; those few values
    go through Python's ``round``.
    """
    scale = 10.0**ndigits
    k = x * scale
    out = np.rint(k) / scale
    with np.errstate(invalid="ignore"):
        near = (np.abs(k - np.floor(k) - 0.5) < 1e-6) | (np.abs(k) >= 1e9)
    values = out.tolist()
    for i in np.flatnonzero(near).tolist():
        values[i] = round(float(x[i]), ndigits)
    return values


def _strs(col: pd.Series) -> list[str]:
    return [str(v) for v in col.tolist()]


def _parcels(
    assessment: pd.DataFrame,
    economics: Economics,
    season: Season,
    stage: GrowthStage,
    cfg: FeatureConfig,
    by_parcel: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Status, financed area, cost and revenue of every parcel (EUR, ha, t), as columns.

    The rules of the module docstring, one numpy operation per rule over all parcels; values
    shown to people (and summed per farmer) are rounded with Python's ``round``.
    """
    n = len(assessment)
    declared_crop = _strs(assessment["declared_crop"])
    detected = _strs(assessment["detected_crop"])
    region = _strs(assessment["region"])
    keys: dict[tuple[str, str], int] = {}
    econ_idx = np.empty(n, dtype=np.intp)
    for i, key in enumerate(zip(declared_crop, region, strict=True)):
        k = keys.get(key)
        if k is None:
            k = keys[key] = len(keys)
        econ_idx[i] = k
    econ = [economics.lookup(crop, reg, season) for crop, reg in keys]

    def per_parcel(values: list[float] | list[bool]) -> np.ndarray:
        return np.asarray(values)[econ_idx]

    visible = per_parcel([e.visible_at(stage) for e in econ])
    yield_cv = per_parcel([e.yield_cv for e in econ]).astype(float)
    conf = _floats(assessment["confidence"], 0.0)
    area = _pmax(_floats(assessment["area_ha"], 0.0), 0.0)
    declared = _pmax(_floats(assessment["declared_area_ha"], 0.0), 0.0)
    planted = _pmax(_floats(assessment["planted_area_ha"], 0.0), 0.0)
    planted_hi = _floats(assessment["planted_area_hi_ha"], math.nan)
    planted_hi = _pmax(np.where(np.isnan(planted_hi), planted, planted_hi), planted)
    claimable = np.where(area > 0, _pmin(declared, area), declared)
    confident = conf >= cfg.min_confidence

    det = np.asarray(detected, dtype=object)
    decl = np.asarray(declared_crop, dtype=object)
    decl_non_crop = decl == "non_crop"
    hidden = ~visible
    contradicts = conf >= max(cfg.contradict_confidence, cfg.min_confidence)
    not_cropland = visible & contradicts & (det == "non_crop") & ~decl_non_crop
    verified = visible & confident & ~not_cropland & (det == decl)
    wrong = visible & contradicts & ~not_cropland & ~verified
    low = visible & ~(verified | wrong | not_cropland)
    status = np.select(
        [hidden, not_cropland, verified, wrong],
        ["not_yet_visible", "not_cropland", "verified", "wrong_crop"],
        "low_confidence",
    ).astype(object)

    verified_ha = np.where(verified, _pmin(planted, declared), 0.0)
    unverified_ha = np.where(hidden | low, claimable, 0.0)
    credit = np.select(
        [verified, hidden, low], [1.0, cfg.unverified_credit_early, cfg.unverified_credit], 0.0
    )
    financed_ha = verified_ha + credit * unverified_ha

    checked = visible & confident
    gap = np.where(checked, declared - planted, 0.0)
    overstated = checked & area_short(declared, planted, planted_hi, cfg)
    ndvi = _floats(assessment["ndvi_last"], math.nan)
    observed = _floats(assessment["observed_fraction"], 0.0)
    no_vegetation = (
        visible
        & (stage not in (GrowthStage.PRE_SOWING, GrowthStage.HARVEST))
        & ~decl_non_crop
        & ~np.isnan(ndvi)
        & (ndvi < cfg.min_ndvi_green)
        & (observed > 0)
    )
    parcel_ids = _strs(assessment["parcel_id"])
    overlaps = [by_parcel.get(pid, []) for pid in parcel_ids]
    flags: list[list[str]] = [[] for _ in range(n)]
    for name, mask in (
        ("wrong_crop", wrong),
        ("not_cropland", not_cropland),
        ("overstated_area", overstated),
        ("no_vegetation", no_vegetation),
        ("overlap", np.array([bool(o) for o in overlaps], dtype=bool)),
    ):
        for i in np.flatnonzero(mask).tolist():
            flags[i].append(name)

    counts = visible & (stage != GrowthStage.PRE_SOWING)
    z_now = _floats(assessment["health_z"], 0.0)
    season_min = np.zeros(n)
    if "health_season_min_z" in assessment:
        # health memory: damage seen earlier in the season (a drought that ripened a cereal
        # early) still lowers the yield after the reference curve has caught up with the field
        season_min = np.where(counts, _floats(assessment["health_season_min_z"], 0.0), 0.0)
        z_now = np.fmin(z_now, season_min)
    z = np.where(counts, z_now, 0.0)
    hclass = [
        h if c and h in HEALTH_ORDER else "unknown"
        for h, c in zip(_strs(assessment["health_class"]), counts.tolist(), strict=True)
    ]
    since = [
        _as_date(v) if c else None
        for v, c in zip(assessment["health_since"].tolist(), counts.tolist(), strict=True)
    ]
    hc = np.asarray(hclass, dtype=object)
    failed = hc == "failed"
    confirmed = np.zeros(n, dtype=bool)
    as_of = assessment["as_of"].tolist()
    judged_low = ((hc == "watch") | (hc == "stressed") | failed) & (observed > 0)
    for i in np.flatnonzero(judged_low).tolist():
        s, a = since[i], _as_date(as_of[i])
        confirmed[i] = s is not None and a is not None and (a - s).days >= cfg.stress_confirm_days
    drop = np.zeros(n)
    if "health_drop_z" in assessment:
        drop = np.where(counts, _floats(assessment["health_drop_z"], 0.0), 0.0)
    z_raw = _floats(assessment["health_z"], math.nan)
    stress_drop = (
        counts
        & ~confirmed
        & (observed > 0)
        & (drop >= cfg.drop_z)
        & ~np.isnan(z_raw)
        & (np.nan_to_num(z_raw, nan=0.0) <= cfg.drop_max_z)
    )
    factor = np.where(
        failed,
        cfg.failed_factor,
        np.clip(1 + cfg.health_factor_per_sd * z, cfg.health_factor_min, cfg.health_factor_max),
    )
    price = per_parcel([e.price_eur_t for e in econ])
    potential = financed_ha * per_parcel([e.yield_t_ha for e in econ]) * price
    yield_t = financed_ha * per_parcel([e.yield_t_ha for e in econ]) * factor
    revenue = yield_t * price
    downside_share = 1 - Z_P10 * yield_cv
    downside = revenue * np.where(downside_share > 0.0, downside_share, 0.0)
    cost = financed_ha * per_parcel([e.cost_eur_ha for e in econ])
    return {
        "parcel_id": parcel_ids,
        "declared_crop": declared_crop,
        "detected_crop": detected,
        "confidence": _round(conf, 3),
        "status": status.tolist(),
        "visible": visible,
        "declared_area_ha": _round(declared, 3),
        "area_ha": _round(area, 3),
        "planted_area_ha": _round(planted, 3),
        "verified_area_ha": _round(verified_ha, 3),
        "unverified_area_ha": _round(unverified_ha, 3),
        "financed_area_ha": _round(financed_ha, 3),
        "checked": checked,
        "area_gap_ha": _round(gap, 3),
        "health_class": hclass,
        "health_z": _round(z, 2),
        "health_season_min_z": _round(season_min, 2),
        "health_drop_z": _round(drop, 2),
        "health_since": [s.isoformat() if s else None for s in since],
        "stress_confirmed": confirmed,
        "stress_drop": stress_drop,
        "yield_factor": _round(factor, 3),
        "observed_fraction": _round(observed, 3),
        "ndvi_last": [None if math.isnan(v) else round(v, 3) for v in ndvi.tolist()],
        "expected_yield_t": yield_t,
        "revenue_eur": revenue,
        "potential_revenue_eur": potential,
        "downside_revenue_eur": downside,
        "cost_eur": cost,
        "cost_to_come_eur": cost * per_parcel([e.share_from(stage) for e in econ]),
        "cost_through_stage_eur": cost * per_parcel([e.share_through(stage) for e in econ]),
        "yield_cv": yield_cv,
        "flags": flags,
        "overlaps": overlaps,
        "farmer_id": _strs(assessment["farmer_id"]),
        "region": region,
    }


#: Keys of each parcel's ``evidence`` dict, in order.
EVIDENCE_KEYS: Final[tuple[str, ...]] = (
    "parcel_id",
    "declared_crop",
    "detected_crop",
    "confidence",
    "status",
    "declared_area_ha",
    "area_ha",
    "planted_area_ha",
    "verified_area_ha",
    "unverified_area_ha",
    "financed_area_ha",
    "area_gap_ha",
    "health_class",
    "health_z",
    "health_season_min_z",
    "health_drop_z",
    "health_since",
    "stress_confirmed",
    "stress_drop",
    "yield_factor",
    "observed_fraction",
    "ndvi_last",
    "expected_yield_t",
    "revenue_eur",
    "downside_revenue_eur",
    "cost_eur",
    "cost_to_come_eur",
    "cost_through_stage_eur",
    "yield_cv",
    "flags",
)


class _Groups:
    """Parcels grouped by farmer: farmers sorted by id, parcels in their original order."""

    def __init__(self, farmer_of: list[str]) -> None:
        self.ids = sorted(set(farmer_of))
        code = {f: i for i, f in enumerate(self.ids)}
        g = np.fromiter((code[f] for f in farmer_of), dtype=np.intp, count=len(farmer_of))
        self.order = np.argsort(g, kind="stable")
        self.g = g[self.order]
        self.n = len(self.ids)
        self.size = np.bincount(self.g, minlength=self.n)
        self.starts = np.concatenate([[0], np.cumsum(self.size)[:-1]])

    def sorted(self, values: Any) -> np.ndarray:
        """``values`` (one per parcel, original order) in group order."""
        return np.asarray(values)[self.order]

    def sum(self, values: Any, where: np.ndarray | None = None) -> np.ndarray:
        """Per-farmer sum, added in parcel order like Python's ``sum``."""
        v = self.sorted(values).astype(float)
        if where is not None:
            v = np.where(self.sorted(where), v, 0.0)
        return np.bincount(self.g, weights=v, minlength=self.n)

    def count(self, mask: Any) -> np.ndarray:
        return np.bincount(self.g, weights=self.sorted(mask), minlength=self.n).astype(int)

    def weighted(
        self, values: Any, weights: Any, default: float, where: np.ndarray | None = None
    ) -> np.ndarray:
        """Per-farmer ``sum(v * w) / sum(w)``, ``default`` where the weights sum to <= 0."""
        w = self.sum(weights, where)
        num = self.sum(np.asarray(values, dtype=float) * np.asarray(weights, dtype=float), where)
        out = np.full(self.n, default, dtype=float)
        np.divide(num, w, out=out, where=w > 0)
        return out

    def first_max(self, key: np.ndarray) -> np.ndarray:
        """Per farmer, the original index of the first parcel with the largest ``key``."""
        k = self.sorted(key)
        top = np.maximum.reduceat(k, self.starts)
        hits = np.flatnonzero(k == top[self.g])
        first = hits[np.unique(self.g[hits], return_index=True)[1]]
        return self.order[first]


def _farmer_of_parcel(groups: _Groups) -> np.ndarray:
    """Per parcel (original order), the index of its farmer in ``groups.ids``."""
    out = np.empty(len(groups.order), dtype=np.intp)
    out[groups.order] = groups.g
    return out


def _ratio(num: np.ndarray, den: np.ndarray, default: float) -> np.ndarray:
    out = np.full(len(num), default, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _main_crop(groups: _Groups, crops: list[str], declared: np.ndarray) -> list[str]:
    """Per farmer, the declared crop with the largest declared area (first seen on ties)."""
    k = len(CROPS)
    code = np.fromiter((CROP_INDEX[c] for c in crops), dtype=np.intp, count=len(crops))
    pair = groups.g * k + groups.sorted(code)
    area = np.bincount(pair, weights=groups.sorted(declared), minlength=groups.n * k)
    pairs, first = np.unique(pair, return_index=True)
    order = np.lexsort((first, -area[pairs], pairs // k))
    pairs = pairs[order]
    lead = np.concatenate([[True], pairs[1:] // k != pairs[:-1] // k])
    return [CROPS[c] for c in (pairs[lead] % k).tolist()]


def _diversity(groups: _Groups, crops: list[str], keep: np.ndarray) -> np.ndarray:
    """Per farmer, the number of distinct crops among the parcels where ``keep``."""
    k = len(CROPS)
    code = np.fromiter((CROP_INDEX[c] for c in crops), dtype=np.intp, count=len(crops))
    pair = (groups.g * k + groups.sorted(code))[groups.sorted(keep)]
    return np.bincount(np.unique(pair) // k, minlength=groups.n)


def _farmers(
    p: dict[str, Any], farmers: pd.DataFrame, fpos: dict[str, int], cfg: FeatureConfig
) -> pd.DataFrame:
    """One row per farmer (sorted by id) from the parcel columns of :func:`_parcels`."""
    gr = _Groups(p["farmer_id"])
    n = gr.n
    status = np.asarray(p["status"], dtype=object)
    declared = np.asarray(p["declared_area_ha"], dtype=float)
    area_r = np.asarray(p["area_ha"], dtype=float)
    visible = np.asarray(p["visible"], dtype=bool)
    areas = np.where(area_r != 0, area_r, declared)  # ``area_ha or declared_area_ha``
    hclass = np.asarray(p["health_class"], dtype=object)
    z = np.asarray(p["health_z"], dtype=float)
    season_min = np.asarray(p["health_season_min_z"], dtype=float)
    confirmed = np.asarray(p["stress_confirmed"], dtype=bool)
    drop_z = np.asarray(p["health_drop_z"], dtype=float)
    stress_drop = np.asarray(p["stress_drop"], dtype=bool)
    stressed = (hclass == "watch") | (hclass == "stressed") | (hclass == "failed")

    declared_sum = gr.sum(declared)
    verified = gr.sum(p["verified_area_ha"])
    # a parcel the classifier is unsure of is no evidence either way: it is left out of the
    # verified share (it still gets the haircut, and low_confidence_share asks for review)
    visible_area = gr.sum(declared, visible)
    checkable = gr.sum(declared, visible & (status != "low_confidence"))
    gap_ha = gr.sum(p["area_gap_ha"], np.asarray(p["checked"], dtype=bool))
    gap_base = gr.sum(declared, np.asarray(p["checked"], dtype=bool))
    total_area = gr.sum(areas)
    total_area = np.where(total_area == 0, 1.0, total_area)
    revenue = gr.sum(p["revenue_eur"])
    # money at risk: shares of the revenue expected at reference health; a farm with no
    # financed revenue (all wrong crop, say) falls back to area shares
    farmer_at = _farmer_of_parcel(gr)
    potential = np.asarray(p["potential_revenue_eur"], dtype=float)
    use_area = gr.sum(potential) <= 0
    weight = np.where(use_area[farmer_at], area_r, potential)
    total_weight = gr.sum(weight)
    total_weight = np.where(total_weight == 0, 1.0, total_weight)
    cost = gr.sum(p["cost_eur"])
    worst = gr.first_max(np.fromiter((HEALTH_ORDER[h] for h in hclass), dtype=int))
    worst_z = np.minimum.reduceat(gr.sorted(np.where(visible, z, np.inf)), gr.starts)
    drop_share = gr.sum(weight, stress_drop) / total_weight
    drop_share = np.where(drop_share >= max(cfg.drop_min_share, 1e-12), drop_share, 0.0)
    n_dropped = np.where(drop_share > 0, gr.count(stress_drop), 0)
    n_confirmed = gr.count(confirmed)
    biggest = gr.first_max(np.where(stress_drop, drop_z, -np.inf))
    n_notcrop = gr.count(status == "not_cropland")

    first_parcel = gr.order[gr.starts]
    rows = [fpos[fid] for fid in gr.ids]
    f_region = farmers["region"].tolist()
    region = [
        str(f_region[r] or p["region"][i]) for r, i in zip(rows, first_parcel.tolist(), strict=True)
    ]
    debt = _pmax(_floats(farmers["annual_debt_service_eur"], 0.0)[rows], 0.0)
    years = _pmax(_floats(farmers["years_with_lender"], 0.0)[rows], 0.0)
    has = {f: gr.count([f in fl for fl in p["flags"]]) > 0 for f in FLAGS}
    flags: list[list[str]] = [[] for _ in range(n)]
    for f in FLAGS:
        for j in np.flatnonzero(has[f]).tolist():
            flags[j].append(f)
    since: list[str | None] = [None] * n
    overlaps: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for i in np.flatnonzero(confirmed).tolist():
        s, j = p["health_since"][i], farmer_at[i]
        if s and (since[j] is None or s < since[j]):
            since[j] = s
    for i in gr.order.tolist():
        if p["overlaps"][i]:
            overlaps[farmer_at[i]].extend(p["overlaps"][i])
    columns = [p[k].tolist() if isinstance(p[k], np.ndarray) else p[k] for k in EVIDENCE_KEYS]
    evidence = [
        dict(zip(EVIDENCE_KEYS, values, strict=True)) for values in zip(*columns, strict=True)
    ]
    ev_sorted = [evidence[i] for i in gr.order]
    ends = (gr.starts + gr.size).tolist()

    debt_ratio = np.where(
        revenue > 0,
        _pmin(_ratio(debt, revenue, 0.0), cfg.max_debt_service_ratio),
        np.where(debt > 0, cfg.max_debt_service_ratio, 0.0),
    )
    return pd.DataFrame(
        {
            "farmer_id": gr.ids,
            "region": region,
            "n_parcels": gr.size,
            "main_crop": _main_crop(gr, p["declared_crop"], declared),
            "declared_area_ha": declared_sum,
            "verified_area_ha": verified,
            "unverified_area_ha": gr.sum(p["unverified_area_ha"]),
            "financed_area_ha": gr.sum(p["financed_area_ha"]),
            "verified_share": np.clip(
                _ratio(verified, checkable, cfg.neutral_verified_share), 0, 1
            ),
            "area_gap_ha": gap_ha,
            "area_gap_share": _ratio(_pmax(gap_ha, 0.0), gap_base, 0.0),
            "crop_diversity": _diversity(
                gr,
                p["declared_crop"],
                (status != "not_cropland") & (np.asarray(p["declared_crop"]) != "non_crop"),
            ),
            "health_z": gr.weighted(z, areas, 0.0, visible),
            "health_worst": hclass[worst],
            "health_worst_crop": np.asarray(p["declared_crop"], dtype=object)[worst],
            "health_worst_z": np.where(np.isinf(worst_z), 0.0, worst_z),
            "health_since": since,
            "stress_pending": gr.count(stressed) > n_confirmed,
            "n_stressed_parcels": n_confirmed + n_dropped,
            "watch_share": gr.sum(weight, confirmed & (hclass == "watch")) / total_weight,
            "stress_seen_share": gr.sum(weight, visible & (season_min <= cfg.stress_seen_z))
            / total_weight,
            "stressed_share": gr.sum(weight, confirmed & (hclass == "stressed")) / total_weight,
            "failed_share": gr.sum(weight, confirmed & (hclass == "failed")) / total_weight,
            "drop_share": drop_share,
            "health_drop_crop": np.where(
                drop_share > 0, np.asarray(p["declared_crop"], dtype=object)[biggest], None
            ),
            "health_drop_z": np.where(drop_share > 0, drop_z[biggest], 0.0),
            "observed_fraction": gr.weighted(p["observed_fraction"], areas, 0.0),
            "low_confidence_share": _ratio(
                gr.sum(declared, visible & (status == "low_confidence")), visible_area, 0.0
            ),
            "expected_yield_t": gr.sum(p["expected_yield_t"]),
            "yield_factor": gr.weighted(p["yield_factor"], areas, 1.0),
            "yield_cv": gr.weighted(p["yield_cv"], p["financed_area_ha"], 0.0),
            "expected_revenue_eur": revenue,
            "downside_revenue_eur": gr.sum(p["downside_revenue_eur"]),
            "total_cost_eur": cost,
            "cost_to_come_eur": gr.sum(p["cost_to_come_eur"]),
            "cost_through_stage_eur": gr.sum(p["cost_through_stage_eur"]),
            "expected_margin_eur": revenue - cost,
            "margin_ratio": _ratio(revenue, cost, 0.0),
            "annual_debt_service_eur": debt,
            "debt_service_ratio": debt_ratio,
            "years_with_lender": years,
            "n_not_cropland": n_notcrop,
            "all_not_cropland": n_notcrop == gr.size,
            **{f"flag_{f}": has[f] for f in FLAGS},
            "flags": flags,
            "overlaps": overlaps,
            "evidence": [ev_sorted[a:b] for a, b in zip(gr.starts.tolist(), ends, strict=True)],
        }
    )


def farmer_features(
    assessment: pd.DataFrame,
    farmers: pd.DataFrame,
    overlaps: pd.DataFrame,
    economics: Economics,
    season: Season,
    stage: GrowthStage,
    *,
    cfg: FeatureConfig | None = None,
) -> pd.DataFrame:
    """One row per farmer with area, health, yield, revenue, cost and flag features.

    Vectorised over parcels and farmers (100k farmers / 300k parcels in seconds; see
    ``bench/scoring.py``).

    Args:
        assessment: parcel assessment (DESIGN.md contract), one row per parcel.
        farmers: farmer_id, region, annual_debt_service_eur (EUR/year), years_with_lender.
        overlaps: parcel_id, farmer_id, other_parcel_id, other_farmer_id, overlap_ha,
            overlap_share; rows between two parcels of the same farmer are ignored, and so are
            slivers below ``cfg.overlap_min_share``.
        economics: the crop economics table.
        season, stage: the decision point.
        cfg: thresholds (defaults: :class:`FeatureConfig`).

    Returns:
        DataFrame sorted by farmer_id. Areas in ha, money in EUR, shares 0-1; ``flags`` is a
        list of flag names, ``evidence`` a list of parcel dicts (JSON-ready), ``overlaps`` a
        list of dicts (parcel_id, other_parcel_id, other_farmer_id, overlap_ha).

    Raises:
        TableError: a missing column, or a farmer in the assessment absent from ``farmers``.
    """
    cfg = cfg or FeatureConfig()
    _check_columns(assessment, ASSESSMENT_COLUMNS, "parcel assessment")
    _check_columns(farmers, FARMER_COLUMNS, "farmers table")
    unknown = sorted(set(assessment["declared_crop"]) - set(CROPS))
    if unknown:
        raise TableError(
            f"parcel assessment: declared_crop {unknown} not in the legend; "
            "map the crops to geo.types.CROPS before scoring"
        )
    fpos = {fid: i for i, fid in enumerate(_strs(farmers["farmer_id"]))}
    assessed = set(_strs(assessment["farmer_id"]))
    missing = sorted(assessed - set(fpos))
    if missing:
        raise TableError(
            f"farmers table: no row for farmer(s) {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}; add them with their annual_debt_service_eur "
            "and years_with_lender"
        )
    by_parcel: dict[str, list[dict[str, Any]]] = {}
    if len(overlaps):
        _check_columns(
            overlaps,
            ("parcel_id", "farmer_id", "other_parcel_id", "other_farmer_id", "overlap_ha"),
            "overlaps table",
        )
        for o in records(overlaps):
            if str(o["farmer_id"]) == str(o["other_farmer_id"]):
                continue
            if _num(o.get("overlap_share"), 1.0) < cfg.overlap_min_share:
                continue
            by_parcel.setdefault(str(o["parcel_id"]), []).append(
                {
                    "parcel_id": str(o["parcel_id"]),
                    "other_parcel_id": str(o["other_parcel_id"]),
                    "other_farmer_id": str(o["other_farmer_id"]),
                    "overlap_ha": round(_num(o["overlap_ha"]), 3),
                }
            )
    without = len(set(fpos) - assessed)
    if without:
        log.info("%d farmer(s) have no assessed parcel and get no features", without)
    if len(assessment) == 0:
        return pd.DataFrame()
    parcels = _parcels(assessment, economics, season, stage, cfg, by_parcel)
    out = _farmers(parcels, farmers, fpos, cfg)
    out.insert(1, "stage", stage.value)
    out.insert(2, "season", season.year)
    return out.reset_index(drop=True)
