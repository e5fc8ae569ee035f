"""The credit limit policy: plain rules a risk committee can read.

One farmer's decision (:func:`decide_one`) in order:

1. **Target.** ``funding need = cost per ha x (verified ha + credit x unverified ha)`` (EUR;
   unverified area counts at the feature step's haircut), ``repayment capacity =
   capacity_share x downside revenue - annual debt service`` (downside = 10th percentile yield),
   ``target = min(financing_ratio x funding need, capacity, cap_eur) x PD band scale``.
2. **Hard zeros.** PD above ``pd_cutoff``; every parcel not cropland; an unresolved overlap with
   another farmer's pledge. (A single non-cropland parcel among several only loses its own
   share: it is simply not in the funding need.)
3. **Re-limits** (when a previous limit exists):
   - weak evidence (area-weighted observed fraction < ``min_observed_fraction`` or a share of
     low-confidence area > ``max_low_confidence_share``) HOLDS the previous limit and asks for
     review instead of moving it, unless crop stress is confirmed on what was seen;
   - confirmed crop stress (watch/stressed/failed for two dekads) always cuts, held or not:
     by ``watch_cut`` x watch share + ``stress_cut`` x stressed share + ``failed_cut`` x
     failed share, at least ``min_health_cut``; the shares are of the farmer's expected
     revenue at reference health (the money at risk, ``scoring.features``), and the cut is
     never undone by the hysteresis below;
   - stress seen early (a parcel's health fell sharply against its own curve AND is below its
     crop's reference, on at least ``features.drop_min_share`` of the revenue: a drought at
     flowering, before the 3-dekad z confirms it) cuts like confirmed stress, by ``drop_cut``
     x drop share (at least ``min_health_cut``);
   - stress seen for a single dekad waits (no cut yet) and allows no raise: hysteresis;
   - changes below ``hysteresis_share`` are ignored;
   - no raise once a parcel had a stress episode this season (its worst sustained health z
     fell to ``features.stress_seen_z``): the damage stays in the yield expectation;
   - a stage moves the limit by at most ``-max_cut_per_stage`` / ``+max_raise_per_stage``.
4. **Ceiling and floor.** The limit never exceeds ``min(cap, financing_ratio x funding need of
   all declared, uncontradicted area)`` and is NEVER below what the farmer has drawn; limits are
   rounded down to ``rounding_eur``.

:func:`decide_batch` applies this to every farmer, adds the model's reasons after the policy's
own and writes a counterfactual: the one thing that would raise the limit most.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from geo.types import GrowthStage
from scoring.features import FeatureConfig, records

ACTIONS: Final[tuple[str, ...]] = ("set", "raise", "cut", "keep", "hold", "zero")
DECISION_COLUMNS: Final[tuple[str, ...]] = (
    "farmer_id",
    "stage",
    "limit_eur",
    "previous_limit_eur",
    "drawn_eur",
    "action",
    "pd",
    "pd_band",
    "reasons",
    "flags",
    "counterfactual",
    "needs_review",
    "evidence",
)


class PDBand(BaseModel):
    """PDs up to ``max_pd`` (inclusive) get band ``name`` and their target x ``scale``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    max_pd: float = Field(ge=0, le=1)
    scale: float = Field(ge=0, le=1)


def _default_bands() -> list[PDBand]:
    return [
        PDBand(name="A", max_pd=0.03, scale=1.0),
        PDBand(name="B", max_pd=0.06, scale=0.9),
        PDBand(name="C", max_pd=0.10, scale=0.75),
        PDBand(name="D", max_pd=0.15, scale=0.5),
    ]


