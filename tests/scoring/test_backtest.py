"""Backtest: a tiny constructed season (two stages, seven farmers) with its truth."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from scoring_fixtures import NO_OVERLAPS, farmers_for, frame, parcel
from shapely.geometry import box

from geo.types import GrowthStage, Season
from scoring.backtest import (
    BacktestResult,
    backtest,
    backtest_frames,
    format_backtest,
    run_backtest_cli,
)
from scoring.pd_model import load_shipped_pd

S = Season(2026)
AS_OF = {GrowthStage.PRE_SOWING: dt.date(2026, 3, 1), GrowthStage.FLOWERING: dt.date(2026, 7, 1)}
FARMERS = ["F-DRY", "F-LAP1", "F-LAP2", "F-NC", "F-OK", "F-OVER", "F-WRONG"]
# parcel -> farmer, declared crop, declared ha, true crop, true ha, event, truth flags
TRUTH = [
    ("P-OK1", "F-OK", "winter_cereals", 30.0, "winter_cereals", 30.0, "none", ""),
    ("P-OK2", "F-OK", "rapeseed", 10.0, "rapeseed", 10.0, "none", ""),
    ("P-DRY", "F-DRY", "winter_cereals", 40.0, "winter_cereals", 40.0, "drought", ""),
    ("P-WR1", "F-WRONG", "maize", 10.0, "sunflower", 10.0, "none", "wrong_declaration"),
    ("P-WR2", "F-WRONG", "winter_cereals", 10.0, "winter_cereals", 10.0, "none", ""),
    ("P-OVER", "F-OVER", "winter_cereals", 20.0, "winter_cereals", 12.0, "none", "overstated_area"),
    ("P-NC", "F-NC", "winter_cereals", 5.0, "non_crop", 5.0, "none", "not_cropland"),
    ("P-L1", "F-LAP1", "winter_cereals", 10.0, "winter_cereals", 10.0, "none", "overlap"),
    ("P-L2", "F-LAP2", "winter_cereals", 8.0, "winter_cereals", 8.0, "none", "overlap"),
]


def truth_table() -> pd.DataFrame:
    rows = []
    for pid, fid, _, _, crop, area, event, flag in TRUTH:
        row = {"parcel_id": pid, "farmer_id": fid, "true_crop": crop, "true_area_ha": area}
        row["event"] = event
        row["event_start"] = dt.date(2026, 6, 1) if event != "none" else None
        for col in ("wrong_declaration", "overstated_area", "overlap", "not_cropland"):
            row[col] = col == flag
        rows.append(row)
    return pd.DataFrame(rows)


def assessment(stage: GrowthStage) -> pd.DataFrame:
    """What imagery shows: the truth, seen clearly (spring maize only from vegetative)."""
    late = stage == GrowthStage.FLOWERING
    kw = {"as_of": AS_OF[stage]}
    rows = []
    for pid, fid, declared, declared_ha, crop, area, event, _ in TRUTH:
        detected = crop if crop != "non_crop" else "non_crop"
        if not late and declared == "maize":
            detected = "non_crop"  # bare soil before sowing: not evidence of anything
        extra = {}
        if event == "drought" and late:
            extra = {
                "health_z": -2.5,
                "health_class": "stressed",
                "health_since": dt.date(2026, 6, 5),
            }
        rows.append(
            parcel(
                pid,
                fid,
                declared,
                area,
                declared_area_ha=declared_ha,
                detected_crop=detected,
                confidence=0.95,
                **extra,
                **kw,
            )
        )
    return frame(rows)


OVERLAPS = pd.DataFrame(
    [
        ("P-L1", "F-LAP1", "P-L2", "F-LAP2", 6.0, 0.6),
        ("P-L2", "F-LAP2", "P-L1", "F-LAP1", 6.0, 0.75),
    ],
    columns=NO_OVERLAPS.columns,
)


@pytest.fixture(scope="module")
def model():
    return load_shipped_pd()


@pytest.fixture(scope="module")
def result(economics, model) -> BacktestResult:
    return backtest_frames(
        {s: assessment(s) for s in AS_OF},
        farmers_for(FARMERS),
        OVERLAPS,
        truth_table(),
        season=S,
        economics=economics,
        model=model,
        outcome_draws=400,
    )


def test_drought_farmer_loses_less_under_the_policy(result: BacktestResult) -> None:
    f = result.farmers.set_index("farmer_id")
    dry = f.loc["F-DRY"]
    assert dry["drought"] and dry["default_rate"] > 0.05
    assert dry["actions"][-1] in ("cut", "zero")
    assert dry["policy_drawn_eur"] < dry["baseline_drawn_eur"]
    assert dry["policy_loss_mean_eur"] < dry["baseline_loss_mean_eur"]
    assert dry["default_rate"] > f.loc["F-OK", "default_rate"]


def test_policy_refuses_what_the_baseline_finances(result: BacktestResult) -> None:
    f = result.farmers.set_index("farmer_id")
    for fid in ("F-NC", "F-LAP1", "F-LAP2"):
        assert f.loc[fid, "policy_limit_granted_eur"] == 0
        assert f.loc[fid, "policy_loss_mean_eur"] == 0
        assert f.loc[fid, "baseline_limit_eur"] > 0
    assert f.loc["F-NC", "default_rate"] > 0.9  # nothing grows on the pledged parcel
    assert f.loc["F-NC", "baseline_loss_mean_eur"] > 0
    p, b = result.policy, result.baseline
    assert p.realised_loss_mean_eur < b.realised_loss_mean_eur
    assert p.n_zero >= 3 and p.n_cut >= 1 and b.n_cut == b.n_zero == 0
    assert p.flags["overlap"] == 2 and p.flags["not_cropland"] == 1 and not any(b.flags.values())
    # exposure and losses are consistent with the per-farmer table
    assert p.drawn_sum_eur == pytest.approx(f["policy_drawn_eur"].sum())
    assert p.realised_loss_eur == pytest.approx(f["policy_loss_eur"].sum())
    assert p.realised_loss_eur == pytest.approx(result.lgd * p.exposure_at_default_eur)


def test_flags_hit_truth(result: BacktestResult) -> None:
    hits = result.flag_hits.set_index("flag")
    for flag, n_true in (
        ("overlap", 2),
        ("wrong_crop", 1),
        ("overstated_area", 1),
        ("not_cropland", 1),
        ("crop_stress", 1),
    ):
        row = hits.loc[flag]
        assert (row["true"], row["flagged"], row["hits"]) == (n_true, n_true, n_true), flag
        assert row["hit_rate"] == 1.0 and row["recall"] == 1.0


def test_deterministic(result: BacktestResult, economics, model) -> None:
    again = backtest_frames(
        {s: assessment(s) for s in reversed(list(AS_OF))},
        farmers_for(FARMERS),
        OVERLAPS,
        truth_table(),
        season=S,
        economics=economics,
        model=model,
        outcome_draws=400,
    )
    assert format_backtest(again) == format_backtest(result)
    cols = ["farmer_id", "default", "default_rate", "policy_drawn_eur", "baseline_drawn_eur"]
    pd.testing.assert_frame_equal(again.farmers[cols], result.farmers[cols])
    other = backtest_frames(
        {GrowthStage.PRE_SOWING: assessment(GrowthStage.PRE_SOWING)},
        farmers_for(FARMERS),
        OVERLAPS,
        truth_table(),
        season=S,
        economics=economics,
        model=model,
        seed=1,
        outcome_draws=400,
    )
    assert not math.isclose(
        other.farmers["default_rate"].sum(), result.farmers["default_rate"].sum()
    )


def test_format_and_cli_from_files(tmp_path: Path, economics) -> None:
    archive, out = tmp_path / "archive", tmp_path / "run"
    (archive / "truth").mkdir(parents=True)
    x0, y0 = 300_000.0, 5_170_000.0
    geoms = []
    for i, (pid, _, _, _, _, area, _, _) in enumerate(TRUTH):
        side = math.sqrt(area * 1e4)
        x = x0 + 1000 * i if pid != "P-L2" else x0 + 1000 * (i - 1) + 50  # P-L2 covers P-L1
        geoms.append(box(x, y0, x + side, y0 + side))
    gpd.GeoDataFrame(
        {
            "parcel_id": [t[0] for t in TRUTH],
            "farmer_id": [t[1] for t in TRUTH],
            "region": "poitou-nord",
            "declared_crop": [t[2] for t in TRUTH],
            "declared_area_ha": [t[3] for t in TRUTH],
        },
        geometry=geoms,
        crs="EPSG:32631",
    ).to_parquet(archive / "parcels.parquet")
    farmers_for(FARMERS).to_csv(archive / "farmers.csv", index=False)
    truth_table().astype({"event_start": "object"}).to_parquet(
        archive / "truth" / "parcels_truth.parquet"
    )
    for stage in AS_OF:
        (out / "stages" / stage.value).mkdir(parents=True)
        assessment(stage).to_parquet(out / "stages" / stage.value / "assessment.parquet")
    run = {"params": {"season": 2026, "imagery": {"archive": str(archive)}, "economics": None}}
    (out / "run.json").write_text(json.dumps(run))

    res = backtest(out, archive, season=S, economics=economics, outcome_draws=50)
    assert res.stages == (GrowthStage.PRE_SOWING, GrowthStage.FLOWERING)
    assert res.flag_hits.set_index("flag").loc["overlap", "hits"] == 2  # found from geometry
    text = run_backtest_cli(out)
    assert "flat baseline" in text and "realised loss" in text and "crop_stress" in text
    assert "[" not in text  # printed through rich: no markup
