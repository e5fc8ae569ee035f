"""Dekad compositing (median of clear observations, gap filling, as_of) and spectral indices."""

from __future__ import annotations

import datetime as dt
import logging
import random
import tracemalloc
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geo.composite import Composite, _median_dn, composite_dekads, fill_gaps
from geo.errors import ImageryError
from geo.indices import ndmi, ndre, ndvi
from geo.sources.base import SceneData
from geo.types import BANDS, Season

SEASON = Season(2026)
SHAPE = (4, 5)
GRID = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_600_000.0)
CLEAR, CLOUD = 4, 9


def scene(
    date: dt.date,
    dn: int | np.ndarray,
    scl: int | np.ndarray = CLEAR,
    *,
    shape: tuple[int, int] = SHAPE,
    transform: Affine = GRID,
    crs: str = "EPSG:32631",
) -> SceneData:
    h, w = shape
    dn_arr = np.broadcast_to(np.asarray(dn, dtype=np.uint16), (10, h, w)).copy()
    scl_arr = np.broadcast_to(np.asarray(scl, dtype=np.uint8), (h, w)).copy()
    return SceneData(f"S2_{date:%Y%m%d}", date, dn_arr, scl_arr, transform, crs)


def day(index: int, offset: int = 0) -> dt.date:
    """A date ``offset`` days into dekad ``index`` of SEASON."""
    return SEASON.dekads()[index] + dt.timedelta(days=offset)


END = SEASON.end


def test_median_of_clear_observations_per_dekad() -> None:
    cloud_01 = np.full(SHAPE, CLEAR)
    cloud_01[0, 1] = CLOUD  # pixel (0, 1) is cloudy in every scene
    cloud_00_01 = cloud_01.copy()
    cloud_00_01[0, 0] = CLOUD  # pixel (0, 0) is also cloudy in the 3000 scene
    scenes = [
        scene(day(0, 0), 1000, cloud_01),
        scene(day(0, 3), 3000, cloud_00_01),
        scene(day(0, 6), 2000, cloud_01),
    ]
    comp = composite_dekads(scenes, SEASON, END)
    assert comp.shape == (36, 10, *SHAPE)
    assert comp.data.dtype == np.float32
    np.testing.assert_allclose(comp.data[0, :, 1, 1], 0.2, rtol=1e-6)
    np.testing.assert_allclose(comp.data[0, :, 0, 0], 0.15, rtol=1e-6)  # median of 1000, 2000
    assert np.isnan(comp.data[0, :, 0, 1]).all()
    assert not comp.observed[0, 0, 1] and comp.observed[0, 0, 0]
    assert comp.dates == SEASON.dekads() and comp.as_of == END
    assert comp.transform == GRID and comp.crs == "EPSG:32631"


def test_cloudy_values_never_leak_in() -> None:
    rng = np.random.default_rng(3)
    scenes = []
    for i in range(36):
        for k in range(2):
            scl = rng.choice([CLEAR, 5, CLOUD, 3, 8, 10, 11, 0, 1], size=SHAPE)
            clear = np.isin(scl, [CLEAR, 5])
            dn = np.where(clear[None], rng.integers(100, 9000, (10, *SHAPE)), 60_000)
            scenes.append(scene(day(i, 4 * k), dn, scl))
    comp = composite_dekads(scenes, SEASON, END)
    assert np.nanmax(comp.data) < 0.9001, "a masked pixel's DN (6.0 reflectance) leaked in"
    assert comp.valid.any()


def test_a_zero_band_drops_the_whole_pixel() -> None:
    dn = np.full((10, *SHAPE), 1234, dtype=np.uint16)
    dn[3, 2, 2] = 0
    comp = composite_dekads([scene(day(5), dn)], SEASON, END)
    assert np.isnan(comp.data[5, :, 2, 2]).all()
    assert not comp.observed[5, 2, 2]
    assert comp.observed[5].sum() == SHAPE[0] * SHAPE[1] - 1


def test_nothing_after_as_of() -> None:
    dekad = SEASON.dekad_index(dt.date(2026, 3, 3))
    scenes = [
        scene(dt.date(2026, 3, 3), 1000),
        scene(dt.date(2026, 3, 8), 9000),  # same dekad, after as_of
        scene(dt.date(2026, 4, 5), 5000),
    ]
    comp = composite_dekads(scenes, SEASON, dt.date(2026, 3, 5))
    np.testing.assert_allclose(comp.data[dekad], 0.1, rtol=1e-6)
    assert np.isnan(comp.data[dekad + 1 :]).all()
    assert not comp.observed[dekad + 1 :].any()
    assert comp.as_of == dt.date(2026, 3, 5)