class PolicyConfig(BaseModel):
    """The versioned limit policy. Money in EUR, shares 0-1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = "policy-2026.4"
    financing_ratio: float = Field(default=0.8, gt=0, le=1)
    cap_eur: float = Field(default=150_000.0, gt=0)
    capacity_share: float = Field(default=0.9, gt=0, le=1)
    pd_cutoff: float = Field(default=0.15, gt=0, le=1)
    pd_bands: list[PDBand] = Field(default_factory=_default_bands)
    max_cut_per_stage: float = Field(default=0.30, ge=0, le=1)
    max_raise_per_stage: float = Field(default=0.20, ge=0)
    hysteresis_share: float = Field(default=0.05, ge=0, le=1)
    min_observed_fraction: float = Field(default=0.5, ge=0, le=1)
    max_low_confidence_share: float = Field(default=0.3, ge=0, le=1)
    stress_cut: float = Field(default=0.30, ge=0, le=1)
    failed_cut: float = Field(default=0.70, ge=0, le=1)
    watch_cut: float = Field(default=0.15, ge=0, le=1)
    drop_cut: float = Field(default=0.15, ge=0, le=1)
    min_health_cut: float = Field(default=0.10, ge=0, le=1)
    zero_on_overlap: bool = True
    rounding_eur: float = Field(default=10.0, gt=0)
    features: FeatureConfig = Field(default_factory=lambda: FeatureConfig())

    @model_validator(mode="after")
    def _bands_ordered(self) -> PolicyConfig:
        bands = self.pd_bands
        if not bands:
            raise ValueError("pd_bands is empty; give at least one band")
        for a, b in zip(bands, bands[1:], strict=False):
            if not (a.max_pd < b.max_pd and a.scale >= b.scale):
                raise ValueError(
                    f"pd_bands {a.name} -> {b.name}: max_pd must increase and scale must not "
                    "increase; order the bands from safest to riskiest"
                )
        if bands[-1].max_pd < self.pd_cutoff:
            raise ValueError(
                f"the last pd band ends at {bands[-1].max_pd} below pd_cutoff {self.pd_cutoff}; "
                "extend it to the cutoff"
            )
        return self

    def band(self, pd_: float) -> tuple[str, float]:
        """(band name, scale) of a PD; above the cutoff: ("declined", 0)."""
        if pd_ > self.pd_cutoff:
            return "declined", 0.0
        for b in self.pd_bands:
            if pd_ <= b.max_pd:
                return b.name, b.scale
        return "declined", 0.0


@dataclass(frozen=True)
class LimitInputs:
    """Everything :func:`decide_one` needs about one farmer (EUR, ha, shares 0-1)."""

    stage: GrowthStage
    pd: float
    verified_area_ha: float
    unverified_area_ha: float = 0.0
    unverified_credit: float = 0.7
    cost_per_ha_eur: float = 800.0
    downside_revenue_per_ha_eur: float = 1100.0
    debt_service_eur: float = 0.0
    drawn_eur: float = 0.0
    previous_limit_eur: float | None = None
    observed_fraction: float = 1.0
    low_confidence_share: float = 0.0
    #: shares of the expected revenue (at reference health) on parcels with confirmed stress
    stressed_share: float = 0.0
    watch_share: float = 0.0
    stress_seen_share: float = 0.0
    failed_share: float = 0.0
    #: share of the expected revenue on parcels whose health dropped sharply (stress seen early)
    drop_share: float = 0.0
    n_stressed_parcels: int = 0
    stress_pending: bool = False
    all_not_cropland: bool = False
    overlap: bool = False


@dataclass
class LimitDecision:
    """The outcome of :func:`decide_one`."""

    limit_eur: float
    action: str
    pd_band: str
    reasons: list[str] = field(default_factory=list)
    needs_review: bool = False
    hard_zero: str = ""
    numbers: dict[str, float] = field(default_factory=dict)


def _eur(x: float) -> str:
    return f"EUR {x:,.0f}"


def _floor(x: float, step: float) -> float:
    return math.floor(max(x, 0.0) / step) * step


def decide_one(x: LimitInputs, cfg: PolicyConfig) -> LimitDecision:
    """One farmer's limit under the policy (see the module docstring for the rules)."""
    reasons: list[str] = []
    band, scale = cfg.band(x.pd)
    area = x.verified_area_ha + x.unverified_credit * x.unverified_area_ha
    need = x.cost_per_ha_eur * area
    capacity = max(0.0, cfg.capacity_share * x.downside_revenue_per_ha_eur * area)
    capacity = max(0.0, capacity - x.debt_service_eur)
    full_need = x.cost_per_ha_eur * (x.verified_area_ha + x.unverified_area_ha)
    ceiling = min(cfg.cap_eur, cfg.financing_ratio * full_need)
    base = min(cfg.financing_ratio * need, capacity, cfg.cap_eur)
    target = base * scale
    numbers = {
        "funding_need_eur": round(need, 2),
        "repayment_capacity_eur": round(capacity, 2),
        "cap_eur": cfg.cap_eur,
        "pd_scale": scale,
        "target_eur": round(target, 2),
        "ceiling_eur": round(ceiling, 2),
    }
    if capacity < cfg.financing_ratio * need and capacity < cfg.cap_eur:
        reasons.append(f"limited by repayment capacity of {_eur(capacity)}")
    elif cfg.cap_eur < cfg.financing_ratio * need:
        reasons.append(f"limited by the cap of {_eur(cfg.cap_eur)}")
    if 0 < scale < 1:
        reasons.append(f"PD {x.pd:.1%} in band {band}: target x {scale:.2f}")

    hard_zero = ""
    if x.all_not_cropland:
        hard_zero = "no parcel is cropland on the imagery"
    elif x.overlap and cfg.zero_on_overlap:
        hard_zero = "a pledged parcel overlaps another farmer's pledge"
    elif x.pd > cfg.pd_cutoff:
        hard_zero = f"PD {x.pd:.1%} above the cutoff {cfg.pd_cutoff:.0%}"

    prev = x.previous_limit_eur
    needs_review = False
    weak = (
        x.observed_fraction < cfg.min_observed_fraction
        or x.low_confidence_share > cfg.max_low_confidence_share
    )
    stress = x.watch_share + x.stressed_share + x.failed_share + x.drop_share
    if hard_zero:
        limit = 0.0
        action = "zero"
        reasons.insert(0, f"limit zero: {hard_zero}")
    elif prev is None or (prev <= 0 and not weak):
        # a first limit, or a fresh one once the reason for a zero limit has cleared (the
        # bounded change per stage is relative and would keep a zero limit at zero forever)
        limit = target
        action = "set"
    else:
        limit = target
        action = ""
        why = ""
        if weak:
            why = (
                f"only {x.observed_fraction:.0%} of the area observed"
                if x.observed_fraction < cfg.min_observed_fraction
                else f"crop type uncertain on {x.low_confidence_share:.0%} of the area"
            )
        if weak and stress <= 0:
            limit, action, needs_review = prev, "hold", True
            reasons.insert(0, f"limit held for review: {why}")
        else:
            if weak:  # the stress seen is evidence enough to cut; the rest waits for review
                limit, needs_review = prev, True
                reasons.append(f"review: {why}")
            stress_limit = math.inf
            if stress > 0:
                cut = (
                    cfg.watch_cut * x.watch_share
                    + cfg.stress_cut * x.stressed_share
                    + cfg.failed_cut * x.failed_share
                    + cfg.drop_cut * x.drop_share
                )
                cut = min(max(cut, cfg.min_health_cut), cfg.max_cut_per_stage)
                stress_limit = prev * (1 - cut)
            elif x.stress_pending and limit != prev:
                limit = prev
                reasons.insert(0, "possible stress seen once: waiting for a second dekad")
            if abs(limit - prev) < cfg.hysteresis_share * prev:
                limit = prev
            limit = min(limit, stress_limit)  # a stress cut is no noise: never ignored
            if limit > prev and x.stress_seen_share > 0:
                limit = prev  # a stress episode this season: no raise until harvest shows
                reasons.insert(0, "no raise: crop stress seen earlier this season")
            lo = prev * (1 - cfg.max_cut_per_stage)
            hi = prev * (1 + cfg.max_raise_per_stage)
            limit = min(max(limit, lo), hi)
        limit = min(limit, ceiling)
    if prev is None or limit < prev:
        limit = _floor(limit, cfg.rounding_eur)
    elif limit > prev:  # round down, but a raise never ends below the previous limit
        limit = max(prev, _floor(limit, cfg.rounding_eur))
    at_drawn = limit < x.drawn_eur
    if at_drawn:
        limit = float(x.drawn_eur)
    if prev is not None and action == "":
        change = (limit - prev) / prev if prev > 0 else (1.0 if limit > 0 else 0.0)
        if abs(limit - prev) < 0.5:
            action = "keep"
        elif limit > prev:
            action = "raise"
            reasons.insert(0, f"limit raised {change:.0%}")
        else:
            action = "cut"
            what = (
                f": crop stress on {x.n_stressed_parcels} parcel"
                f"{'s' if x.n_stressed_parcels != 1 else ''}, "
                f"{min(stress, 1.0):.0%} of expected revenue"
                if stress > 0
                else ""
            )
            reasons.insert(0, f"limit cut {-change:.0%}{what}")
    if at_drawn:
        reasons.append(f"limit kept at the {_eur(x.drawn_eur)} already drawn")
    return LimitDecision(
        limit_eur=float(limit),
        action=action,
        pd_band=band,
        reasons=reasons,
        needs_review=needs_review,
        hard_zero=hard_zero,
        numbers=numbers,
    )


