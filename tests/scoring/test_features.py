"""Farmer features: parcel status, areas, flags, health and money."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from scoring_fixtures import NO_OVERLAPS, farmers_for, frame, parcel

from geo.errors import TableError
from geo.types import GrowthStage, Season
from scoring.features import farmer_features

S = Season(2026)


def feats(rows, economics, stage=GrowthStage.VEGETATIVE, overlaps=NO_OVERLAPS, ids=None):
    df = frame(rows)
    ids = ids or sorted(set(df["farmer_id"]))
    return farmer_features(df, farmers_for(ids), overlaps, economics, S, stage).set_index(
        "farmer_id"
    )


def test_verified_area_uses_planted_area(economics) -> None:
    f = feats(
        [
            parcel("P1", "F1", "winter_cereals", 10, planted_area_ha=9),
            parcel("P2", "F1", "maize", 5, detected_crop="sunflower", confidence=0.9),
            parcel("P3", "F1", "rapeseed", 5, confidence=0.3),
        ],
        economics,
    ).loc["F1"]
    assert f["declared_area_ha"] == pytest.approx(20)
    assert f["verified_area_ha"] == pytest.approx(9)
    # the unsure 5 ha of P3 are no evidence either way: out of the verified share
    assert f["verified_share"] == pytest.approx(9 / 15)
    assert f["low_confidence_share"] == pytest.approx(5 / 20)
    assert f["crop_diversity"] == 3
    assert "wrong_crop" in f["flags"]
    statuses = {e["parcel_id"]: e["status"] for e in f["evidence"]}
    assert statuses == {"P1": "verified", "P2": "wrong_crop", "P3": "low_confidence"}
    # financed: 9 verified + 0.5 x 5 low-confidence ha; wrong crop gets nothing
    assert f["financed_area_ha"] == pytest.approx(11.5)


def test_a_weak_contradiction_is_low_confidence_not_wrong_crop(economics) -> None:
    """Another crop at 0.7 (calibrated: a 30 % chance the declaration is right) is held as
    unsure and half financed; at 0.95 it withholds credit; verification needs only 0.6."""
    f = feats(
        [
            parcel("P1", "F1", "maize", 5, detected_crop="sunflower", confidence=0.7),
            parcel("P2", "F1", "maize", 5, detected_crop="non_crop", confidence=0.7),
            parcel("P3", "F1", "maize", 5, detected_crop="sunflower", confidence=0.95),
            parcel("P4", "F1", "maize", 5, planted_area_ha=5, confidence=0.65),
        ],
        economics,
    ).loc["F1"]
    statuses = {e["parcel_id"]: e["status"] for e in f["evidence"]}
    assert statuses == {
        "P1": "low_confidence",
        "P2": "low_confidence",
        "P3": "wrong_crop",
        "P4": "verified",
    }
    assert "wrong_crop" in f["flags"] and "not_cropland" not in f["flags"]
    assert f["low_confidence_share"] == pytest.approx(10 / 20)
    assert f["financed_area_ha"] == pytest.approx(5 + 0.5 * 10)


def test_pre_sowing_does_not_punish_invisible_spring_crops(economics) -> None:
    rows = [
        parcel(
            "P1",
            "F1",
            "maize",
            10,
            detected_crop="non_crop",
            confidence=0.95,
            health_z=-3,
            health_class="failed",
        ),
        parcel("P2", "F2", "winter_cereals", 10),
    ]
    f = feats(rows, economics, stage=GrowthStage.PRE_SOWING)
    spring, winter = f.loc["F1"], f.loc["F2"]
    assert spring["flags"] == []  # bare soil before sowing is not "not cropland"
    assert spring["health_z"] == 0 and spring["yield_factor"] == pytest.approx(1.0)
    assert spring["financed_area_ha"] == pytest.approx(7.0)  # 0.7 verification haircut
    assert spring["verified_share"] == pytest.approx(0.85)  # neutral: nothing checkable yet
    assert winter["verified_share"] == pytest.approx(1.0)
    maize = economics.lookup("maize", "poitou-nord", S)
    assert spring["total_cost_eur"] == pytest.approx(7.0 * maize.cost_eur_ha)
    # the same parcel seen as bare soil at vegetative IS flagged
    later = feats(rows, economics, stage=GrowthStage.VEGETATIVE).loc["F1"]
    assert "not_cropland" in later["flags"]
    assert later["financed_area_ha"] == 0


def test_overstated_area_flag(economics) -> None:
    f = feats(
        [
            parcel("P1", "F1", "winter_cereals", 10, planted_area_ha=7),  # 30 % short
            parcel("P2", "F2", "winter_cereals", 10, planted_area_ha=9),  # within 20 %
            parcel("P3", "F3", "winter_cereals", 1.0, planted_area_ha=0.6),  # < 0.5 ha
        ],
        economics,
    )
    assert f.loc["F1", "flag_overstated_area"]
    assert not f.loc["F2", "flag_overstated_area"]
    assert not f.loc["F3", "flag_overstated_area"]
    assert f.loc["F1", "area_gap_ha"] == pytest.approx(3)
    assert f.loc["F1", "area_gap_share"] == pytest.approx(0.3)


def test_eval_area_check_matches_the_features(economics) -> None:
    """eval.planted counts part-sown parcels caught with the features' own area rule."""
    from eval.planted import short_of_declared

    rows = [
        parcel("P1", "F1", "winter_cereals", 10, planted_area_ha=7),
        parcel("P2", "F2", "winter_cereals", 10, planted_area_ha=9),
        parcel("P3", "F3", "winter_cereals", 1.0, planted_area_ha=0.6),
        parcel("P4", "F4", "maize", 10, planted_area_ha=6, confidence=0.5),
    ]
    flagged = feats(rows, economics)["flag_overstated_area"]
    short = short_of_declared(frame(rows))
    assert short.tolist() == [True, False, False, False]
    assert short.tolist() == [bool(flagged.loc[f]) for f in ("F1", "F2", "F3", "F4")]