def test_gaps_filled_linearly_up_to_max_gap_without_extrapolation() -> None:
    scenes = [scene(day(2), 1000), scene(day(6), 5000), scene(day(11), 1000)]
    comp = composite_dekads(scenes, SEASON, END, max_gap=3)
    band0 = comp.data[:, 0, 0, 0]
    np.testing.assert_allclose(band0[2:7], [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-5)
    assert np.isnan(band0[7:11]).all(), "a gap of 4 dekads must stay empty with max_gap=3"
    assert np.isnan(band0[:2]).all() and np.isnan(band0[12:]).all(), "no extrapolation"
    assert comp.observed[:, 0, 0].nonzero()[0].tolist() == [2, 6, 11]
    assert (comp.valid[:, 0, 0] == ~np.isnan(band0)).all()
    no_fill = composite_dekads(scenes, SEASON, END, max_gap=0)
    assert np.isnan(no_fill.data[3:6]).all()
    wide = composite_dekads(scenes, SEASON, END, max_gap=4)
    np.testing.assert_allclose(wide.data[7:11, 0, 0, 0], [0.42, 0.34, 0.26, 0.18], rtol=1e-5)


def test_gap_filling_stops_at_as_of() -> None:
    scenes = [scene(day(0), 1000), scene(day(4), 5000)]
    comp = composite_dekads(scenes, SEASON, day(2))
    assert np.isnan(comp.data[1:]).all(), "the dekad-4 scene is after as_of: nothing to fill to"


def _random_scenes(seed: int, n: int) -> list[SceneData]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        date = SEASON.start + dt.timedelta(days=int(rng.integers(0, 364)))
        dn = rng.integers(1, 10_000, (10, *SHAPE))
        scl = rng.choice([CLEAR, CLEAR, 5, CLOUD, 3], size=SHAPE)
        out.append(scene(date, dn, scl))
        out[-1] = SceneData(f"s{i}", date, out[-1].dn, out[-1].scl, GRID, "EPSG:32631")
    return out


def test_out_of_order_list_equals_sorted() -> None:
    scenes = _random_scenes(1, 40)
    shuffled = scenes[:]
    random.Random(0).shuffle(shuffled)
    ordered = sorted(scenes, key=lambda s: s.date)
    a = composite_dekads(shuffled, SEASON, END)
    b = composite_dekads(iter(ordered), SEASON, END)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.observed, b.observed)


def test_iterator_tolerates_small_disorder_and_rejects_large() -> None:
    near = [scene(day(3, 1), 1000), scene(day(4, 1), 2000), scene(day(3, 5), 3000)]
    comp = composite_dekads(iter(near), SEASON, END)
    np.testing.assert_allclose(comp.data[3, 0, 0, 0], 0.2, rtol=1e-6)
    far = [scene(day(3), 1000), scene(day(9), 2000), scene(day(3, 2), 3000)]
    with pytest.raises(ImageryError, match="S2_20251203.*as a list"):
        composite_dekads(iter(far), SEASON, END)


def test_scenes_outside_the_season_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="geo.composite"):
        comp = composite_dekads(
            [
                scene(dt.date(2025, 10, 20), 9000),
                scene(day(1), 1000),
                scene(dt.date(2026, 11, 2), 9000),
            ],
            SEASON,
            END,
        )
    assert np.nanmax(comp.data) == pytest.approx(0.1)
    assert "outside season" in caplog.text


def test_grid_mismatch_names_the_scene() -> None:
    ok = scene(day(0), 1000)
    moved = scene(day(1), 1000, transform=GRID @ Affine.translation(1, 0))
    with pytest.raises(ImageryError, match="S2_20251111"):
        composite_dekads([ok, moved], SEASON, END)
    other_shape = scene(day(1), 1000, shape=(4, 6))
    with pytest.raises(ImageryError, match="S2_20251111.*expected dn"):
        composite_dekads([ok, other_shape], SEASON, END)
    other_crs = scene(day(1), 1000, crs="EPSG:32630")
    with pytest.raises(ImageryError, match="S2_20251111"):
        composite_dekads([ok, other_crs], SEASON, END)


def test_no_scene_is_an_error() -> None:
    with pytest.raises(ImageryError, match="no scene of season 2026"):
        composite_dekads([scene(dt.date(2020, 1, 1), 1)], SEASON, END)


def test_npz_roundtrip(tmp_path: Path) -> None:
    comp = composite_dekads(_random_scenes(2, 20), SEASON, dt.date(2026, 6, 1))
    path = comp.to_npz(tmp_path / "cache" / "c.npz")
    back = Composite.from_npz(path)
    np.testing.assert_array_equal(back.data, comp.data)
    np.testing.assert_array_equal(back.observed, comp.observed)
    assert back.dates == comp.dates and back.as_of == comp.as_of
    assert back.transform == comp.transform and back.crs == comp.crs
    path.write_bytes(b"garbage")
    with pytest.raises(ImageryError, match="delete it"):
        Composite.from_npz(path)


