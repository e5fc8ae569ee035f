"""assess_parcels on a tiny constructed composite and probability map."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from affine import Affine
from shapely.geometry import box

from geo.composite import Composite
from geo.types import BANDS, CROP_INDEX, CROPS, Season
from vision.assess import ASSESSMENT_COLUMNS, CURVE_COLUMNS, assess_parcels
from vision.health import load_reference_curves, reference_arrays

H = W = 24
TRANSFORM = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_000_240.0)
SEASON = Season(2026)
AS_OF = dt.date(2026, 7, 31)  # dekad 26


def _px_box(r0: int, r1: int, c0: int, c1: int):  # type: ignore[no-untyped-def]
    x0, y0 = TRANSFORM @ (c0, r1)
    x1, y1 = TRANSFORM @ (c1, r0)
    return box(x0, y0, x1, y1)


def _reflectance(ndvi: np.ndarray) -> np.ndarray:
    """(T, C) reflectance whose (B08 - B04) / (B08 + B04) equals ndvi."""
    red = 0.05
    nir = red * (1 + ndvi) / (1 - ndvi)
    out = np.full((len(ndvi), len(BANDS)), 0.1, np.float32)
    out[:, BANDS.index("B04")] = red
    out[:, BANDS.index("B08")] = nir
    return out


@pytest.fixture(scope="module")
def scene() -> tuple[gpd.GeoDataFrame, Composite, np.ndarray, pd.DataFrame]:
    curves = load_reference_curves()
    t_now = SEASON.dekad_index(AS_OF)
    ref_maize, sd_maize = reference_arrays(curves, ["maize"])
    # parcel A (rows 2-9, cols 2-13): maize like its reference -> good
    # parcel B (rows 13-20, cols 2-13): declared maize, classifier unsure (winter_cereals 0.45),
    #   NDVI 3 SD below the maize reference -> judged against maize (low confidence): failed
    # parcel C: outside the grid -> empty
    parcels = gpd.GeoDataFrame(
        {
            "parcel_id": ["A", "B", "C"],
            "farmer_id": ["F1", "F1", "F2"],
            "region": ["poitou-nord"] * 3,
            "declared_crop": ["maize", "maize", "sunflower"],
            "declared_area_ha": [1.0, 1.0, 2.0],
        },
        geometry=[_px_box(2, 10, 2, 14), _px_box(13, 21, 2, 14), box(0, 0, 100, 100)],
        crs="EPSG:32631",
    )
    parcels["area_ha"] = parcels.geometry.area / 1e4
    data = np.full((36, len(BANDS), H, W), np.nan, np.float32)
    observed = np.zeros((36, H, W), bool)
    ndvi_a = ref_maize[0]
    ndvi_b = np.clip(ref_maize[0] - 3.5 * np.maximum(sd_maize[0], 0.05), 0.05, 0.95)
    for rows, ndvi in ((slice(0, 12), ndvi_a), (slice(12, 24), ndvi_b)):
        refl = _reflectance(ndvi)[: t_now + 1]
        data[: t_now + 1, :, rows, :] = refl[:, :, None, None]
        observed[: t_now + 1, rows, :] = True
    observed[5:8] = False  # a cloudy spell: 3 of 27 dekads unobserved
    comp = Composite(
        data=data,
        observed=observed,
        dates=SEASON.dekads(),
        transform=TRANSFORM,
        crs="EPSG:32631",
        as_of=AS_OF,
    )
    k = len(CROPS)
    proba = np.full((k, H, W), 0.0, np.float32)
    proba[CROP_INDEX["non_crop"]] = 1.0
    a = (slice(2, 10), slice(2, 14))
    proba[:, a[0], a[1]] = 0.01
    proba[CROP_INDEX["maize"], a[0], a[1]] = 1.0 - 0.01 * (k - 1)
    b = (slice(13, 21), slice(2, 14))
    proba[:, b[0], b[1]] = 0.55 / (k - 1)
    proba[CROP_INDEX["winter_cereals"], b[0], b[1]] = 0.45
    return parcels, comp, proba, curves


def test_columns_and_values(scene) -> None:  # type: ignore[no-untyped-def]
    parcels, comp, proba, curves = scene
    table, curve = assess_parcels(parcels, comp, proba, reference_curves=curves)
    assert list(table.columns) == list(ASSESSMENT_COLUMNS)
    assert list(curve.columns) == list(CURVE_COLUMNS)
    assert len(curve) == 3 * 36
    a, b, c = (table.iloc[i] for i in range(3))

    assert a.detected_crop == "maize" and a.confidence == pytest.approx(0.9, abs=1e-4)
    assert a.crop_fraction == pytest.approx(1.0) and a.frac_maize == pytest.approx(1.0)
    assert a.planted_area_ha == pytest.approx(a.area_ha) == pytest.approx(0.96)
    assert a.planted_area_lo_ha <= a.planted_area_ha <= a.planted_area_hi_ha <= a.area_ha
    assert a.observed_fraction == pytest.approx(24 / 27)
    assert a.health_class == "good" and abs(a.health_z) < 0.1
    assert a.health_since is None and a.as_of == AS_OF
    assert a.growth_stage in {"vegetative", "flowering"}

    assert b.detected_crop == "winter_cereals" and b.confidence == pytest.approx(0.45, abs=1e-4)
    assert b.frac_winter_cereals == pytest.approx(1.0)
    assert b.health_class == "failed" and b.health_z < -3  # judged against declared maize
    assert isinstance(b.health_since, dt.date)
    assert b.planted_area_lo_ha < b.planted_area_ha  # unsure pixels widen the interval

    assert c.detected_crop == "sunflower" and c.confidence == 0.0
    assert c.observed_fraction == 0.0 and c.health_class == "unknown" and np.isnan(c.health_z)
    assert c.planted_area_lo_ha == 0.0 and c.planted_area_hi_ha == pytest.approx(c.area_ha)
    # A follows its reference: no drop (B's clipped NDVI drifts in z: only known)
    assert abs(a.health_drop_z) < 0.1 and np.isfinite(b.health_drop_z)
    assert np.isnan(c.health_drop_z)

    cur_a = curve[curve["parcel_id"] == "A"].reset_index(drop=True)
    assert cur_a["dekad"].iloc[0] == SEASON.dekads()[0]
    assert cur_a["ndvi"].iloc[26] == pytest.approx(cur_a["ref_ndvi"].iloc[26], abs=1e-3)
    assert cur_a["ndvi"].iloc[27:].isna().all()
    assert cur_a["valid_fraction"].iloc[6] == 0.0 and cur_a["valid_fraction"].iloc[20] == 1.0


def test_ndre_and_ndmi_z_follow_the_canopy(scene) -> None:  # type: ignore[no-untyped-def]
    """B's NIR is far below A's (NDVI 3.5 SD under maize): its red-edge and moisture indices
    fall with it, so its NDRE and NDMI z sit well below A's; the empty parcel has none."""
    parcels, comp, proba, curves = scene
    table, _ = assess_parcels(parcels, comp, proba, reference_curves=curves)
    t = table.set_index("parcel_id")
    for col in ("ndre_z", "ndmi_z"):
        assert np.isfinite(t.loc[["A", "B"], col]).all(), col
        assert t.loc["B", col] < t.loc["A", col] - 1.0, (col, t[col].tolist())
        assert np.isnan(t.loc["C", col]), col


