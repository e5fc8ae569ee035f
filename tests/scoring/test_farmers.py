"""The farmers table: whole-file refusals, per-farmer rejects, parcels set aside."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from geo.errors import TableError
from geo.parcels import REJECT_COLUMNS, validate_parcels
from scoring.farmers import FARMER_REJECT_COLUMNS, REQUIRED_COLUMNS, read_farmers, set_aside_parcels

HEADER = "farmer_id,region,name,annual_debt_service_eur,years_with_lender\n"
DEMO_FARMERS = Path("/work/baseline-demo/archive/farmers.csv")


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "farmers.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def test_good_table_is_read_whole(tmp_path: Path) -> None:
    path = _csv(tmp_path, "F-1,nord,A,180.0,20\nF-2,,B,0,0\n")
    farmers, rejects = read_farmers(path)
    assert rejects.empty and list(rejects.columns) == list(FARMER_REJECT_COLUMNS)
    assert farmers["farmer_id"].tolist() == ["F-1", "F-2"]
    assert farmers["annual_debt_service_eur"].tolist() == [180.0, 0.0]
    assert farmers["region"].tolist() == ["nord", ""]


def test_region_is_optional(tmp_path: Path) -> None:
    path = _csv(
        tmp_path, "F-1,10,2\n", header="farmer_id,annual_debt_service_eur,years_with_lender\n"
    )
    farmers, _ = read_farmers(path)
    assert farmers["region"].tolist() == [""]


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        ('"1,980"', "line 3, column annual_debt_service_eur: '1,980' is not a number"),
        ("", "line 3, column annual_debt_service_eur is blank; write 0 if the farmer has no"),
        ("-300", "line 3, column annual_debt_service_eur: '-300' is negative"),
        ("n/a", "'n/a' is not a number"),
        ("inf", "'inf' is not a number"),
    ],
)
def test_a_bad_debt_refuses_that_farmer_only(tmp_path: Path, cell: str, needle: str) -> None:
    path = _csv(tmp_path, f"F-1,nord,A,180,20\nF-3,nord,C,{cell},17\nF-4,nord,D,300,8\n")
    farmers, rejects = read_farmers(path)
    assert farmers["farmer_id"].tolist() == ["F-1", "F-4"]
    assert rejects["farmer_id"].tolist() == ["F-3"]
    assert rejects["line"].tolist() == [3]
    assert rejects["column"].tolist() == ["annual_debt_service_eur"]
    message = rejects["error"].iloc[0]
    assert message.startswith(str(path)) and needle in message and "not scored" in message


def test_a_farmer_on_two_lines_is_refused_on_both(tmp_path: Path) -> None:
    path = _csv(tmp_path, "F-1,n,A,1,1\nF-2,n,B,2,2\n\nF-2,n,B,2,2\n,n,X,3,3\n")
    farmers, rejects = read_farmers(path)
    assert farmers["farmer_id"].tolist() == ["F-1"]
    assert rejects["line"].tolist() == [3, 5, 6]  # the blank line 4 is counted
    assert "appears on lines 3, 5" in rejects["error"].iloc[0]
    assert (
        pd.isna(rejects["farmer_id"].iloc[2]) and "farmer_id is blank" in rejects["error"].iloc[2]
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "farmer_id,region,years_with_lender\nF-1,n,2\n",
            "lacks column(s) annual_debt_service_eur",
        ),
        (HEADER, "no farmer line"),
        ("", "is empty"),
    ],
)
def test_whole_file_problems_raise_naming_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "farmers.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TableError) as err:
        read_farmers(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def _parcels(farmers: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "parcel_id": [f"P-{i}" for i in range(len(farmers))],
            "farmer_id": farmers,
            "declared_crop": ["maize"] * len(farmers),
            "declared_area_ha": [1.0] * len(farmers),
        },
        geometry=[
            box(500_000 + 300 * i, 5_160_000, 500_100 + 300 * i, 5_160_100)
            for i in range(len(farmers))
        ],
        crs="EPSG:32631",
    )


def test_parcels_of_refused_and_unlisted_farmers_are_set_aside(tmp_path: Path) -> None:
    path = _csv(tmp_path, 'F-1,n,A,1,1\nF-2,n,B,"1,980",2\n')
    farmers, farmer_rejects = read_farmers(path)
    ps = validate_parcels(_parcels(["F-1", "F-2", "F-9", "F-1"]), source="p.gpkg")
    parcels, rejects = set_aside_parcels(ps, farmers, farmer_rejects, path)
    assert parcels["parcel_id"].tolist() == ["P-0", "P-3"]
    assert list(rejects.columns) == list(REJECT_COLUMNS)
    assert rejects["parcel_id"].tolist() == ["P-1", "P-2", None]
    p1, p2, line = rejects["error"].tolist()
    assert "P-1" in p1 and f"its farmer F-2 is refused at {path} line 3" in p1
    assert "farmer F-9 has no line in the farmers table" in p2 and str(path) in p2
    assert line.startswith(f"{path} line 3")


def test_no_parcel_left_refuses_the_table(tmp_path: Path) -> None:
    path = _csv(tmp_path, "F-1,n,A,-1,1\n")
    farmers, farmer_rejects = read_farmers(path)
    ps = validate_parcels(_parcels(["F-1"]), source="p.gpkg")
    with pytest.raises(TableError, match="no parcel is left to score"):
        set_aside_parcels(ps, farmers, farmer_rejects, path)


def test_the_demo_farmers_table_is_accepted_as_pandas_read_it() -> None:
    if not DEMO_FARMERS.is_file():
        pytest.skip(f"{DEMO_FARMERS} not here (the baseline demo run writes it)")
    farmers, rejects = read_farmers(DEMO_FARMERS)
    assert rejects.empty
    plain = pd.read_csv(DEMO_FARMERS, dtype={"farmer_id": str})
    assert len(farmers) == len(plain) == 320
    for col in ("farmer_id", "region", "annual_debt_service_eur", "years_with_lender"):
        assert (farmers[col].to_numpy() == plain[col].to_numpy()).all(), col


CELLS = ("", " ", "n/a", "-1", "1,5", "1,980", "inf", "nan", "1e400", " 7 ", "abc", "0", "12.5")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from(["farmer_id", *REQUIRED_COLUMNS[1:]]),
            st.sampled_from(CELLS),
        ),
        max_size=4,
    ),
    repeat=st.lists(st.integers(0, 5), max_size=2),
)
def test_random_edits_are_accepted_clean_or_refused_by_line(
    tmp_path: Path, edits: list[tuple[int, str, str]], repeat: list[int]
) -> None:
    rows = [[f"F-{i}", "n", str(100 * i), str(i)] for i in range(6)]
    for row, column, cell in edits:
        rows[row][
            {"farmer_id": 0, "annual_debt_service_eur": 2, "years_with_lender": 3}[column]
        ] = cell
    rows += [list(rows[r]) for r in repeat]
    path = tmp_path / "farmers.csv"
    pd.DataFrame(rows, columns=["farmer_id", "region", *REQUIRED_COLUMNS[1:]]).to_csv(
        path, index=False
    )
    try:
        farmers, rejects = read_farmers(path)
    except TableError as exc:
        assert str(path) in str(exc)
        return
    numbers = farmers[list(REQUIRED_COLUMNS[1:])].to_numpy(dtype=float)
    assert np.isfinite(numbers).all() and (numbers >= 0).all()
    assert farmers["farmer_id"].is_unique
    assert not set(farmers["farmer_id"]) & set(rejects["farmer_id"].dropna())
    lines = set(rejects["line"])
    assert len(lines) == len(rejects)  # one reject per refused line
    assert len(farmers) + len(rejects) <= len(rows)
    assert all(e.startswith(f"{path} line ") for e in rejects["error"])