def test_streaming_holds_only_a_few_scenes() -> None:
    shape = (96, 96)
    rng = np.random.default_rng(0)
    base = rng.integers(1, 10_000, (10, *shape), dtype=np.uint16)

    def stream() -> Iterator[SceneData]:
        for i in range(73):
            date = SEASON.start + dt.timedelta(days=5 * i)
            yield SceneData(
                f"s{i}", date, base.copy(), np.full(shape, CLEAR, np.uint8), GRID, "EPSG:32631"
            )

    output_bytes = 36 * 10 * shape[0] * shape[1] * 4
    all_scenes_bytes = 73 * 10 * shape[0] * shape[1] * 2
    tracemalloc.start()
    try:
        composite_dekads(stream(), SEASON, END)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < output_bytes + all_scenes_bytes / 4, (peak, output_bytes)


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    clear_p=st.floats(0.0, 1.0),
)
def test_median_matches_nanmedian(k: int, seed: int, clear_p: float) -> None:
    rng = np.random.default_rng(seed)
    clears = [rng.random((3, 4)) < clear_p for _ in range(k)]
    stack = [(rng.integers(1, 65_535, (2, 3, 4)) * c).astype(np.uint16) for c in clears]
    n_clear = np.sum(clears, axis=0).astype(np.uint8)
    out = np.empty((2, 3, 4), dtype=np.float32)
    _median_dn(stack, n_clear, out)
    ref = np.stack(stack).astype(np.float64)
    ref[ref == 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(ref, axis=0) * 1e-4
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert (np.isnan(out) == np.isnan(expected)).all()


def _naive_fill(series: np.ndarray, observed: np.ndarray, max_gap: int) -> np.ndarray:
    out = np.where(observed, series, np.nan)
    idx = np.flatnonzero(observed)
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if 1 < b - a <= max_gap + 1:
            for t in range(a + 1, b):
                out[t] = series[a] + (series[b] - series[a]) * (t - a) / (b - a)
    return out


@settings(max_examples=60, deadline=None)
@given(
    observed=hnp.arrays(bool, (12, 2, 3)),
    max_gap=st.integers(0, 5),
    seed=st.integers(0, 1000),
)
def test_fill_gaps_matches_a_naive_loop(observed: np.ndarray, max_gap: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.random((12, 2, 2, 3)).astype(np.float32)
    data = np.where(observed[:, None], truth, np.nan).astype(np.float32)
    fill_gaps(data, observed, max_gap)
    for c in range(2):
        for i in range(2):
            for j in range(3):
                expected = _naive_fill(truth[:, c, i, j], observed[:, i, j], max_gap)
                np.testing.assert_allclose(data[:, c, i, j], expected, rtol=1e-5, atol=1e-6)


# --- spectral indices -------------------------------------------------------------------------


def _stack(**bands: float) -> np.ndarray:
    arr = np.full((10, 2, 2), 0.1, dtype=np.float32)
    for name, value in bands.items():
        arr[BANDS.index(name)] = value
    return arr


def test_indices_use_the_right_bands() -> None:
    x = _stack(B04=0.1, B05=0.2, B08=0.5, B11=0.3)
    np.testing.assert_allclose(ndvi(x), (0.5 - 0.1) / 0.6, rtol=1e-6)
    np.testing.assert_allclose(ndre(x), (0.5 - 0.2) / 0.7, rtol=1e-6)
    np.testing.assert_allclose(ndmi(x), (0.5 - 0.3) / 0.8, rtol=1e-6)
    assert ndvi(x).dtype == np.float32 and ndvi(x).shape == (2, 2)


def test_indices_over_a_composite_and_other_axes() -> None:
    x = np.stack([_stack(B04=0.1, B08=0.3), _stack(B04=0.2, B08=0.2)])  # (T, C, H, W)
    out = ndvi(x)
    assert out.shape == (2, 2, 2)
    np.testing.assert_allclose(out[:, 0, 0], [0.5, 0.0], atol=1e-6)
    moved = np.moveaxis(x, 1, -1)  # (T, H, W, C)
    np.testing.assert_allclose(ndvi(moved, axis=-1), out)


def test_indices_are_nan_safe() -> None:
    x = _stack(B04=0.0, B08=0.0)
    x[6, 0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ndvi(x)
    assert np.isnan(out).all()
    with pytest.raises(ImageryError, match="expected 10"):
        ndvi(np.zeros((4, 3, 3)))