def limit_single(x: LimitInputs, cfg: PolicyConfig) -> float:
    """The limit (EUR) of :func:`decide_one`, for property tests and quick checks."""
    return decide_one(x, cfg).limit_eur


def inputs_from_features(
    row: Mapping[str, Any],
    pd_: float,
    stage: GrowthStage,
    previous: float | None,
    drawn: float,
    cfg: PolicyConfig,
) -> LimitInputs:
    """Build :class:`LimitInputs` from one row of ``scoring.features.farmer_features``."""
    financed = float(row["financed_area_ha"])
    verified = float(row["verified_area_ha"])
    unverified = float(row["unverified_area_ha"])
    credit = (financed - verified) / unverified if unverified > 0 else 0.0
    cost_ha = float(row["total_cost_eur"]) / financed if financed > 0 else 0.0
    down_ha = float(row["downside_revenue_eur"]) / financed if financed > 0 else 0.0
    return LimitInputs(
        stage=stage,
        pd=float(pd_),
        verified_area_ha=verified,
        unverified_area_ha=unverified,
        unverified_credit=min(max(credit, 0.0), 1.0),  # np.clip, without its overhead
        cost_per_ha_eur=cost_ha,
        downside_revenue_per_ha_eur=down_ha,
        debt_service_eur=float(row["annual_debt_service_eur"]),
        drawn_eur=float(drawn),
        previous_limit_eur=previous,
        observed_fraction=float(row["observed_fraction"]),
        low_confidence_share=float(row["low_confidence_share"]),
        stressed_share=float(row["stressed_share"]),
        watch_share=float(row.get("watch_share", 0.0)),
        stress_seen_share=float(row.get("stress_seen_share", 0.0)),
        failed_share=float(row["failed_share"]),
        drop_share=float(row.get("drop_share", 0.0)),
        n_stressed_parcels=int(row["n_stressed_parcels"]),
        stress_pending=bool(row["stress_pending"]),
        all_not_cropland=bool(row["all_not_cropland"]),
        overlap=bool(row["flag_overlap"]),
    )


