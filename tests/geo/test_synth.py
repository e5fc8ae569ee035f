"""Tests of the scene generator (geo.synth): determinism, layout, events, clouds, archive."""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geo.sources.base import SCENE_BANDS
from geo.synth import SynthConfig, simulate_region, simulate_scenes, write_archive
from geo.synth.layout import make_layout
from geo.synth.noise import rng_for
from geo.types import BANDS, CROPS

SMALL = SynthConfig(seed=3, size_px=128, n_farmers=20)
SHARED = Path(__file__).parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def small_region():
    return simulate_region(SMALL)


def test_same_seed_same_bytes(small_region) -> None:
    again = simulate_region(SMALL)
    assert small_region.parcels.to_wkb().equals(again.parcels.to_wkb())
    assert np.array_equal(small_region.crop_map, again.crop_map)
    a = list(itertools.islice(simulate_scenes(small_region, SMALL), 3))
    b = list(itertools.islice(simulate_scenes(again, SMALL), 3))
    for x, y in zip(a, b, strict=True):
        assert x.date == y.date
        assert x.dn.tobytes() == y.dn.tobytes() and x.scl.tobytes() == y.scl.tobytes()
    other = simulate_region(SynthConfig(seed=4, size_px=128, n_farmers=20))
    assert not np.array_equal(small_region.crop_map, other.crop_map)


def test_default_layout_counts_and_shapes() -> None:
    cfg = SynthConfig()
    layout = make_layout(rng_for(cfg.seed, "layout"), cfg.size_px, cfg.origin, min_parcels=820)
    areas = np.array([p.area / 1e4 for p in layout.parcels])
    assert len(layout.parcels) >= 800
    assert areas.min() >= 0.2 and areas.max() <= 20.0
    assert all(p.is_valid for p in layout.parcels)
    # irregular: most parcels are not axis-aligned rectangles
    rect = [abs(p.area - p.envelope.area) < 1e-6 * p.area for p in layout.parcels]
    assert np.mean(rect) < 0.05
    assert (layout.cover > 0).mean() > 0.1  # roads, hedges, woods between parcels


def test_region_tables(small_region) -> None:
    r = small_region
    assert r.parcels.crs.to_epsg() == 32631
    assert set(r.parcels.columns) >= {
        "parcel_id",
        "farmer_id",
        "region",
        "declared_crop",
        "declared_area_ha",
        "geometry",
    }
    assert set(r.farmers["farmer_id"]) == set(r.parcels["farmer_id"])
    assert r.crop_map.shape == (128, 128) and r.crop_map.dtype == np.uint8
    assert r.crop_map.max() < len(CROPS)
    assert set(r.parcels["region"]) <= {"poitou-nord", "poitou-sud"}
    assert r.truth["parcel_id"].tolist() == r.parcels["parcel_id"].tolist()


def test_events_present_in_truth() -> None:
    r = simulate_region(SynthConfig(seed=7, size_px=256, n_farmers=80))
    t = r.truth
    n = len(t)
    assert 0.05 < (t["event"] == "drought").mean() < 0.11
    assert (t["event"] == "flood").sum() >= 2
    assert t["not_cropland"].sum() == 1
    assert t.loc[t["not_cropland"], "true_crop"].item() == "non_crop"
    assert t["overlap"].sum() == 2
    ov = r.parcels[t["overlap"].to_numpy()]
    assert ov["farmer_id"].nunique() == 2
    a, b = ov.geometry.iloc[0], ov.geometry.iloc[1]
    assert a.intersection(b).area > 0.5 * min(a.area, b.area)
    assert t["wrong_declaration"].sum() >= 1 and t["overstated_area"].sum() >= 1
    wrong = t["wrong_declaration"].to_numpy()
    assert (r.parcels["declared_crop"].to_numpy()[wrong] != t["true_crop"].to_numpy()[wrong]).all()
    over = t["overstated_area"].to_numpy()
    ratio = r.parcels["declared_area_ha"].to_numpy() / t["true_area_ha"].to_numpy()
    assert (ratio[over] >= 1.28).all()
    honest = ~(over | t["not_cropland"].to_numpy())
    assert np.abs(ratio[honest] - 1).max() < 0.06
    assert n == len(r.parcels)
    dates = t.loc[t["event"] == "drought", "event_start"]
    assert all(dt.date(2026, 5, 25) <= d <= dt.date(2026, 6, 10) for d in dates)