def test_overlap_flag_ignores_own_parcels_and_slivers(economics) -> None:
    overlaps = pd.DataFrame(
        [
            ("P1", "F1", "P9", "F9", 2.0, 0.2),
            ("P2", "F2", "P3", "F2", 1.0, 0.5),  # same farmer
            ("P3", "F2", "P8", "F8", 0.01, 0.001),  # sliver
        ],
        columns=NO_OVERLAPS.columns,
    )
    rows = [parcel("P1", "F1"), parcel("P2", "F2"), parcel("P3", "F2")]
    f = feats(rows, economics, overlaps=overlaps)
    assert f.loc["F1", "flag_overlap"] and f.loc["F1", "overlaps"][0]["other_farmer_id"] == "F9"
    assert not f.loc["F2", "flag_overlap"]


def test_no_vegetation_flag(economics) -> None:
    f = feats([parcel("P1", "F1", ndvi_last=0.15), parcel("P2", "F2", ndvi_last=0.7)], economics)
    assert f.loc["F1", "flag_no_vegetation"] and not f.loc["F2", "flag_no_vegetation"]


def test_health_lowers_revenue_and_failed_is_twenty_percent(economics) -> None:
    since = dt.date(2026, 4, 1)
    f = feats(
        [
            parcel("P1", "F1"),
            parcel("P2", "F2", health_z=-2.0, health_class="stressed", health_since=since),
            parcel("P3", "F3", health_z=-4.0, health_class="failed", health_since=since),
            parcel("P4", "F4", health_z=float("nan"), health_class="unknown"),
        ],
        economics,
    )
    good = f.loc["F1", "expected_revenue_eur"]
    assert f.loc["F2", "expected_revenue_eur"] == pytest.approx(good * 0.84)
    assert f.loc["F3", "expected_revenue_eur"] == pytest.approx(good * 0.2)
    assert f.loc["F4", "expected_revenue_eur"] == pytest.approx(good)
    assert f.loc["F4", "health_z"] == 0
    assert f.loc["F2", "health_worst"] == "stressed" and f.loc["F2", "n_stressed_parcels"] == 1
    assert f.loc["F3", "failed_share"] == pytest.approx(1.0)
    assert f.loc["F2", "health_since"] == "2026-04-01"


def test_stress_needs_two_dekads_to_be_confirmed(economics) -> None:
    f = feats(
        [
            parcel(
                "P1", "F1", health_z=-2, health_class="stressed", health_since=dt.date(2026, 4, 28)
            )
        ],
        economics,
    ).loc["F1"]
    assert f["stress_pending"] and f["n_stressed_parcels"] == 0 and f["stressed_share"] == 0