def _counterfactual(
    row: Mapping[str, Any], x: LimitInputs, d: LimitDecision, cfg: PolicyConfig
) -> str:
    """The one change that would raise the limit most, in words."""
    if d.hard_zero and x.overlap:
        o = row["overlaps"][0]
        return (
            f"resolve the overlap with {o['other_farmer_id']} on {o['parcel_id']} "
            f"({o['overlap_ha']:.2f} ha)"
        )
    if d.hard_zero and x.all_not_cropland:
        return "send field photos or a cadastral extract showing the parcels are cropland"
    if d.hard_zero:
        return "lower the debt service or add verified area to bring the PD under the cutoff"
    if d.action == "hold":
        low = [e for e in row["evidence"] if e["observed_fraction"] < cfg.min_observed_fraction]
        ids = ", ".join(e["parcel_id"] for e in low[:3]) or "the farm"
        return f"a clear image or field visit of {ids} lets the limit be reassessed"
    wrong = [e for e in row["evidence"] if e["status"] == "wrong_crop"]
    if wrong:
        e = wrong[0]
        return (
            f"correct the declaration of {e['parcel_id']} (declared {e['declared_crop']}, "
            f"imagery shows {e['detected_crop']}) to have it financed"
        )
    if x.unverified_area_ha > 0.05:
        better = dataclasses.replace(
            x,
            verified_area_ha=x.verified_area_ha + x.unverified_area_ha,
            unverified_area_ha=0.0,
            low_confidence_share=0.0,
        )
        gain = decide_one(better, cfg).limit_eur - d.limit_eur
        if gain >= cfg.rounding_eur:
            crop = str(row.get("main_crop", "crop")).replace("_", " ")
            return (
                f"verify {x.unverified_area_ha:.1f} ha more of declared {crop} to raise the "
                f"limit by ~{_eur(gain)}"
            )
    notcrop = [e for e in row["evidence"] if e["status"] == "not_cropland"]
    if notcrop:
        e = notcrop[0]
        return f"show that {e['parcel_id']} ({e['declared_area_ha']:.1f} ha) is cropland"
    return ""


