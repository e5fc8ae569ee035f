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
                     declared area times ``unverified_credit``; the policy holds for review when
                     much of the farm is in this state.
``wrong_crop``       another crop detected with confidence: not financed, flag ``wrong_crop``.
``not_cropland``     ``non_crop`` detected with confidence: not financed, flag ``not_cropland``.

Health: ``health_z`` (sd against the crop's reference curve, NaN -> 0) only counts on visible
parcels after pre-sowing; at pre-sowing every parcel has health 0 (nothing to compare yet).
Yield factor = clip(1 + ``health_factor_per_sd`` * health_z, 0.2, 1.1); ``failed`` -> 0.2.
Stress is *confirmed* when health_class is stressed/failed since at least
``stress_confirm_days`` (two dekads, the policy's hysteresis) and the parcel was observed.

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
from geo.types import CROPS, GrowthStage, Season
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
    neutral_verified_share: float = Field(default=0.85, ge=0, le=1)
    max_debt_service_ratio: float = Field(default=5.0, gt=0)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``df`` as plain dicts keyed by column name."""
    return cast(list[dict[str, Any]], df.to_dict("records"))


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


def _parcel_row(
    p: dict[str, Any],
    economics: Economics,
    season: Season,
    stage: GrowthStage,
    cfg: FeatureConfig,
    overlapping: list[dict[str, Any]],
) -> dict[str, Any]:
    """Status, financed area, cost and revenue of one parcel (EUR, ha, t)."""
    declared_crop = str(p["declared_crop"])
    detected = str(p["detected_crop"])
    region = str(p["region"])
    econ = economics.lookup(declared_crop, region, season)
    conf = _num(p["confidence"])
    area = max(_num(p["area_ha"]), 0.0)
    declared = max(_num(p["declared_area_ha"]), 0.0)
    planted = max(_num(p["planted_area_ha"]), 0.0)
    planted_hi = max(_num(p["planted_area_hi_ha"], planted), planted)
    claimable = min(declared, area) if area > 0 else declared
    visible = econ.visible_at(stage)
    confident = conf >= cfg.min_confidence

    if not visible:
        status = "not_yet_visible"
    elif confident and detected == "non_crop" and declared_crop != "non_crop":
        status = "not_cropland"
    elif confident and detected == declared_crop:
        status = "verified"
    elif confident:
        status = "wrong_crop"
    else:
        status = "low_confidence"

    if status == "verified":
        verified_ha, unverified_ha, credit = min(planted, declared), 0.0, 1.0
    elif status == "not_yet_visible":
        verified_ha, unverified_ha, credit = 0.0, claimable, cfg.unverified_credit_early
    elif status == "low_confidence":
        verified_ha, unverified_ha, credit = 0.0, claimable, cfg.unverified_credit
    else:
        verified_ha, unverified_ha, credit = 0.0, 0.0, 0.0
    financed_ha = verified_ha + credit * unverified_ha

    flags: list[str] = []
    if status in ("wrong_crop", "not_cropland"):
        flags.append(status)
    gap = 0.0
    checked = visible and confident
    if checked:
        gap = declared - planted
        if (
            gap > cfg.area_tolerance_share * declared
            and gap > cfg.area_tolerance_ha
            and declared > planted_hi
        ):
            flags.append("overstated_area")
    ndvi = _num(p["ndvi_last"], default=float("nan"))
    if (
        visible
        and stage not in (GrowthStage.PRE_SOWING, GrowthStage.HARVEST)
        and declared_crop != "non_crop"
        and not math.isnan(ndvi)
        and ndvi < cfg.min_ndvi_green
        and _num(p["observed_fraction"]) > 0
    ):
        flags.append("no_vegetation")
    if overlapping:
        flags.append("overlap")

    health_counts = visible and stage != GrowthStage.PRE_SOWING
    z = _num(p["health_z"]) if health_counts else 0.0
    hclass = str(p["health_class"]) if health_counts else "unknown"
    if hclass not in HEALTH_ORDER:
        hclass = "unknown"
    since = _as_date(p["health_since"]) if health_counts else None
    as_of = _as_date(p["as_of"])
    confirmed = (
        hclass in ("stressed", "failed")
        and since is not None
        and as_of is not None
        and (as_of - since).days >= cfg.stress_confirm_days
        and _num(p["observed_fraction"]) > 0
    )
    if hclass == "failed":
        factor = cfg.failed_factor
    else:
        factor = float(
            np.clip(1 + cfg.health_factor_per_sd * z, cfg.health_factor_min, cfg.health_factor_max)
        )
    yield_t = financed_ha * econ.yield_t_ha * factor
    revenue = yield_t * econ.price_eur_t
    downside = revenue * max(0.0, 1 - Z_P10 * econ.yield_cv)
    cost = financed_ha * econ.cost_eur_ha
    return {
        "parcel_id": str(p["parcel_id"]),
        "declared_crop": declared_crop,
        "detected_crop": detected,
        "confidence": round(conf, 3),
        "status": status,
        "visible": visible,
        "declared_area_ha": round(declared, 3),
        "area_ha": round(area, 3),
        "planted_area_ha": round(planted, 3),
        "verified_area_ha": round(verified_ha, 3),
        "unverified_area_ha": round(unverified_ha, 3),
        "financed_area_ha": round(financed_ha, 3),
        "checked": checked,
        "area_gap_ha": round(gap, 3),
        "health_class": hclass,
        "health_z": round(z, 2),
        "health_since": since.isoformat() if since else None,
        "stress_confirmed": confirmed,
        "yield_factor": round(factor, 3),
        "observed_fraction": round(_num(p["observed_fraction"]), 3),
        "ndvi_last": None if math.isnan(ndvi) else round(ndvi, 3),
        "expected_yield_t": yield_t,
        "revenue_eur": revenue,
        "downside_revenue_eur": downside,
        "cost_eur": cost,
        "cost_to_come_eur": cost * econ.share_from(stage),
        "cost_through_stage_eur": cost * econ.share_through(stage),
        "yield_cv": econ.yield_cv,
        "flags": flags,
        "overlaps": overlapping,
    }


def _weighted(values: list[float], weights: list[float], default: float) -> float:
    w = float(sum(weights))
    if w <= 0:
        return default
    return float(sum(v * x for v, x in zip(values, weights, strict=True)) / w)


def _farmer_row(
    farmer_id: str,
    parcels: list[dict[str, Any]],
    farmer: dict[str, Any],
    cfg: FeatureConfig,
) -> dict[str, Any]:
    declared = sum(p["declared_area_ha"] for p in parcels)
    verified = sum(p["verified_area_ha"] for p in parcels)
    unverified = sum(p["unverified_area_ha"] for p in parcels)
    financed = sum(p["financed_area_ha"] for p in parcels)
    checked = [p for p in parcels if p["visible"]]
    checkable = sum(p["declared_area_ha"] for p in checked)
    verified_share = verified / checkable if checkable > 0 else cfg.neutral_verified_share
    gap_parcels = [p for p in parcels if p["checked"]]
    gap_ha = sum(p["area_gap_ha"] for p in gap_parcels)
    gap_base = sum(p["declared_area_ha"] for p in gap_parcels)
    areas = [p["area_ha"] or p["declared_area_ha"] for p in parcels]
    vis_areas = [p["area_ha"] or p["declared_area_ha"] for p in checked]
    health_z = _weighted([p["health_z"] for p in checked], vis_areas, 0.0)
    low_conf = sum(p["declared_area_ha"] for p in checked if p["status"] == "low_confidence")
    worst = max(parcels, key=lambda p: HEALTH_ORDER[p["health_class"]])
    stressed = [p for p in parcels if p["health_class"] in ("stressed", "failed")]
    confirmed = [p for p in stressed if p["stress_confirmed"]]
    total_area = sum(areas) or 1.0
    revenue = sum(p["revenue_eur"] for p in parcels)
    cost = sum(p["cost_eur"] for p in parcels)
    debt = max(_num(farmer.get("annual_debt_service_eur")), 0.0)
    flags = [f for f in FLAGS if any(f in p["flags"] for p in parcels)]
    crops = {p["declared_crop"] for p in parcels if p["status"] not in ("not_cropland",)}
    crops.discard("non_crop")
    by_crop: dict[str, float] = {}
    for p in parcels:
        by_crop[p["declared_crop"]] = by_crop.get(p["declared_crop"], 0.0) + p["declared_area_ha"]
    main_crop = max(by_crop, key=lambda c: by_crop[c]) if by_crop else "non_crop"
    since = sorted(p["health_since"] for p in confirmed if p["health_since"])
    n_notcrop = sum(1 for p in parcels if p["status"] == "not_cropland")
    return {
        "farmer_id": farmer_id,
        "region": str(farmer.get("region") or parcels[0].get("region", "*")),
        "n_parcels": len(parcels),
        "main_crop": main_crop,
        "declared_area_ha": declared,
        "verified_area_ha": verified,
        "unverified_area_ha": unverified,
        "financed_area_ha": financed,
        "verified_share": float(np.clip(verified_share, 0, 1)),
        "area_gap_ha": gap_ha,
        "area_gap_share": max(gap_ha, 0.0) / gap_base if gap_base > 0 else 0.0,
        "crop_diversity": len(crops),
        "health_z": health_z,
        "health_worst": worst["health_class"],
        "health_worst_crop": worst["declared_crop"],
        "health_worst_z": min((p["health_z"] for p in checked), default=0.0),
        "health_since": since[0] if since else None,
        "stress_pending": len(stressed) > len(confirmed),
        "n_stressed_parcels": len(confirmed),
        "stressed_share": sum(p["area_ha"] for p in confirmed if p["health_class"] == "stressed")
        / total_area,
        "failed_share": sum(p["area_ha"] for p in confirmed if p["health_class"] == "failed")
        / total_area,
        "observed_fraction": _weighted([p["observed_fraction"] for p in parcels], areas, 0.0),
        "low_confidence_share": low_conf / checkable if checkable > 0 else 0.0,
        "expected_yield_t": sum(p["expected_yield_t"] for p in parcels),
        "yield_factor": _weighted([p["yield_factor"] for p in parcels], areas, 1.0),
        "yield_cv": _weighted(
            [p["yield_cv"] for p in parcels], [p["financed_area_ha"] for p in parcels], 0.0
        ),
        "expected_revenue_eur": revenue,
        "downside_revenue_eur": sum(p["downside_revenue_eur"] for p in parcels),
        "total_cost_eur": cost,
        "cost_to_come_eur": sum(p["cost_to_come_eur"] for p in parcels),
        "cost_through_stage_eur": sum(p["cost_through_stage_eur"] for p in parcels),
        "expected_margin_eur": revenue - cost,
        "margin_ratio": revenue / cost if cost > 0 else 0.0,
        "annual_debt_service_eur": debt,
        "debt_service_ratio": min(debt / revenue, cfg.max_debt_service_ratio)
        if revenue > 0
        else (cfg.max_debt_service_ratio if debt > 0 else 0.0),
        "years_with_lender": max(_num(farmer.get("years_with_lender")), 0.0),
        "n_not_cropland": n_notcrop,
        "all_not_cropland": n_notcrop == len(parcels),
        **{f"flag_{f}": f in flags for f in FLAGS},
        "flags": flags,
        "overlaps": [o for p in parcels for o in p["overlaps"]],
        "evidence": [
            {k: v for k, v in p.items() if k not in ("overlaps", "visible", "checked")}
            for p in parcels
        ],
    }


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
    fmap = {str(r["farmer_id"]): r for r in records(farmers)}
    missing = sorted({str(f) for f in assessment["farmer_id"]} - set(fmap))
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
    parcels_by_farmer: dict[str, list[dict[str, Any]]] = {}
    for p in records(assessment):
        row = _parcel_row(p, economics, season, stage, cfg, by_parcel.get(str(p["parcel_id"]), []))
        row["region"] = str(p["region"])
        parcels_by_farmer.setdefault(str(p["farmer_id"]), []).append(row)
    rows = [
        _farmer_row(fid, parcels, dict(fmap[fid]), cfg)
        for fid, parcels in sorted(parcels_by_farmer.items())
    ]
    for r in rows:
        for ev in r["evidence"]:
            ev.pop("region", None)
    without = sorted(set(fmap) - set(parcels_by_farmer))
    if without:
        log.info("%d farmer(s) have no assessed parcel and get no features", len(without))
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out.insert(1, "stage", stage.value)
    out.insert(2, "season", season.year)
    return out.reset_index(drop=True)