def test_stress_shares_weigh_the_money_at_risk(economics) -> None:
    """Stress shares are shares of the revenue expected at reference health, not of area."""
    since = dt.date(2026, 4, 1)
    f = feats(
        [
            parcel("P1", "F1", "potato", 5, health_z=-1.5, health_class="watch", health_since=since)
            | {"health_season_min_z": -1.5},
            parcel("P2", "F1", "grassland", 5) | {"health_season_min_z": -0.2},
        ],
        economics,
    ).loc["F1"]
    potato = economics.lookup("potato", "poitou-nord", S).revenue_eur_ha
    hay = economics.lookup("grassland", "poitou-nord", S).revenue_eur_ha
    assert potato > 2 * hay
    assert f["watch_share"] == pytest.approx(potato / (potato + hay), rel=1e-6)
    # the episode is remembered: its worst sustained z reached the watch threshold
    assert f["stress_seen_share"] == pytest.approx(f["watch_share"], rel=1e-6)
    calm = feats(
        [parcel("P1", "F1", "potato", 5, health_z=-0.9) | {"health_season_min_z": -0.95}],
        economics,
    ).loc["F1"]
    assert calm["watch_share"] == 0 and calm["stress_seen_share"] == 0


def test_money_is_consistent(economics) -> None:
    f = feats([parcel("P1", "F1", "winter_cereals", 10)], economics).loc["F1"]
    row = economics.lookup("winter_cereals", "poitou-nord", S)
    assert f["total_cost_eur"] == pytest.approx(10 * row.cost_eur_ha)
    assert f["expected_revenue_eur"] == pytest.approx(10 * row.revenue_eur_ha)
    assert f["cost_to_come_eur"] == pytest.approx(
        10 * row.cost_eur_ha * row.share_from(GrowthStage.VEGETATIVE)
    )
    assert f["cost_to_come_eur"] + f["cost_through_stage_eur"] > f["total_cost_eur"]
    assert f["expected_margin_eur"] == pytest.approx(
        f["expected_revenue_eur"] - f["total_cost_eur"]
    )
    assert f["margin_ratio"] == pytest.approx(row.revenue_eur_ha / row.cost_eur_ha)
    assert f["debt_service_ratio"] == pytest.approx(2000 / f["expected_revenue_eur"])


def test_missing_farmer_and_column_raise(economics) -> None:
    df = frame([parcel("P1", "F1")])
    with pytest.raises(TableError, match="no row for farmer.*F1"):
        farmer_features(df, farmers_for(["F2"]), NO_OVERLAPS, economics, S, GrowthStage.SOWING)
    with pytest.raises(TableError, match="missing column.*health_z"):
        farmer_features(
            df.drop(columns="health_z"),
            farmers_for(["F1"]),
            NO_OVERLAPS,
            economics,
            S,
            GrowthStage.SOWING,
        )


def test_a_sharp_drop_below_reference_is_stress_seen_early(economics) -> None:
    """Flowering: a parcel that fell 1.4 sd against its own curve and sits below its crop's
    reference is stress seen early; a steady low parcel, a drop that stays above the reference
    and a small dropped parcel on a big farm are not."""
    fl = GrowthStage.FLOWERING

    def one(z: float, drop: float, farmer: str = "F1", pid: str = "P1", ha: float = 5):
        return parcel(pid, farmer, "sunflower", ha, health_z=z) | {"health_drop_z": drop}

    f = feats(
        [
            one(-0.6, 1.4),
            one(-0.9, 0.1, "F2"),  # steadily low: no drop
            one(0.4, 1.4, "F3"),  # fell, but still above its reference
            one(-0.6, 1.4, "F4", "P4", 0.5),  # 0.5 ha of 30.5: below drop_min_share
            parcel("P5", "F4", "sunflower", 30),
        ],
        economics,
        stage=fl,
    )
    assert f.loc["F1", "drop_share"] == pytest.approx(1.0)
    assert f.loc["F1", "n_stressed_parcels"] == 1
    assert f.loc["F1", "health_drop_crop"] == "sunflower"
    assert f.loc["F1", "health_drop_z"] == pytest.approx(1.4)
    assert [e["stress_drop"] for e in f.loc["F1", "evidence"]] == [True]
    assert (f.loc[["F2", "F3", "F4"], "drop_share"] == 0).all()
    assert (f.loc[["F2", "F3", "F4"], "n_stressed_parcels"] == 0).all()
    # an assessment without the column (older runs) sees no drop
    old = feats([parcel("P1", "F1", "sunflower", 5, health_z=-0.6)], economics, stage=fl)
    assert old.loc["F1", "drop_share"] == 0