def decide_batch(
    features: pd.DataFrame,
    pd_: np.ndarray | Sequence[float],
    reasons: Sequence[list[str]],
    previous: pd.DataFrame | None,
    drawn: pd.Series,
    stage: GrowthStage,
    cfg: PolicyConfig,
) -> pd.DataFrame:
    """Decisions for every farmer of ``features`` (DESIGN.md "Decisions" contract).

    Args:
        features: ``farmer_features`` output.
        pd_: PD per row of ``features`` (0-1).
        reasons: model reasons per row (``PDModel.reasons``); appended after the policy's.
        previous: the limits in force (farmer_id, limit_eur), or None at the first decision.
        drawn: EUR drawn so far per farmer_id (missing = 0).
        stage: the decision point.
        cfg: the policy.

    Returns:
        One row per farmer with the columns of :data:`DECISION_COLUMNS`.
    """
    pds = np.asarray(pd_, dtype=float)
    if len(pds) != len(features) or len(reasons) != len(features):
        raise ValueError(
            f"decide_batch: {len(features)} feature rows but {len(pds)} PDs and "
            f"{len(reasons)} reason lists; pass one per farmer"
        )
    prev_map: dict[str, float] = {}
    if previous is not None and len(previous):
        prev_map = {
            str(k): float(v)
            for k, v in zip(previous["farmer_id"], previous["limit_eur"], strict=True)
            if not pd.isna(v)
        }
    drawn_map = {str(k): float(v) for k, v in drawn.items()} if drawn is not None else {}
    out: list[dict[str, Any]] = []
    for i, row in enumerate(records(features)):
        fid = str(row["farmer_id"])
        prev = prev_map.get(fid)
        x = inputs_from_features(row, pds[i], stage, prev, drawn_map.get(fid, 0.0), cfg)
        d = decide_one(x, cfg)
        policy_reasons = list(d.reasons)
        stress = x.watch_share + x.stressed_share + x.failed_share
        if d.action == "cut" and stress > 0 and row["health_since"]:
            crop = str(row["health_worst_crop"]).replace("_", " ")
            policy_reasons[0] += (
                f" ({crop} {abs(float(row['health_worst_z'])):.1f} sd below reference since "
                f"{row['health_since']})"
            )
        elif d.action == "cut" and x.drop_share > 0 and row.get("health_drop_crop"):
            crop = str(row["health_drop_crop"]).replace("_", " ")
            policy_reasons[0] += (
                f" ({crop} health fell {float(row['health_drop_z']):.1f} sd against its own "
                "curve in the last dekads)"
            )
        flags = list(row["flags"])
        if d.needs_review:
            flags.append("held_for_review")
        if d.limit_eur == x.drawn_eur and x.drawn_eur > 0:
            flags.append("at_drawn")
        out.append(
            {
                "farmer_id": fid,
                "stage": stage.value,
                "limit_eur": d.limit_eur,
                "previous_limit_eur": prev if prev is not None else float("nan"),
                "drawn_eur": x.drawn_eur,
                "action": d.action,
                "pd": float(pds[i]),
                "pd_band": d.pd_band,
                "reasons": [*policy_reasons, *reasons[i]],
                "flags": flags,
                "counterfactual": _counterfactual(row, x, d, cfg),
                "needs_review": d.needs_review or bool(d.hard_zero and x.overlap),
                "evidence": {
                    "policy": d.numbers,
                    "areas_ha": {
                        "declared": round(float(row["declared_area_ha"]), 3),
                        "verified": round(x.verified_area_ha, 3),
                        "unverified": round(x.unverified_area_ha, 3),
                        "financed": round(float(row["financed_area_ha"]), 3),
                    },
                    "money_eur": {
                        "expected_revenue": round(float(row["expected_revenue_eur"]), 2),
                        "total_cost": round(float(row["total_cost_eur"]), 2),
                        "cost_to_come": round(float(row["cost_to_come_eur"]), 2),
                    },
                    "parcels": row["evidence"],
                    "overlaps": row["overlaps"],
                },
            }
        )
    return pd.DataFrame(out, columns=list(DECISION_COLUMNS))
