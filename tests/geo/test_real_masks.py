"""Masking and compositing on real Sentinel-2 cloud masks and SCL layers (``../shared/data``).

* eo-learn ``TestEOPatch`` (Slovenia, 68 dates): real NDVI with the real s2cloudless cloud mask.
* WorldCereal Belgian patches: the real L2A scene classification (SCL) and reflectance.

NetCDF files are read through rasterio's netCDF driver (h5netcdf needs h5py, which this
environment lacks). Skipped where ``../shared/data`` is absent.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from geo.composite import composite_dekads
from geo.masking import DEFAULT_MASKED_SCL, clear_mask, clear_mask_from_probability
from geo.sources.base import SceneData
from geo.types import BANDS, Season
from geo.zonal import build_parcel_index, parcel_observed_fraction

pytestmark = pytest.mark.shared_data

CLEAR, CLOUD = 4, 9
LEAK_DN = 65_000  # a cloudy pixel carries this; it must never reach a composite


def _nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=axis)


# --- eo-learn: real NDVI and real cloud mask --------------------------------------------------


def _eopatch(shared_data: Path) -> tuple[list[dt.date], np.ndarray, np.ndarray, np.ndarray]:
    root = shared_data / "eolearn" / "TestEOPatch"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    dates = [
        dt.date.fromisoformat(t[:10]) for t in json.loads((root / "timestamps.json").read_text())
    ]
    ndvi = np.load(root / "data" / "NDVI.npy")[..., 0]
    cloud = np.load(root / "mask" / "CLM.npy")[..., 0].astype(bool)
    cloud |= ~np.load(root / "mask" / "IS_DATA.npy")[..., 0].astype(bool)
    clp = np.load(root / "data" / "CLP.npy")[..., 0]
    return dates, ndvi, cloud, clp


def _ndvi_scenes(dates: list[dt.date], ndvi: np.ndarray, cloud: np.ndarray) -> Iterator[SceneData]:
    """NDVI encoded as DN (ndvi + 1) * 10000 in every band; cloudy pixels carry LEAK_DN."""
    h, w = ndvi.shape[1:]
    grid = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_100_000.0)
    for i, date in enumerate(dates):
        dn = np.round((ndvi[i] + 1.0) * 10_000).astype(np.uint16)
        dn[cloud[i]] = LEAK_DN
        scl = np.where(cloud[i], CLOUD, CLEAR).astype(np.uint8)
        yield SceneData(
            f"eo{i}", date, np.broadcast_to(dn, (10, h, w)).copy(), scl, grid, "EPSG:32633"
        )


@pytest.mark.parametrize("year", [2016, 2017])
def test_real_cloud_mask_never_leaks_and_observed_matches(shared_data: Path, year: int) -> None:
    dates, ndvi, cloud, _ = _eopatch(shared_data)
    season = Season(year)
    comp = composite_dekads(_ndvi_scenes(dates, ndvi, cloud), season, season.end, max_gap=0)
    assert np.nanmax(comp.data) <= 2.0 + 1e-6, "a cloudy pixel's value reached the composite"

    # Independent reference: per dekad, the median of the NDVI of clear acquisitions.
    in_season = [i for i, d in enumerate(dates) if season.start <= d <= season.end]
    assert len(in_season) >= 20
    steps = np.array([season.dekad_index(dates[i]) for i in in_season])
    for t in np.unique(steps):
        members = [in_season[k] for k in np.flatnonzero(steps == t)]
        vals = np.where(cloud[members], np.nan, ndvi[members])
        expected_obs = ~cloud[members].all(axis=0)
        np.testing.assert_array_equal(comp.observed[t], expected_obs)
        np.testing.assert_allclose(comp.data[t, 6] - 1.0, _nanmedian(vals, 0), atol=1e-4)
    untouched = np.setdiff1d(np.arange(36), steps)
    assert not comp.observed[untouched].any() and np.isnan(comp.data[untouched]).all()

    # Observed fraction per dekad over the whole patch, through the zonal code.
    h, w = ndvi.shape[1:]
    t = comp.transform
    patch = gpd.GeoDataFrame(
        {"parcel_id": ["all"]}, geometry=[box(t.c, t.f - 10 * h, t.c + 10 * w, t.f)], crs=comp.crs
    )
    index = build_parcel_index(patch, comp.transform, (h, w))
    frac = parcel_observed_fraction(index, comp.observed)[0]
    np.testing.assert_allclose(frac, comp.observed.reshape(36, -1).mean(axis=1))
    assert 0.0 < frac.max() <= 1.0


def test_real_gap_filling_stays_between_observations(shared_data: Path) -> None:
    dates, ndvi, cloud, _ = _eopatch(shared_data)
    season = Season(2017)
    raw = composite_dekads(_ndvi_scenes(dates, ndvi, cloud), season, season.end, max_gap=0)
    filled = composite_dekads(_ndvi_scenes(dates, ndvi, cloud), season, season.end, max_gap=3)
    np.testing.assert_array_equal(raw.observed, filled.observed)
    obs = raw.observed
    # Observed values are untouched by gap filling.
    np.testing.assert_array_equal(
        np.moveaxis(filled.data, 1, -1)[obs], np.moveaxis(raw.data, 1, -1)[obs]
    )
    gained = filled.valid & ~raw.valid
    assert gained.any(), "real cloud gaps of <= 3 dekads exist and get filled"
    # A filled value lies between the observations that bracket it.
    positions = np.argwhere(gained)
    sample = np.random.default_rng(0).permutation(len(positions))[:400]
    for t, r, c in positions[sample]:
        series = raw.data[:, 0, r, c]
        before = series[:t][obs[:t, r, c]][-1]
        after = series[t + 1 :][obs[t + 1 :, r, c]][0]
        value = filled.data[t, 0, r, c]
        assert min(before, after) - 1e-6 <= value <= max(before, after) + 1e-6


def test_cloud_probability_mask_agrees_with_the_cloud_mask(shared_data: Path) -> None:
    _, _, cloud, clp = _eopatch(shared_data)
    usable = clear_mask_from_probability(clp, 0.4)
    assert (usable == ~cloud).mean() > 0.95
    # The s2cloudless mask is the thresholded probability, dilated: it holds the cloudy pixels.
    assert (usable | cloud).mean() > 0.99


# --- WorldCereal Belgian patches: real SCL and reflectance -----------------------------------


def _nc(path: Path, var: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(f'NETCDF:"{path}":{var}') as src:
            return src.read()


def _nc_dates(path: Path, var: str) -> list[dt.date]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(f'NETCDF:"{path}":{var}') as src:
            tags = src.tags()
    origin = dt.datetime.fromisoformat(tags["timestamp#units"].removeprefix("seconds since "))
    seconds = tags["NETCDF_DIM_timestamp_VALUES"].strip("{}").split(",")
    return [(origin + dt.timedelta(seconds=int(s))).date() for s in seconds]


def _patches(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "worldcereal" / "belgium_patches").glob("*/S2_L2A_20m_*.nc"))
    if not files:
        pytest.skip("no WorldCereal Belgian patches in shared data")
    return files


def test_clear_mask_on_real_scl_gives_the_class_fractions(shared_data: Path) -> None:
    for path in _patches(shared_data):
        scl = _nc(path, "SCL")
        assert scl.ndim == 3 and scl.shape[1:] == (32, 32)
        usable = clear_mask(scl)
        classes, counts = np.unique(scl, return_counts=True)
        kept = sum(
            int(n) for c, n in zip(classes, counts, strict=True) if c not in DEFAULT_MASKED_SCL
        )
        assert usable.sum() == kept, path.name
        assert usable[scl == 4].all() and not usable[np.isin(scl, (3, 8, 9, 10))].any()
        share = usable.mean()
        assert 0.2 < share < 0.9, (path.name, share)  # Flanders: about half the pixel-dates clear
        per_date = usable.reshape(len(scl), -1).mean(axis=1)
        assert per_date.min() == 0.0 and per_date.max() == 1.0, "fully cloudy and fully clear dates"


def test_real_scl_composite_matches_a_naive_median(shared_data: Path) -> None:
    path20 = next(
        (p for p in _patches(shared_data) if list(p.parent.glob("S2_L2A_10m_*.nc"))), None
    )
    if path20 is None:
        pytest.skip("no patch with both 10 m and 20 m files")
    path10 = next(path20.parent.glob("S2_L2A_10m_*.nc"))
    dates = _nc_dates(path20, "SCL")
    assert dates == _nc_dates(path10, "B04")
    bands: dict[str, np.ndarray] = {}
    for name in BANDS:
        if name in ("B02", "B03", "B04", "B08"):
            ten = _nc(path10, name).astype(np.float64)  # (T, 64, 64) -> 2x2 means at 20 m
            t_len = ten.shape[0]
            blocks = ten.reshape(t_len, 32, 2, 32, 2)
            mean = np.round(blocks.mean(axis=(2, 4)))
            mean[(blocks == 0).any(axis=(2, 4))] = 0
            bands[name] = mean.astype(np.uint16)
        else:
            bands[name] = _nc(path20, name).astype(np.uint16)
    dn = np.stack([bands[b] for b in BANDS], axis=1)  # (T, 10, 32, 32)
    scl = _nc(path20, "SCL")
    grid = Affine(20.0, 0.0, 0.0, 0.0, -20.0, 0.0)
    season = Season(dates[0].year + 1)  # the patch starts in August: the next full season
    scenes = [
        SceneData(f"be{i}", d, dn[i], scl[i], grid, "EPSG:32631") for i, d in enumerate(dates)
    ]
    comp = composite_dekads(scenes, season, season.end, max_gap=0)

    usable = clear_mask(scl) & (dn != 0).all(axis=1)
    refl = np.where(usable[:, None], dn * 1e-4, np.nan)
    in_season = [i for i, d in enumerate(dates) if season.start <= d <= season.end]
    steps = np.array([season.dekad_index(dates[i]) for i in in_season])
    assert len(in_season) > 30
    for t in np.unique(steps):
        members = [in_season[k] for k in np.flatnonzero(steps == t)]
        np.testing.assert_array_equal(comp.observed[t], usable[members].any(axis=0))
        np.testing.assert_allclose(
            comp.data[t], _nanmedian(refl[members], 0), rtol=1e-5, equal_nan=True
        )
    assert 0.0 < comp.observed.mean() < 1.0
    ndvi = (comp.data[:, 6] - comp.data[:, 2]) / (comp.data[:, 6] + comp.data[:, 2])
    assert np.nanmax(ndvi) > 0.6, "summer crops are green in the real composite"