def test_scenes_clouds_and_scl() -> None:
    cfg = SynthConfig(seed=3, size_px=96, n_farmers=10)
    scenes = list(simulate_scenes(simulate_region(cfg), cfg))
    assert 70 <= len(scenes) <= 74
    assert scenes[0].dn.shape == (len(BANDS), 96, 96) and scenes[0].dn.dtype == np.uint16
    cloudy = np.array([np.isin(s.scl, (8, 9, 10)).mean() for s in scenes])
    months = np.array([s.date.month for s in scenes])
    winter, summer = cloudy[np.isin(months, (11, 12, 1, 2))], cloudy[np.isin(months, (6, 7, 8))]
    assert winter.mean() > summer.mean()
    assert 0.2 < cloudy.mean() < 0.7
    assert (cloudy > 0.95).sum() >= 2
    assert (cloudy < 0.05).sum() >= 10
    allowed = {0, 3, 4, 5, 6, 8, 9, 10, 11}
    assert set(np.unique(np.concatenate([np.unique(s.scl) for s in scenes]))) <= allowed
    # clear vegetation in June is green: NDVI > 0.5 on most vegetation pixels
    june = next(s for s in scenes if s.date.month == 6 and np.isin(s.scl, (4,)).mean() > 0.3)
    dn = june.dn.astype(float)
    ndvi = (dn[6] - dn[2]) / (dn[6] + dn[2])
    assert np.median(ndvi[june.scl == 4]) > 0.5
    # nodata pixels are 0 in every band
    for s in scenes:
        nd = s.scl == 0
        if nd.any():
            assert (s.dn[:, nd] == 0).all()


def test_archive_round_trip(tmp_path: Path) -> None:
    cfg = SynthConfig(seed=5, size_px=64, n_farmers=5, revisit_days=60)
    out = write_archive(tmp_path / "arch", cfg)
    files = sorted((out / "scenes").glob("S2L2A_*.tif"))
    assert len(files) == 6
    with rasterio.open(files[0]) as src:
        assert src.count == 11 and src.dtypes[0] == "uint16"
        assert src.descriptions == SCENE_BANDS
        assert src.nodata == 0
        assert src.crs.to_epsg() == 32631
        day = src.tags()["ACQUISITION_DATE"]
        assert files[0].stem == f"S2L2A_{day.replace('-', '')}"
        assert src.profile["compress"] == "deflate"
    for name in ("parcels.parquet", "farmers.csv", "manifest.json", "truth/crop_map.tif"):
        assert (out / name).exists()
    stamp = files[0].stat().st_mtime_ns
    write_archive(out, cfg)  # idempotent: nothing rewritten
    assert files[0].stat().st_mtime_ns == stamp


@pytest.mark.shared_data
def test_calibration_rmse_on_real_data() -> None:
    if not (SHARED / "worldcereal").exists():
        pytest.skip(f"{SHARED} absent")
    repo = str(Path(__file__).parents[2])
    if repo not in sys.path:  # eval/ is a script folder, not an installed package
        sys.path.insert(0, repo)
    from eval.calibrate_generator import load_real, real_median_curves
    from eval.generator import generated_curves, rmse_table

    cfg = SynthConfig(seed=11, size_px=256, n_farmers=60)
    region = simulate_region(cfg)
    gen = generated_curves(region, simulate_scenes(region, cfg), cfg.season)
    table = rmse_table(gen, real_median_curves(load_real(SHARED)))
    rmse = dict(zip(table["crop"], table["rmse"], strict=True))
    for crop in ("winter_cereals", "maize", "grassland"):
        assert rmse[crop] < 0.08, table


def test_partial_sowing_is_opt_in_and_leaves_grass(small_region) -> None:
    assert small_region.pheno_index is None
    assert (small_region.truth["planted_share"] == 1.0).all()
    with pytest.raises(ValueError, match="partial_share"):
        SynthConfig(partial_share=1.5)
    cfg = SynthConfig(seed=3, size_px=128, n_farmers=20, partial_share=1.0)
    r = simulate_region(cfg)
    # the same parcels, declarations and events: only the partial stream is new
    assert r.parcels.to_wkb().equals(small_region.parcels.to_wkb())
    assert r.truth.drop(columns="planted_share").equals(
        small_region.truth.drop(columns="planted_share")
    )
    part = r.truth.index[r.truth["planted_share"] < 1.0]
    assert len(part) >= 5
    grass = CROPS.index("grassland")
    for i in part:
        mine = r.parcel_index == i
        crop = CROPS.index(r.truth.at[i, "true_crop"])
        sown = float((r.crop_map[mine] == crop).mean())
        assert sown == pytest.approx(r.truth.at[i, "planted_share"], abs=1e-9)
        assert 0.45 <= sown <= 0.92
        assert ((r.crop_map[mine] == crop) | (r.crop_map[mine] == grass)).all()
        # the unsown pixels follow a grassland curve of their own
        rows = np.unique(r.pheno_index[mine & (r.crop_map == grass)])
        assert len(rows) == 1 and rows[0] >= len(r.pheno) - len(part)
    assert (r.pheno_index[r.parcel_index < 0] < 0).all()
    scenes = list(itertools.islice(simulate_scenes(r, cfg), 40, 41))
    assert scenes[0].dn.shape[1:] == r.crop_map.shape
