"""Reading and validating pledged parcels; overlaps between different farmers."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, Polygon, box

from geo.errors import ParcelError, ParcelGeometryError
from geo.parcels import (
    PARCEL_COLUMNS,
    REJECT_COLUMNS,
    REQUIRED_COLUMNS,
    find_overlaps,
    read_parcels,
    validate_parcels,
)
from geo.types import CROPS

UTM = "EPSG:32631"
E0, N0 = 500_000.0, 5_160_000.0  # near 3 E, 46.6 N: UTM zone 31N


def square(i: int, side: float = 100.0) -> Polygon:
    return box(E0 + 300 * i, N0, E0 + 300 * i + side, N0 + side)


def parcels_frame(n: int = 3, **columns: list) -> gpd.GeoDataFrame:
    data = {
        "parcel_id": [f"P-{i}" for i in range(n)],
        "farmer_id": [f"F-{i % 2}" for i in range(n)],
        "declared_crop": ["maize"] * n,
        "declared_area_ha": [1.0] * n,
    }
    geoms = columns.pop("geometry", None) or [square(i) for i in range(n)]
    data.update(columns)
    return gpd.GeoDataFrame(data, geometry=geoms, crs=UTM)


def test_utm_input_keeps_its_crs_and_measures_area() -> None:
    result = validate_parcels(parcels_frame(3))
    p = result.parcels
    assert list(p.columns) == list(PARCEL_COLUMNS)
    assert p.crs.to_epsg() == 32631
    np.testing.assert_allclose(p["area_ha"], 1.0)
    assert p["region"].tolist() == ["default"] * 3
    assert p["parcel_id"].tolist() == ["P-0", "P-1", "P-2"]
    assert list(result.rejects.columns) == list(REJECT_COLUMNS) and result.rejects.empty
    assert REJECT_COLUMNS == ("parcel_id", "farmer_id", "row", "file", "error")


def test_lonlat_is_projected_to_its_utm_zone() -> None:
    gdf = parcels_frame(3).to_crs("EPSG:4326")
    p = validate_parcels(gdf).parcels
    assert p.crs.to_epsg() == 32631
    np.testing.assert_allclose(p["area_ha"], 1.0, rtol=1e-4)


def test_other_projections_go_to_utm_and_target_crs_is_honoured() -> None:
    lambert = parcels_frame(2).to_crs("EPSG:2154")
    assert validate_parcels(lambert).parcels.crs.to_epsg() == 32631
    other = validate_parcels(parcels_frame(2), crs="EPSG:32630").parcels
    assert other.crs.to_epsg() == 32630
    with pytest.raises(ParcelError, match="not projected"):
        validate_parcels(parcels_frame(2), crs="EPSG:4326")


def test_invalid_geometry_is_repaired_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    bowtie = Polygon([(E0, N0), (E0 + 100, N0 + 100), (E0 + 100, N0), (E0, N0 + 100)])
    gdf = parcels_frame(2, geometry=[bowtie, square(1)])
    with caplog.at_level(logging.WARNING, logger="geo.parcels"):
        result = validate_parcels(gdf)
    assert len(result.parcels) == 2 and result.rejects.empty
    assert result.parcels.geometry.iloc[0].is_valid
    assert result.parcels["area_ha"].iloc[0] == pytest.approx(0.5)
    assert "make_valid" in caplog.text and "P-0" in caplog.text


def test_each_bad_parcel_is_rejected_with_a_reason() -> None:
    geoms = [
        square(0),  # 0 ok
        Polygon(),  # 1 empty
        None,  # 2 missing geometry
        Point(E0, N0),  # 3 point
        LineString([(E0, N0), (E0 + 50, N0)]),  # 4 line
        Polygon([(E0, N0), (E0 + 10, N0), (E0 + 20, N0)]),  # 5 zero area
        box(E0, N0, E0 + 3000, N0 + 3000),  # 6 giant: 900 ha
        square(7),  # 7 unknown crop
        square(8),  # 8 missing farmer
        square(9),  # 9 duplicate of row 0
        square(10),  # 10 bad declared area
        square(11),  # 11 missing id
        square(12),  # 12 ok, normalised crop name
    ]
    n = len(geoms)
    gdf = parcels_frame(
        n,
        parcel_id=[f"P-{i}" for i in range(9)] + ["P-0", "P-10", None, "P-12"],
        farmer_id=["F"] * 8 + [None] + ["F"] * 4,
        declared_crop=["maize"] * 7 + ["wheat"] + ["maize"] * 4 + ["Winter Cereals"],
        declared_area_ha=[1.0] * 10 + ["abc", 1.0, 1.0],
        geometry=geoms,
    )
    result = validate_parcels(gdf, source="pledges.gpkg")
    assert result.parcels["parcel_id"].tolist() == ["P-0", "P-12"]
    assert result.parcels["declared_crop"].tolist() == ["maize", "winter_cereals"]
    rej = result.rejects.set_index("row")
    assert rej.index.tolist() == list(range(1, 12))
    assert (rej["file"] == "pledges.gpkg").all()
    expected = {
        1: "empty geometry",
        2: "empty geometry",
        3: "is a Point",
        4: "is a LineString",
        5: "no polygonal part",
        6: "giant parcel of 900.0 ha",
        7: "unknown crop 'wheat'",
        8: "missing farmer_id",
        9: "duplicate parcel_id (first at row 0)",
        10: "declared_area_ha 'abc'",
        11: "missing parcel_id",
    }
    errors = dict(
        zip(result.rejects["row"].tolist(), result.rejects["error"].tolist(), strict=True)
    )
    for row, text in expected.items():
        assert text in errors[row], (row, errors[row])
        assert f"row {row} of pledges.gpkg" in errors[row]
    assert all(c in errors[7] for c in CROPS), "the valid crop names are listed"
    assert rej.loc[9, "parcel_id"] == "P-0" and rej.loc[11, "parcel_id"] == "<row 11>"
    assert rej.loc[7, "farmer_id"] == "F" and pd.isna(rej.loc[8, "farmer_id"])


def test_ids_read_as_numbers_become_clean_strings() -> None:
    gdf = parcels_frame(2, parcel_id=[17.0, 18.0], farmer_id=[3, 4])
    p = validate_parcels(gdf).parcels
    assert p["parcel_id"].tolist() == ["17", "18"] and p["farmer_id"].tolist() == ["3", "4"]


def test_whole_file_problems_raise() -> None:
    with pytest.raises(ParcelError, match="farmer_id") as err:
        validate_parcels(parcels_frame(2).drop(columns=["farmer_id"]), source="x.gpkg")
    assert "x.gpkg" in str(err.value) and "rename" in str(err.value)
    no_crs = parcels_frame(2).set_crs(None, allow_override=True)
    with pytest.raises(ParcelGeometryError, match="no CRS.*set"):
        validate_parcels(no_crs)


def test_wrong_units_are_diagnosed() -> None:
    lonlat = parcels_frame(3).to_crs("EPSG:4326")
    swapped = lonlat.set_geometry(
        lonlat.geometry.map(lambda g: Polygon([(y, x) for x, y in g.exterior.coords]))
    )
    # lon 3 / lat 46.6 swapped stays inside +-90: the target zone (0-6 E) is the tell.
    with pytest.raises(ParcelGeometryError, match="lat/lon swapped: x in .46.59") as err:
        validate_parcels(swapped, crs=UTM, source="pledges.gpkg")
    assert "pledges.gpkg: every parcel" in str(err.value)
    assert "inside the target UTM zone EPSG:32631" in str(err.value)
    far_east = lonlat.set_geometry(lonlat.translate(xoff=100.0).geometry)  # lon 103 E
    far_swapped = far_east.set_geometry(
        far_east.geometry.map(lambda g: Polygon([(y, x) for x, y in g.exterior.coords]))
    )
    with pytest.raises(ParcelGeometryError, match="lat/lon swapped.*beyond \\+-90"):
        validate_parcels(far_swapped)
    metres_as_degrees = parcels_frame(3).set_crs("EPSG:4326", allow_override=True)
    with pytest.raises(ParcelGeometryError, match="metres declared as degrees"):
        validate_parcels(metres_as_degrees)
    degrees_as_metres = lonlat.set_crs(UTM, allow_override=True)
    with pytest.raises(ParcelGeometryError, match="degrees declared as metres.*EPSG:4326"):
        validate_parcels(degrees_as_metres)


def test_one_swapped_parcel_is_a_reject_not_a_failure() -> None:
    lonlat = parcels_frame(3).to_crs("EPSG:4326")
    geoms = list(lonlat.geometry)
    geoms[1] = Polygon([(y, x + 100) for x, y in geoms[1].exterior.coords])  # latitude > 90
    result = validate_parcels(lonlat.set_geometry(gpd.GeoSeries(geoms, crs="EPSG:4326")))
    assert result.parcels["parcel_id"].tolist() == ["P-0", "P-2"]
    assert "lat/lon swapped" in result.rejects["error"].iloc[0]


def test_a_stray_parcel_does_not_move_the_others_to_another_zone() -> None:
    lonlat = parcels_frame(5).to_crs("EPSG:4326")
    geoms = list(lonlat.geometry)
    geoms[4] = Polygon([(x + 90, y) for x, y in geoms[4].exterior.coords])  # 93 E, far away
    result = validate_parcels(lonlat.set_geometry(gpd.GeoSeries(geoms, crs="EPSG:4326")))
    assert result.parcels.crs.to_epsg() == 32631
    assert result.parcels["parcel_id"].tolist() == ["P-0", "P-1", "P-2", "P-3"]
    assert "outside EPSG:32631" in result.rejects["error"].iloc[0]


@pytest.mark.parametrize("suffix", [".parquet", ".gpkg", ".geojson", ".fgb"])
def test_read_parcels_from_each_format(tmp_path: Path, suffix: str) -> None:
    gdf = parcels_frame(3, region=["north", None, "south"])
    path = tmp_path / f"parcels{suffix}"
    if suffix == ".parquet":
        gdf.to_parquet(path)
    else:
        (gdf.to_crs("EPSG:4326") if suffix == ".geojson" else gdf).to_file(path, engine="pyogrio")
    result = read_parcels(path)
    assert result.source == str(path)
    got = result.parcels.sort_values("parcel_id")  # FlatGeobuf stores features spatially sorted
    assert got["parcel_id"].tolist() == ["P-0", "P-1", "P-2"]
    assert got["region"].tolist() == ["north", "default", "south"]
    assert result.parcels.crs.to_epsg() == 32631
    np.testing.assert_allclose(result.parcels["area_ha"], 1.0, rtol=1e-4)


def test_read_parcels_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ParcelError, match="missing.gpkg does not exist"):
        read_parcels(tmp_path / "missing.gpkg")
    csv = tmp_path / "parcels.csv"
    csv.write_text("a,b\n")
    with pytest.raises(ParcelError, match="unknown format '.csv'"):
        read_parcels(csv)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ParcelError, match="broken.parquet cannot be read"):
        read_parcels(broken)
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"parcel_id": ["a"]}).to_parquet(plain)
    with pytest.raises(ParcelError, match="plain.parquet"):
        read_parcels(plain)
    no_crs = tmp_path / "nocrs.gpkg"
    with pytest.warns(UserWarning, match="crs"):
        parcels_frame(2).set_crs(None, allow_override=True).to_file(no_crs, engine="pyogrio")
    with pytest.raises(ParcelGeometryError, match="nocrs.gpkg: the parcels have no CRS"):
        read_parcels(no_crs)


@settings(max_examples=15, deadline=None)
@given(
    width=st.floats(5, 2000),
    height=st.floats(5, 2000),
    dx=st.floats(-200_000, 200_000),
)
def test_area_invariants(width: float, height: float, dx: float) -> None:
    geom = box(E0 + dx, N0, E0 + dx + width, N0 + height)
    gdf = parcels_frame(1, geometry=[geom])
    result = validate_parcels(gdf)
    ha = width * height / 1e4
    if ha > 500:
        assert result.parcels.empty and "giant" in result.rejects["error"].iloc[0]
        return
    assert result.parcels["area_ha"].iloc[0] == pytest.approx(ha, rel=1e-9)
    via_lonlat = validate_parcels(gdf.to_crs("EPSG:4326"), crs=UTM)
    assert via_lonlat.parcels["area_ha"].iloc[0] == pytest.approx(ha, rel=1e-3)


# --- overlaps ----------------------------------------------------------------------------------


def test_overlaps_only_between_different_farmers_both_directions() -> None:
    gdf = gpd.GeoDataFrame(
        {
            "parcel_id": ["A", "B", "C", "D"],
            "farmer_id": ["F1", "F2", "F1", "F3"],
        },
        geometry=[
            box(0, 0, 100, 100),  # A: 1 ha
            box(80, 0, 180, 100),  # B overlaps A by 20 x 100 = 0.2 ha
            box(50, 50, 150, 150),  # C: same farmer as A (not listed with A), overlaps B
            box(0, 99.9, 100, 300),  # D touches A by a 0.1 m strip: below min_share
        ],
        crs=UTM,
    )
    out = find_overlaps(gdf)
    pairs = set(zip(out["parcel_id"], out["other_parcel_id"], strict=True))
    assert pairs == {("A", "B"), ("B", "A"), ("B", "C"), ("C", "B"), ("C", "D"), ("D", "C")}
    ab = out[(out.parcel_id == "A") & (out.other_parcel_id == "B")].iloc[0]
    assert ab.overlap_ha == pytest.approx(0.2) and ab.overlap_share == pytest.approx(0.2)
    assert ab.farmer_id == "F1" and ab.other_farmer_id == "F2"
    dc = out[(out.parcel_id == "D") & (out.other_parcel_id == "C")].iloc[0]
    assert dc.overlap_share == pytest.approx(50 * 50.1 / (100 * 200.1))
    assert find_overlaps(gdf, min_share=0.9).empty
    with pytest.raises(ParcelGeometryError, match="projected"):
        find_overlaps(gdf.to_crs("EPSG:4326"))


boxes = st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(10, 200), st.floats(10, 200)).map(
    lambda t: box(t[0], t[1], t[0] + t[2], t[1] + t[3])
)


@settings(max_examples=40, deadline=None)
@given(
    geoms=st.lists(boxes, min_size=0, max_size=12),
    farmers=st.lists(st.sampled_from("ABC"), min_size=12, max_size=12),
    min_share=st.floats(0.0, 0.5),
)
def test_overlaps_match_brute_force(geoms: list, farmers: list[str], min_share: float) -> None:
    gdf = gpd.GeoDataFrame(
        {"parcel_id": [f"P{i}" for i in range(len(geoms))], "farmer_id": farmers[: len(geoms)]},
        geometry=geoms,
        crs=UTM,
    )
    got = find_overlaps(gdf, min_share=min_share)
    expected = set()
    for i, j in itertools.permutations(range(len(geoms)), 2):
        if farmers[i] == farmers[j]:
            continue
        inter = geoms[i].intersection(geoms[j]).area
        if inter > 0 and max(inter / geoms[i].area, inter / geoms[j].area) >= min_share:
            expected.add((f"P{i}", f"P{j}", round(inter / geoms[i].area, 9)))
    assert {
        (a, b, round(s, 9))
        for a, b, s in zip(got.parcel_id, got.other_parcel_id, got.overlap_share, strict=True)
    } == expected
    assert list(got.columns) == [
        "parcel_id",
        "farmer_id",
        "other_parcel_id",
        "other_farmer_id",
        "overlap_ha",
        "overlap_share",
    ]


def test_required_columns_constant() -> None:
    assert REQUIRED_COLUMNS == ("parcel_id", "farmer_id", "declared_crop", "declared_area_ha")


def test_3d_polygons_are_flattened_and_a_missing_crop_is_named() -> None:
    z_square = Polygon([(x, y, 12.0) for x, y in square(0).exterior.coords])
    gdf = parcels_frame(2, geometry=[z_square, square(1)], declared_crop=["maize", None])
    result = validate_parcels(gdf)
    assert result.parcels["parcel_id"].tolist() == ["P-0"]
    assert not result.parcels.geometry.iloc[0].has_z
    assert "missing declared_crop; expected one of non_crop" in result.rejects["error"].iloc[0]


def test_every_reject_is_logged_and_a_legend_miss_names_close_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from geo.parcels import reject_records

    gdf = parcels_frame(
        3,
        declared_crop=["maize", "common_soft_wheat", "maize"],
        geometry=[square(0), square(1), box(E0, N0 + 500, E0 + 3000, N0 + 3500)],
    )
    with caplog.at_level(logging.WARNING, logger="geo.parcels"):
        result = validate_parcels(gdf, source="pledges.gpkg")
    assert result.parcels["parcel_id"].tolist() == ["P-0"]
    logged = caplog.text
    assert "parcel P-1 (row 1 of pledges.gpkg)" in logged
    assert "parcel P-2 (row 2 of pledges.gpkg)" in logged
    wheat = result.rejects.set_index("parcel_id").loc["P-1", "error"]
    assert "close legend names: winter_cereals (legend label 'common_soft_wheat')" in wheat
    records = reject_records(result.rejects)
    assert [r["parcel_id"] for r in records] == ["P-1", "P-2"]
    assert records[0]["farmer_id"] == "F-1" and records[0]["file"] == "pledges.gpkg"
