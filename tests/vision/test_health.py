"""Health z-scores and classes on constructed curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo.errors import TableError
from geo.types import STAGES, GrowthStage
from vision.health import (
    growth_stage_of,
    health_class,
    health_drop,
    health_since,
    health_zscore,
    judged_dekads,
    last_judged,
    load_reference_curves,
    zscores,
)

T = 36
# reference: bare soil (0.2) until dekad 9, crop at 0.75 (sd 0.1) for dekads 10..27, then 0.2
REF = np.where((np.arange(T) >= 10) & (np.arange(T) <= 27), 0.75, 0.2).astype(np.float32)
SD = np.full(T, 0.1, np.float32)


def _parcels(*curves: np.ndarray) -> tuple[np.ndarray, ...]:
    obs = np.stack(curves).astype(np.float32)
    n = len(curves)
    return obs, np.tile(REF, (n, 1)), np.tile(SD, (n, 1)), np.isfinite(obs)


def test_normal_drought_failed_and_pre_emergence() -> None:
    normal = REF + 0.02
    drought = REF.copy()
    drought[18:] -= 0.25  # z = -2.5 from dekad 18
    failed = REF.copy()
    failed[18:] = 0.25  # collapsed to near bare soil
    obs, mean, sd, valid = _parcels(normal, drought, failed)
    z = health_zscore(obs, mean, sd, valid, as_of_index=22)
    assert z[0] == pytest.approx(0.2, abs=1e-5)
    assert z[1] == pytest.approx(-2.5, abs=1e-5)
    assert z[2] == pytest.approx(-5.0, abs=1e-5)
    ndvi_j, ref_j = last_judged(obs, mean, valid, mean, 22)
    assert list(health_class(z, ndvi_j, ref_j)) == ["good", "stressed", "failed"]
    # before emergence (reference NDVI < 0.3): bare soil is not judged
    z_early = health_zscore(obs, mean, sd, valid, as_of_index=6)
    assert np.isnan(z_early).all()
    assert list(health_class(z_early)) == ["unknown"] * 3


def test_watch_band_and_collapse_rule() -> None:
    z = np.array([-0.5, -1.5, -2.5, -3.5, np.nan, -0.2])
    ndvi = np.array([0.7, 0.6, 0.5, 0.4, np.nan, 0.3])
    ref = np.array([0.75, 0.75, 0.75, 0.75, 0.75, 0.75])
    got = health_class(z, ndvi, ref)
    assert list(got) == ["good", "watch", "stressed", "failed", "unknown", "failed"]


def test_unknown_without_recent_observation() -> None:
    obs = REF.copy()[None, :]
    valid = np.zeros((1, T), bool)
    valid[0, 10:14] = True  # seen early in the season only
    z = health_zscore(obs, REF[None], SD[None], valid, as_of_index=24)
    assert np.isnan(z[0])
    valid[0, 22] = True
    z = health_zscore(obs, REF[None], SD[None], valid, as_of_index=24)
    assert z[0] == pytest.approx(0.0)


def test_after_harvest_judges_the_late_season() -> None:
    drought = REF.copy()
    drought[22:] -= 0.3
    obs, mean, sd, valid = _parcels(drought)
    z = health_zscore(obs, mean, sd, valid, as_of_index=33)  # reference fell at dekad 28
    assert z[0] == pytest.approx(-3.0, abs=1e-5)
    judged = judged_dekads(valid, mean, 33)
    assert list(np.flatnonzero(judged[0])) == [24, 25, 26, 27]


def test_health_since_marks_the_current_run() -> None:
    curve = REF.copy()
    curve[15:17] -= 0.15  # a dip that recovered
    curve[20:] -= 0.2  # current stress from dekad 20
    obs, mean, sd, valid = _parcels(curve, REF.copy())
    valid[0, 21] = False  # a cloudy gap does not break the run
    z = zscores(obs, mean, sd)
    judged = valid & (mean >= 0.3)
    assert list(health_since(z, judged, as_of_index=25, window=1)) == [20, -1]
    smoothed = health_since(z, judged, as_of_index=25)  # running mean of 3 valid z
    assert 20 <= smoothed[0] <= 23 and smoothed[1] == -1


def test_health_since_keeps_an_early_senescence_that_the_reference_catches_up_with() -> None:
    # a drought ripens the crop early: two dekads far below the reference, then the
    # reference itself falls (normal ripening) so the last raw z is back near zero
    ref = np.array([0.5, 0.7, 0.8, 0.8, 0.75, 0.7, 0.4], dtype=float)
    obs = np.array([0.5, 0.7, 0.8, 0.55, 0.4, 0.35, 0.37], dtype=float)
    sd = np.full_like(ref, 0.1)
    z = ((obs - ref) / sd)[None, :]
    judged = np.ones_like(z, dtype=bool)
    assert z[0, -1] > -1  # the raw series would say the stress is over
    assert health_since(z, judged, as_of_index=6, window=1)[0] == -1
    assert health_since(z, judged, as_of_index=6)[0] == 4


def test_reference_curves_and_growth_stages() -> None:
    curves = load_reference_curves()
    assert set(curves["dekad"]) == set(range(36))
    order = [GrowthStage(growth_stage_of("winter_cereals", t, curves)).order for t in range(36)]
    harvest = STAGES.index(GrowthStage.HARVEST)
    assert harvest in order
    upto = order[: order.index(harvest) + 1]
    assert upto == sorted(upto), order  # stages advance through the season
    assert growth_stage_of("maize", 2, curves) == "pre_sowing"
    assert growth_stage_of("maize", 25, curves) in {"vegetative", "flowering"}


def test_reference_curves_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TableError, match="not found"):
        load_reference_curves(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"crop": ["maize"], "region": ["*"], "dekad": [0]}).to_csv(bad, index=False)
    with pytest.raises(TableError, match="missing columns"):
        load_reference_curves(bad)


def test_health_drop_sees_a_collapse_not_a_steady_low_parcel() -> None:
    t_now = 20
    valid = np.ones((4, T), bool)
    valid[:, t_now + 1 :] = False
    steady = REF.copy()
    drought = REF + 0.09  # +0.9 sd ...
    drought[t_now - 1 : t_now + 1] = REF[t_now - 1 : t_now + 1] - 0.06  # ... to -0.6 sd
    low = REF - 0.15  # 1.5 sd below reference all along: low, but no drop
    blip = REF.copy()
    blip[t_now - 5] = REF[t_now - 5] + 0.3  # one bright dekad in the baseline
    obs = np.stack([steady, drought, low, blip]).astype(np.float32)
    ref = np.tile(REF, (4, 1))
    z = zscores(obs, ref, np.tile(SD, (4, 1)))
    judged = judged_dekads(valid, ref, t_now, lookback=8)
    drop = health_drop(z, judged)
    assert drop[0] == pytest.approx(0.0, abs=1e-5)
    assert drop[1] == pytest.approx(1.5, abs=1e-4)
    assert drop[2] == pytest.approx(0.0, abs=1e-5)
    assert drop[3] == pytest.approx(0.0, abs=1e-5)  # the median ignores the bright dekad


def test_health_drop_unknown_without_enough_judged_dekads() -> None:
    valid = np.zeros((2, T), bool)
    valid[0, 12:15] = True  # 3 judged dekads: 2 recent + 1 baseline -> unknown
    valid[1, 12:16] = True  # 4: enough
    obs = np.tile(REF, (2, 1))
    z = zscores(obs, np.tile(REF, (2, 1)), np.tile(SD, (2, 1)))
    drop = health_drop(z, judged_dekads(valid, np.tile(REF, (2, 1)), 15, lookback=8))
    assert np.isnan(drop[0]) and drop[1] == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="baseline"):
        health_drop(z, valid, baseline=1)
