"""Parcel and series temperatures (vision.calibration): the parcel probabilities, the interior
pixels they average, and which temperature each reading of the model uses."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from shapely.geometry import box

from geo.zonal import build_parcel_index, grid_parcel_index, rasterize_parcels
from vision.calibration import parcel_probabilities, region_parcel_mean
from vision.classify import classify_series
from vision.model import Segmenter, load_segmenter

GRID = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_600_000.0)
SHAPE = (20, 30)


def _cells(c0: int, r0: int, c1: int, r1: int) -> box:
    return box(500_000 + 10 * c0, 5_600_000 - 10 * r1, 500_000 + 10 * c1, 5_600_000 - 10 * r0)


def test_interior_pixels_match_the_parcel_index_away_from_the_grid_edge() -> None:
    """The raster version (generated regions) agrees with geo.zonal's polygon version (scenes):
    a block loses its edge ring, a 2 px strip keeps all its pixels, touching parcels split."""
    geoms = [_cells(2, 2, 9, 8), _cells(9, 2, 15, 8), _cells(20, 3, 22, 17)]
    parcels = gpd.GeoDataFrame({"parcel_id": ["A", "B", "S"]}, geometry=geoms, crs="EPSG:32631")
    grid = rasterize_parcels(parcels, GRID, SHAPE, np.arange(1, 4), fill=0).astype(np.int64) - 1
    mine = np.zeros(SHAPE, bool)
    mine.ravel()[grid_parcel_index(grid).interior_only().pixels] = True
    core = build_parcel_index(parcels, GRID, SHAPE).interior_only()
    expected = np.zeros(SHAPE, bool)
    expected.ravel()[core.pixels] = True
    np.testing.assert_array_equal(mine, expected)
    assert mine[grid == 2].all() and not mine[grid == 0].all() and mine[grid == 0].any()


def test_region_parcel_mean_averages_interior_pixels_only() -> None:
    grid = np.full((6, 6), -1, np.int64)
    grid[0:5, 0:5] = 0  # a 5x5 parcel: interior = the 3x3 centre
    proba = np.zeros((2, 6, 6))
    proba[0] = 0.2
    proba[0, 1:4, 1:4] = 0.8
    proba[1] = 1 - proba[0]
    mean = region_parcel_mean(proba, grid, 1)
    np.testing.assert_allclose(mean, [[0.8, 0.2]])


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (5, 4), elements=st.floats(0.01, 1.0)),
    st.floats(0.2, 3.0),
)
def test_parcel_probabilities_keep_the_crop_and_sum_to_one(raw: np.ndarray, t: float) -> None:
    p_mean = raw / raw.sum(axis=1, keepdims=True)
    out = parcel_probabilities(p_mean, t)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_array_equal(out.argmax(axis=1), p_mean.argmax(axis=1))
    if t < 1:  # sharpening never lowers the top probability
        assert (out.max(axis=1) >= p_mean.max(axis=1) - 1e-12).all()
    np.testing.assert_allclose(parcel_probabilities(p_mean, 1.0), p_mean)


def test_parcel_probabilities_pass_empty_parcels_through() -> None:
    p_mean = np.array([[np.nan, np.nan], [0.0, 0.0], [0.6, 0.4]])
    out = parcel_probabilities(p_mean, 0.5)
    assert np.isnan(out[0]).all() and (out[1] == 0).all()
    np.testing.assert_allclose(out[2], [0.36 / 0.52, 0.16 / 0.52])


def test_shipped_model_carries_fitted_series_and_parcel_temperatures() -> None:
    seg = load_segmenter()
    assert 0.1 < seg.parcel_temperature < 1.0, "the plain parcel mean is underconfident"
    assert seg.series_temperature > 0 and seg.series_temperature != seg.temperature


def test_classify_path_reads_the_series_temperature() -> None:
    """Two copies of one model that differ only in their series temperature classify the same
    series with the same crops but different confidence; the scene temperature plays no part."""
    seg = load_segmenter()
    rng = np.random.default_rng(0)
    data = rng.uniform(0.02, 0.4, size=(4, 36, 10)).astype(np.float32)
    sharp = dataclasses.replace(seg, meta={**seg.meta, "series_temperature": 0.5})
    flat = dataclasses.replace(seg, meta={**seg.meta, "series_temperature": 5.0})
    hot_scene = dataclasses.replace(sharp, temperature=50.0)
    p_sharp, p_flat = classify_series(sharp, data), classify_series(flat, data)
    np.testing.assert_array_equal(p_sharp.argmax(1), p_flat.argmax(1))
    assert (p_sharp.max(1) > p_flat.max(1)).all()
    np.testing.assert_allclose(classify_series(hot_scene, data), p_sharp, rtol=1e-5)
    plain = Segmenter(model=seg.model, cfg=seg.cfg, temperature=2.0)
    assert plain.series_temperature == 2.0 and plain.parcel_temperature == 1.0
