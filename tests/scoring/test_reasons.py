"""Reason codes in words."""

from __future__ import annotations

from scoring.reasons import reasons_for

ROW = {
    "health_z": -1.84,
    "health_since": "2026-07-01",
    "health_worst_crop": "maize",
    "verified_share": 0.62,
    "margin_ratio": 1.13,
    "debt_service_ratio": 0.2,
    "years_with_lender": 0,
    "crop_diversity": 1,
    "area_gap_share": 0.0,
}


def test_reasons_are_ranked_and_phrased() -> None:
    contribs = {
        "health_z": 0.9,
        "verified_share": 0.5,
        "margin_ratio": -0.7,
        "years_with_lender": 0.1,
        "crop_diversity": 0.0,
        "bias": -3.0,
    }
    r = reasons_for(ROW, contribs, top=3)
    assert r == [
        "health 1.8 sd below maize reference since 2026-07-01 (raises risk)",
        "expected revenue covers costs 1.1x (lowers risk)",
        "only 62% of declared area verified by imagery (raises risk)",
    ]


def test_small_contributions_are_dropped_and_top_respected() -> None:
    contribs = {"health_z": 0.01, "years_with_lender": 0.3, "debt_service_ratio": 0.2}
    r = reasons_for(ROW, contribs, top=1)
    assert r == ["new customer (raises risk)"]
    assert len(reasons_for(ROW, contribs, top=5)) == 2


def test_farm_average_and_worst_parcel_health() -> None:
    row = {**ROW, "health_z": -1.5, "health_worst_z": -2.5}
    assert reasons_for(row, {"health_z": 0.4}) == [
        "health 1.5 sd below reference on average (maize: 2.5 sd below since 2026-07-01) "
        "(raises risk)"
    ]
