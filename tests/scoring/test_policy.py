"""Limit policy: rules and hypothesis properties of decide_one / limit_single."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.types import GrowthStage
from scoring.policy import LimitInputs, PDBand, PolicyConfig, decide_one, limit_single

CFG = PolicyConfig()
STAGES = list(GrowthStage)


def base(**kw) -> LimitInputs:
    x = LimitInputs(
        stage=GrowthStage.VEGETATIVE,
        pd=0.02,
        verified_area_ha=50,
        cost_per_ha_eur=900,
        downside_revenue_per_ha_eur=1200,
        debt_service_eur=3000,
    )
    return dataclasses.replace(x, **kw)


HALF_UNVERIFIED = {"verified_area_ha": 25, "unverified_area_ha": 25, "unverified_credit": 0.0}
money = st.floats(0, 400_000, allow_nan=False)
inputs = st.builds(
    LimitInputs,
    stage=st.sampled_from(STAGES),
    pd=st.floats(0, 1),
    verified_area_ha=st.floats(0, 500),
    unverified_area_ha=st.floats(0, 200),
    unverified_credit=st.floats(0, 1),
    cost_per_ha_eur=st.floats(0, 6000),
    downside_revenue_per_ha_eur=st.floats(0, 9000),
    debt_service_eur=st.floats(0, 100_000),
    drawn_eur=st.one_of(st.just(0.0), money),
    previous_limit_eur=st.one_of(st.none(), money),
    observed_fraction=st.floats(0, 1),
    low_confidence_share=st.floats(0, 1),
    stressed_share=st.floats(0, 1),
    failed_share=st.just(0.0) | st.floats(0, 1),
    n_stressed_parcels=st.integers(0, 5),
    stress_pending=st.booleans(),
    all_not_cropland=st.booleans(),
    overlap=st.booleans(),
)


def ceiling(x: LimitInputs) -> float:
    return min(
        CFG.cap_eur,
        CFG.financing_ratio * x.cost_per_ha_eur * (x.verified_area_ha + x.unverified_area_ha),
    )


@settings(max_examples=300, deadline=None)
@given(inputs)
def test_limit_within_cap_and_need_unless_drawn(x: LimitInputs) -> None:
    d = decide_one(x, CFG)
    assert d.limit_eur >= x.drawn_eur
    if d.limit_eur > ceiling(x) + 1e-6:
        assert d.limit_eur == x.drawn_eur  # only a higher draw lifts it, and then exactly
    assert d.action in ("set", "raise", "cut", "keep", "hold", "zero")


@settings(max_examples=200, deadline=None)
@given(inputs, st.floats(0, 1), st.floats(0, 1))
def test_monotone_non_increasing_in_pd(x: LimitInputs, p1: float, p2: float) -> None:
    lo, hi = sorted((p1, p2))
    assert limit_single(dataclasses.replace(x, pd=lo), CFG) >= limit_single(
        dataclasses.replace(x, pd=hi), CFG
    )


@settings(max_examples=200, deadline=None)
@given(inputs, st.floats(0, 100))
def test_monotone_non_decreasing_in_verified_area(x: LimitInputs, extra: float) -> None:
    more = dataclasses.replace(x, verified_area_ha=x.verified_area_ha + extra)
    assert limit_single(more, CFG) >= limit_single(x, CFG)


@settings(max_examples=100, deadline=None)
@given(inputs)
def test_same_inputs_same_decision(x: LimitInputs) -> None:
    assert decide_one(x, CFG) == decide_one(dataclasses.replace(x), CFG)


def test_pre_sowing_limit_is_min_of_need_capacity_cap() -> None:
    x = base(stage=GrowthStage.PRE_SOWING)
    need = 0.8 * 50 * 900
    capacity = 0.9 * 1200 * 50 - 3000
    assert limit_single(x, CFG) == pytest.approx(min(need, capacity), abs=10)
    poor = base(stage=GrowthStage.PRE_SOWING, downside_revenue_per_ha_eur=700)
    d = decide_one(poor, CFG)
    assert d.limit_eur == pytest.approx(0.9 * 700 * 50 - 3000, abs=10)
    assert any("repayment capacity" in r for r in d.reasons)
    big = base(stage=GrowthStage.PRE_SOWING, verified_area_ha=5000)
    assert limit_single(big, CFG) == CFG.cap_eur


def test_pd_bands_scale_and_cutoff() -> None:
    a, c = decide_one(base(pd=0.01), CFG), decide_one(base(pd=0.08), CFG)
    assert c.pd_band == "C" and c.limit_eur == pytest.approx(a.limit_eur * 0.75, abs=10)
    z = decide_one(base(pd=0.2, previous_limit_eur=30_000), CFG)
    assert z.limit_eur == 0 and z.action == "zero" and "cutoff" in z.reasons[0]


def test_hard_zeros_but_never_below_drawn() -> None:
    d = decide_one(base(all_not_cropland=True, previous_limit_eur=20_000, drawn_eur=5000), CFG)
    assert d.action == "zero" and d.limit_eur == 5000
    assert any("already drawn" in r for r in d.reasons)
    o = decide_one(base(overlap=True), CFG)
    assert o.limit_eur == 0 and "overlaps" in o.reasons[0]


def test_relimit_bounded_per_stage() -> None:
    up = decide_one(base(previous_limit_eur=10_000), CFG)
    assert up.action == "raise" and up.limit_eur == 12_000
    # 25 of 50 ha verified, no credit for the rest: target 18,000 < 36,000 x 0.7
    down = decide_one(base(previous_limit_eur=36_000, **HALF_UNVERIFIED), CFG)
    assert down.action == "cut" and down.limit_eur == 25_200


def test_hysteresis_ignores_small_changes() -> None:
    target = limit_single(base(), CFG)
    d = decide_one(base(previous_limit_eur=target * 0.97), CFG)
    assert d.action == "keep" and d.limit_eur == pytest.approx(target * 0.97)


def test_weak_evidence_holds_instead_of_cutting() -> None:
    for weak in ({"observed_fraction": 0.2}, {"low_confidence_share": 0.6}):
        d = decide_one(base(previous_limit_eur=36_000, **HALF_UNVERIFIED, **weak), CFG)
        assert d.action == "hold" and d.limit_eur == 36_000 and d.needs_review
        assert d.reasons[0].startswith("limit held for review")


def test_confirmed_stress_always_cuts() -> None:
    target = limit_single(base(), CFG)
    d = decide_one(base(previous_limit_eur=target, stressed_share=0.3, n_stressed_parcels=2), CFG)
    assert d.action == "cut" and d.limit_eur <= target * 0.9
    assert d.reasons[0].startswith("limit cut") and "2 parcels" in d.reasons[0]
    failed = decide_one(base(previous_limit_eur=target, failed_share=1.0), CFG)
    assert failed.limit_eur == pytest.approx(target * 0.7, abs=10)  # bounded at -30 %


def test_stress_cut_grows_with_the_revenue_at_risk_and_bites_on_any_headroom() -> None:
    target = limit_single(base(), CFG)
    small, large = (
        decide_one(base(previous_limit_eur=target, watch_share=w, n_stressed_parcels=1), CFG)
        for w in (0.2, 1.0)
    )
    assert small.limit_eur == pytest.approx(target * (1 - CFG.min_health_cut), abs=10)
    assert large.limit_eur == pytest.approx(target * (1 - CFG.watch_cut), abs=10)
    assert "100% of expected revenue" in large.reasons[0]
    # a previous limit just above the target: the target alone would be noise (hysteresis),
    # the stress cut is not; and it stops at what is drawn
    prev = target * 1.03
    d = decide_one(base(previous_limit_eur=prev, stressed_share=0.5, drawn_eur=prev - 40), CFG)
    assert d.action == "cut" and d.limit_eur == pytest.approx(prev - 40)
    full = decide_one(base(previous_limit_eur=prev, stressed_share=0.5, drawn_eur=prev), CFG)
    assert full.action == "keep" and full.limit_eur == prev  # fully drawn: nothing to cut


def test_confirmed_stress_cuts_even_when_the_evidence_is_otherwise_weak() -> None:
    target = limit_single(base(), CFG)
    d = decide_one(base(previous_limit_eur=target, observed_fraction=0.3, failed_share=0.5), CFG)
    assert d.action == "cut" and d.needs_review
    assert d.limit_eur == pytest.approx(target * (1 - CFG.max_cut_per_stage), abs=10)
    assert any(r.startswith("review: only 30%") for r in d.reasons)


def test_pending_stress_and_a_past_episode_allow_no_raise() -> None:
    for kw in ({"stress_pending": True}, {"stress_seen_share": 0.1}):
        d = decide_one(base(previous_limit_eur=10_000, **kw), CFG)
        assert d.action == "keep" and d.limit_eur == 10_000, kw
    assert decide_one(base(previous_limit_eur=10_000), CFG).action == "raise"


def test_pending_stress_waits_a_dekad() -> None:
    d = decide_one(base(previous_limit_eur=36_000, stress_pending=True, **HALF_UNVERIFIED), CFG)
    assert d.action == "keep" and d.limit_eur == 36_000


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_pd must increase"):
        PolicyConfig(
            pd_bands=[
                PDBand(name="A", max_pd=0.1, scale=1),
                PDBand(name="B", max_pd=0.05, scale=0.5),
            ]
        )
    with pytest.raises(ValueError, match="extra"):
        PolicyConfig(financing_ration=0.8)  # type: ignore[call-arg]


def test_stress_seen_early_cuts_at_flowering() -> None:
    target = limit_single(base(), CFG)
    x = base(stage=GrowthStage.FLOWERING, previous_limit_eur=target, n_stressed_parcels=1)
    d = decide_one(dataclasses.replace(x, drop_share=1.0), CFG)
    assert d.action == "cut"
    assert d.limit_eur == pytest.approx(target * (1 - CFG.drop_cut), abs=10)
    assert "crop stress on 1 parcel" in d.reasons[0]
    small = decide_one(dataclasses.replace(x, drop_share=0.2), CFG)
    assert small.limit_eur == pytest.approx(target * (1 - CFG.min_health_cut), abs=10)
    assert decide_one(x, CFG).action == "keep"  # no drop: nothing to cut
    assert PolicyConfig().version == "policy-2026.4"
