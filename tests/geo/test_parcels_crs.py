"""Swapped axes and wrong units in parcel files, and parcels off the imagery (geo.parcel_crs)."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

from geo.errors import ParcelGeometryError
from geo.parcels import validate_parcels
from geo.sources.base import Bounds

UTM = "EPSG:32631"
E0, N0 = 500_000.0, 5_160_000.0  # near 3 E, 46.6 N: UTM zone 31N
#: Imagery around the parcels of :func:`frame` (EPSG:32631).
IMAGERY = Bounds(E0 - 1_000, N0 - 1_000, E0 + 5_000, N0 + 1_000, UTM)


def frame(n: int = 4, crs: str = UTM, geoms: list | None = None) -> gpd.GeoDataFrame:
    """``n`` 1 ha squares 300 m apart near ``(E0, N0)``, reprojected to ``crs``."""
    squares = [box(E0 + 300 * i, N0, E0 + 300 * i + 100, N0 + 100) for i in range(n)]
    gdf = gpd.GeoDataFrame(
        {
            "parcel_id": [f"P-{i}" for i in range(n)],
            "farmer_id": [f"F-{i}" for i in range(n)],
            "declared_crop": ["maize"] * n,
            "declared_area_ha": [1.0] * n,
        },
        geometry=squares,
        crs=UTM,
    ).to_crs(crs)
    if geoms is not None:
        gdf = gdf.set_geometry(gpd.GeoSeries(geoms, crs=crs))
    return gdf


def swap(geom: Polygon) -> Polygon:
    return shapely.ops.transform(lambda x, y: (y, x), geom)


def test_all_swapped_against_the_imagery_is_named_with_the_fix() -> None:
    lonlat = frame(crs="EPSG:4326")
    swapped = lonlat.set_geometry(lonlat.geometry.map(swap))
    with pytest.raises(ParcelGeometryError) as err:
        validate_parcels(swapped, source="pledges.geojson", imagery=IMAGERY)
    text = str(err.value)
    assert text.startswith("pledges.geojson: every parcel is affected: ")
    assert "coordinates look like lat/lon swapped: x in [46.59" in text
    assert "looks like latitude" in text and "like longitude" in text
    assert "inside the imagery (EPSG:32631" in text
    assert "write x = longitude, y = latitude" in text


def test_the_fix_in_the_message_repairs_the_file() -> None:
    lonlat = frame(crs="EPSG:4326")
    swapped = lonlat.set_geometry(lonlat.geometry.map(swap))
    with pytest.raises(ParcelGeometryError, match="gdf.geometry = gdf.geometry.map"):
        validate_parcels(swapped, imagery=IMAGERY)
    gdf = swapped.copy()
    gdf.geometry = gdf.geometry.map(lambda g: shapely.ops.transform(lambda x, y: (y, x), g))
    result = validate_parcels(gdf, imagery=IMAGERY)
    assert result.rejects.empty and result.outside_imagery == []
    np.testing.assert_allclose(result.parcels["area_ha"], 1.0, rtol=1e-3)


def test_without_a_reference_a_plausible_swap_is_not_guessed() -> None:
    """lon 46.6 / lat 3 is a place too (off Somalia): only imagery or a zone can tell."""
    lonlat = frame(crs="EPSG:4326")
    swapped = lonlat.set_geometry(lonlat.geometry.map(swap))
    result = validate_parcels(swapped)
    assert result.rejects.empty and result.parcels.crs.utm_zone == "38N"


def test_one_swapped_parcel_among_the_others_is_rejected_by_name() -> None:
    lonlat = frame(5, crs="EPSG:4326")
    geoms = list(lonlat.geometry)
    geoms[2] = swap(geoms[2])
    result = validate_parcels(
        lonlat.set_geometry(gpd.GeoSeries(geoms, crs="EPSG:4326")), source="f.gpkg"
    )
    assert result.parcels["parcel_id"].tolist() == ["P-0", "P-1", "P-3", "P-4"]
    error = result.rejects.set_index("parcel_id").loc["P-2", "error"]
    assert error.startswith("parcel P-2 (row 2 of f.gpkg): coordinates look like lat/lon swapped")
    assert "bulk of the file's parcels" in error
    assert result.rejects["farmer_id"].tolist() == ["F-2"]


def test_easting_and_northing_swapped_in_utm() -> None:
    utm = frame(3)
    swapped = utm.set_geometry(utm.geometry.map(swap))
    with pytest.raises(ParcelGeometryError, match="easting/northing swapped: x in .5160000"):
        validate_parcels(swapped)
    geoms = list(utm.geometry)
    geoms[0] = swap(geoms[0])
    mixed = validate_parcels(utm.set_geometry(gpd.GeoSeries(geoms, crs=UTM)))
    assert mixed.parcels["parcel_id"].tolist() == ["P-1", "P-2"]
    assert "no UTM easting" in mixed.rejects["error"].iloc[0]


def test_degrees_declared_as_metres_and_the_reverse_are_named() -> None:
    lonlat = frame(crs="EPSG:4326")
    with pytest.raises(ParcelGeometryError) as err:
        validate_parcels(lonlat.set_crs(UTM, allow_override=True), imagery=IMAGERY)
    text = str(err.value)
    assert "coordinates look like degrees declared as metres: x in [3.00" in text
    assert "as lon/lat it falls inside the imagery" in text
    assert "set_crs('EPSG:4326', allow_override=True)" in text
    utm = frame()
    with pytest.raises(ParcelGeometryError) as err:
        validate_parcels(utm.set_crs("EPSG:4326", allow_override=True), imagery=IMAGERY)
    text = str(err.value)
    assert "coordinates look like metres declared as degrees: x in [500000" in text
    assert "read as EPSG:32631 they fall inside the imagery" in text


def test_parcels_off_the_imagery_are_listed_and_none_on_it_is_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    small = Bounds(E0 - 100, N0 - 100, E0 + 700, N0 + 200, UTM)  # covers P-0..P-2
    with caplog.at_level(logging.WARNING, logger="geo.parcels"):
        result = validate_parcels(frame(5), source="f.gpkg", imagery=small)
    assert len(result.parcels) == 5 and result.rejects.empty
    assert result.outside_imagery == ["P-3", "P-4"]
    assert "f.gpkg: 2 parcel(s) lie wholly outside the imagery" in caplog.text
    assert "P-3, P-4" in caplog.text and "held for review" in caplog.text
    far = Bounds(E0 + 50_000, N0, E0 + 60_000, N0 + 10_000, UTM)
    with pytest.raises(ParcelGeometryError, match="f.gpkg: none of the 5 parcels lies on"):
        validate_parcels(frame(5), source="f.gpkg", imagery=far)


def test_imagery_in_another_crs_is_compared_in_the_parcels_crs() -> None:
    lonlat = frame(crs="EPSG:4326")
    result = validate_parcels(lonlat, imagery=IMAGERY)
    assert result.rejects.empty and result.outside_imagery == []
    lambert = validate_parcels(frame(crs="EPSG:2154"), imagery=IMAGERY)
    assert lambert.rejects.empty and lambert.outside_imagery == []


def _at(lon: float, lat: float, n: int) -> gpd.GeoDataFrame:
    """``n`` ~1 ha parcels 300 m apart at (lon, lat), in lon/lat, and the imagery over them."""
    utm = gpd.GeoSeries([shapely.Point(lon, lat)], crs="EPSG:4326").estimate_utm_crs()
    x0, y0 = gpd.GeoSeries([shapely.Point(lon, lat)], crs="EPSG:4326").to_crs(utm).iloc[0].coords[0]
    squares = [box(x0 + 300 * i, y0, x0 + 300 * i + 100, y0 + 100) for i in range(n)]
    gdf = gpd.GeoDataFrame(
        {
            "parcel_id": [f"P-{i}" for i in range(n)],
            "farmer_id": ["F"] * n,
            "declared_crop": ["maize"] * n,
            "declared_area_ha": [1.0] * n,
        },
        geometry=squares,
        crs=utm,
    )
    gdf.attrs["imagery"] = Bounds(x0 - 500, y0 - 500, x0 + 300 * n + 500, y0 + 600, str(utm))
    return gdf.to_crs("EPSG:4326")


places = st.tuples(st.floats(-175, 175), st.floats(-79, 79), st.integers(3, 6))


@settings(max_examples=40, deadline=None)
@given(places)
def test_no_false_alarm_anywhere(place: tuple[float, float, int]) -> None:
    """Good lon/lat parcels anywhere are never called swapped or off the imagery."""
    gdf = _at(*place)
    for imagery in (None, gdf.attrs["imagery"]):
        result = validate_parcels(gdf, imagery=imagery)
        assert result.rejects.empty, result.rejects["error"].tolist()
        assert result.outside_imagery == []


@settings(max_examples=40, deadline=None)
@given(places, st.data())
def test_a_swapped_parcel_is_named_anywhere(place: tuple[float, float, int], data) -> None:  # type: ignore[no-untyped-def]
    """Among good parcels, a swapped one is rejected; all swapped against the imagery raise."""
    lon, lat, n = place
    assume(abs(lon - lat) > 1.5)  # else the swap lands next to the field itself
    gdf = _at(lon, lat, n)
    row = data.draw(st.integers(0, n - 1))
    geoms = list(gdf.geometry)
    geoms[row] = swap(geoms[row])
    mixed = validate_parcels(gdf.set_geometry(gpd.GeoSeries(geoms, crs="EPSG:4326")))
    assert mixed.rejects["row"].tolist() == [row]
    assert "coordinates look like lat/lon swapped" in mixed.rejects["error"].iloc[0]
    assert len(mixed.parcels) == n - 1
    everyone = gdf.set_geometry(gdf.geometry.map(swap))
    with pytest.raises(ParcelGeometryError, match="coordinates look like lat/lon swapped"):
        validate_parcels(everyone, imagery=gdf.attrs["imagery"])
