"""Parcel pixel index and zonal statistics against naive per-parcel loops."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.features import geometry_mask
from shapely.geometry import MultiPoint, Point, box

from geo.errors import ImageryError, ParcelError
from geo.zonal import (
    build_parcel_index,
    parcel_class_fractions,
    parcel_mean,
    parcel_observed_fraction,
    parcel_proba_mean,
    rasterize_parcels,
)

X0, Y0 = 500_000.0, 5_600_000.0
GRID = Affine(10.0, 0.0, X0, 0.0, -10.0, Y0)
SHAPE = (20, 30)


def cells(c0: int, r0: int, c1: int, r1: int) -> box:
    """The box covering pixel columns c0..c1-1 and rows r0..r1-1 of GRID."""
    return box(X0 + 10 * c0, Y0 - 10 * r1, X0 + 10 * c1, Y0 - 10 * r0)


def frame(geoms: list, ids: list[str] | None = None) -> gpd.GeoDataFrame:
    ids = ids or [f"P{i}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"parcel_id": ids}, geometry=geoms, crs="EPSG:32631")


def flat(rows: range, cols: range) -> list[int]:
    return [r * SHAPE[1] + c for r in rows for c in cols]


def test_index_of_aligned_boxes_overlaps_and_empties() -> None:
    parcels = frame(
        [
            cells(2, 3, 6, 5),  # 4 cols x 2 rows
            cells(4, 3, 8, 4),  # overlaps the first on row 3, cols 4-5
            cells(100, 100, 102, 102),  # outside the grid
            Point(X0 + 51, Y0 - 51).buffer(2),  # smaller than a pixel, misses centres
            cells(28, 18, 33, 22),  # partly outside: clipped
        ]
    )
    idx = build_parcel_index(parcels, GRID, SHAPE)
    assert idx.parcel_ids == ["P0", "P1", "P2", "P3", "P4"]
    assert idx.counts.tolist() == [8, 4, 0, 0, 4]
    assert idx.pixels_of("P0").tolist() == flat(range(3, 5), range(2, 6))
    assert idx.pixels_of("P1").tolist() == flat(range(3, 4), range(4, 8))
    assert set(idx.pixels_of("P0")) & set(idx.pixels_of("P1")) == set(
        flat(range(3, 4), range(4, 6))
    )
    assert idx.pixels_of("P4").tolist() == flat(range(18, 20), range(28, 30))
    assert idx.empty == ["P2", "P3"]
    assert idx.pixels.dtype == np.int64 and idx.offsets.tolist() == [0, 8, 12, 12, 12, 16]
    with pytest.raises(ParcelError, match="P9"):
        idx.pixels_of("P9")


def test_interior_pixels_exclude_the_edge_ring() -> None:
    parcels = frame([cells(5, 5, 10, 10), cells(0, 0, 2, 30)])  # 5x5 block; a 2-px wide strip
    idx = build_parcel_index(parcels, GRID, SHAPE)
    inner = idx.pixels[idx.offsets[0] : idx.offsets[1]][
        idx.interior[idx.offsets[0] : idx.offsets[1]]
    ]
    assert sorted(inner.tolist()) == flat(range(6, 9), range(6, 9))
    core = idx.interior_only()
    assert core.counts.tolist() == [9, idx.counts[1]], "the strip falls back to all its pixels"
    strict = idx.interior_only(fallback=False)
    assert strict.counts.tolist() == [9, 0] and strict.empty == ["P1"]


def test_interior_is_judged_by_the_polygon_not_the_grid_edge() -> None:
    idx = build_parcel_index(frame([cells(-5, -5, 5, 5)]), GRID, SHAPE)
    assert idx.counts.tolist() == [25]
    corner = 0  # pixel (0, 0): all its neighbours lie inside the polygon, even off-grid
    assert idx.interior[idx.pixels.tolist().index(corner)]


def _naive_means(parcels: gpd.GeoDataFrame, values: np.ndarray) -> np.ndarray:
    out = []
    for geom in parcels.geometry:
        mask = geometry_mask([geom], out_shape=SHAPE, transform=GRID, invert=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out.append(
                np.nanmean(values[..., mask], axis=-1)
                if mask.any()
                else np.full(values.shape[:-2], np.nan)
            )
    return np.array(out)


polygons = st.lists(
    st.tuples(st.floats(-20, 320), st.floats(-20, 220)), min_size=3, max_size=8
).map(lambda pts: MultiPoint([(X0 + x, Y0 - y) for x, y in pts]).convex_hull)


@settings(max_examples=40, deadline=None)
@given(geoms=st.lists(polygons, min_size=1, max_size=6), seed=st.integers(0, 10_000))
def test_parcel_mean_matches_a_naive_loop(geoms: list, seed: int) -> None:
    geoms = [g if g.geom_type == "Polygon" else g.buffer(0.5) for g in geoms]
    parcels = frame(geoms)
    rng = np.random.default_rng(seed)
    values = rng.random((3, *SHAPE)).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = np.nan
    idx = build_parcel_index(parcels, GRID, SHAPE)
    got = parcel_mean(idx, values)
    expected = _naive_means(parcels, values)
    assert got.shape == (len(geoms), 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, equal_nan=True)
    naive_counts = [
        int(geometry_mask([g], out_shape=SHAPE, transform=GRID, invert=True).sum()) for g in geoms
    ]
    assert idx.counts.tolist() == naive_counts


def test_parcel_mean_shapes_nan_and_integers() -> None:
    parcels = frame([cells(0, 0, 2, 2), cells(3, 3, 4, 4), cells(50, 50, 51, 51)])
    idx = build_parcel_index(parcels, GRID, SHAPE)
    comp = np.zeros((4, 10, *SHAPE), dtype=np.float32)
    comp[:, :, 0, 0] = 4.0
    comp[2, :, 3, 3] = np.nan
    out = parcel_mean(idx, comp)
    assert out.shape == (3, 4, 10)
    np.testing.assert_allclose(out[0], 1.0)
    assert np.isnan(out[1, 2]).all() and not np.isnan(out[1, 1]).any()
    assert np.isnan(out[2]).all(), "a parcel without pixels is NaN"
    ints = np.arange(SHAPE[0] * SHAPE[1]).reshape(SHAPE)
    assert parcel_mean(idx, ints)[0] == pytest.approx((0 + 1 + 30 + 31) / 4)
    with pytest.raises(ImageryError, match="index grid"):
        parcel_mean(idx, np.zeros((4, 5)))


def test_observed_fraction_and_proba_mean() -> None:
    parcels = frame([cells(0, 0, 2, 2)])
    idx = build_parcel_index(parcels, GRID, SHAPE)
    observed = np.zeros((3, *SHAPE), dtype=bool)
    observed[1, 0, :2] = True
    assert parcel_observed_fraction(idx, observed)[0].tolist() == [0.0, 0.5, 0.0]
    proba = np.zeros((3, *SHAPE), dtype=np.float32)
    proba[2] = 1.0
    proba[:, 0, 0] = [0.5, 0.5, 0.0]
    np.testing.assert_allclose(parcel_proba_mean(idx, proba)[0], [0.125, 0.125, 0.75])
    with pytest.raises(ImageryError, match="K, H, W"):
        parcel_proba_mean(idx, proba[0])


def test_class_fractions_match_counts_and_skip_nodata() -> None:
    rng = np.random.default_rng(5)
    class_map = rng.integers(0, 4, SHAPE)
    class_map[0, 0] = 255
    parcels = frame([cells(0, 0, 5, 5), cells(10, 10, 20, 20), cells(60, 60, 61, 61)])
    idx = build_parcel_index(parcels, GRID, SHAPE)
    frac = parcel_class_fractions(idx, class_map, 4)
    for i, (r0, r1) in enumerate([(0, 5), (10, 20)]):
        block = class_map[r0:r1, r0:r1].ravel()
        block = block[block < 4]
        np.testing.assert_allclose(frac[i], np.bincount(block, minlength=4) / block.size)
    assert np.isnan(frac[2]).all()
    np.testing.assert_allclose(frac[:2].sum(axis=1), 1.0)


def test_rasterize_parcels_for_maps() -> None:
    parcels = frame([cells(0, 0, 2, 2), cells(1, 1, 3, 3)])
    ids = rasterize_parcels(parcels, GRID, SHAPE)
    assert ids[0, 0] == 1 and ids[2, 2] == 2 and ids[1, 1] == 2 and ids[10, 10] == 0
    vals = rasterize_parcels(parcels, GRID, SHAPE, np.array([7.5, 2.5]), dtype="float32")
    assert vals[0, 0] == 7.5
    with pytest.raises(ParcelError, match="one value per parcel"):
        rasterize_parcels(parcels, GRID, SHAPE, [1])


def test_rotated_grid_and_missing_id_column_are_errors() -> None:
    parcels = frame([cells(0, 0, 2, 2)])
    with pytest.raises(ImageryError, match="north-up"):
        build_parcel_index(parcels, Affine(10, 1, X0, 0, -10, Y0), SHAPE)
    with pytest.raises(ParcelError, match="parcel_id"):
        build_parcel_index(parcels.rename(columns={"parcel_id": "pid"}), GRID, SHAPE)