def test_error_matrix_widens_interval(scene) -> None:  # type: ignore[no-untyped-def]
    parcels, comp, proba, curves = scene
    k = len(CROPS)
    plain, _ = assess_parcels(parcels, comp, proba, reference_curves=curves)
    cm = np.eye(k) * 80 + 2.0  # 80 % recall / precision-ish per class
    wide, _ = assess_parcels(parcels, comp, proba, reference_curves=curves, area_error=cm)
    assert (wide["planted_area_lo_ha"] <= plain["planted_area_lo_ha"] + 1e-9).all()
    assert wide["planted_area_lo_ha"].iloc[0] < plain["planted_area_lo_ha"].iloc[0]
    with pytest.raises(ValueError, match="area_error"):
        assess_parcels(parcels, comp, proba, reference_curves=curves, area_error=np.eye(3))


def test_proba_shape_checked(scene) -> None:  # type: ignore[no-untyped-def]
    parcels, comp, proba, curves = scene
    with pytest.raises(ValueError, match="proba"):
        assess_parcels(parcels, comp, proba[:, :10], reference_curves=curves)


def test_health_drop_of_a_collapsing_parcel(scene) -> None:  # type: ignore[no-untyped-def]
    """Parcel A at +1 sd until two dekads ago, then at -0.6 sd: a drop of ~1.6 sd, while its
    3-dekad z (about -0.1) still looks like an average field."""
    parcels, comp, proba, curves = scene
    t_now = SEASON.dekad_index(AS_OF)
    ref, sd = reference_arrays(curves, ["maize"], ["poitou-nord"])
    sd_f = np.maximum(sd[0], 0.05)
    ndvi = np.clip(ref[0] + 1.0 * sd_f, 0.05, 0.95)
    ndvi[t_now - 1 : t_now + 1] = ref[0][t_now - 1 : t_now + 1] - 0.6 * sd_f[t_now - 1 : t_now + 1]
    data = comp.data.copy()
    data[: t_now + 1, :, 0:12, :] = _reflectance(ndvi)[: t_now + 1, :, None, None]
    dropped = Composite(
        data=data,
        observed=comp.observed,
        dates=comp.dates,
        transform=comp.transform,
        crs=comp.crs,
        as_of=comp.as_of,
    )
    table, _ = assess_parcels(parcels, dropped, proba, reference_curves=curves)
    a = table.iloc[0]
    assert a.health_drop_z == pytest.approx(1.6, abs=0.1)
    assert a.health_z > -0.5  # z alone does not show it yet


def test_parcel_temperature_sharpens_confidence_not_the_crop(scene) -> None:  # type: ignore[no-untyped-def]
    """Parcel B's mean probability (0.45 winter cereals) is under the 0.6 review threshold;
    sharpened by a parcel temperature of 0.4 it is 0.95 with the same detected crop."""
    parcels, comp, proba, curves = scene
    plain, _ = assess_parcels(parcels, comp, proba, reference_curves=curves)
    sharp, _ = assess_parcels(parcels, comp, proba, reference_curves=curves, parcel_temperature=0.4)
    assert plain["detected_crop"].tolist() == sharp["detected_crop"].tolist()
    b = plain.index[plain["parcel_id"] == "B"][0]
    assert plain.loc[b, "confidence"] == pytest.approx(0.45, abs=1e-6)
    k = len(CROPS)
    expected = 0.45**2.5 / (0.45**2.5 + (k - 1) * (0.55 / (k - 1)) ** 2.5)
    assert sharp.loc[b, "confidence"] == pytest.approx(expected, rel=1e-5)
    assert sharp["planted_area_ha"].tolist() == plain["planted_area_ha"].tolist()
    c = plain.index[plain["parcel_id"] == "C"][0]
    assert sharp.loc[c, "confidence"] == 0.0  # empty parcels stay at zero
