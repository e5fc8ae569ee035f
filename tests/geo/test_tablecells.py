"""Cells of a lender's CSV: lines as the user counts them, numbers checked one by one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.errors import TableError
from geo.tablecells import LINE, parse_numbers, read_csv_lines


def test_rows_keep_the_line_of_the_file_across_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,x\n\n2,y\n , \n3,z\n", encoding="utf-8")
    frame = read_csv_lines(path, what="test table", required=("a", "b"))
    assert frame["a"].tolist() == ["1", "2", "3"]
    assert frame[LINE].tolist() == [2, 4, 6]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "file not found"),
        (b"", "is empty"),
        (b"a,b\n\xe9,1\n", "UTF-8"),
        (b"a\n1\n", "lacks column(s) b"),
        (b"a;b\n1;2\n", "looks semicolon-separated"),
    ],
)
def test_whole_file_problems_name_the_file(
    tmp_path: Path, content: bytes | None, needle: str
) -> None:
    path = tmp_path / "t.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TableError) as err:
        read_csv_lines(path, what="test table", required=("a", "b"))
    assert str(path) in str(err.value) and needle in str(err.value)


def test_numbers_refused_each_with_line_column_value_and_fix() -> None:
    cells = ["1980", " 7 ", "1,980", "1,5", "", "-3", "inf", "nan", "1e400", "1_000", "abc", "0"]
    values, problems = parse_numbers(cells, range(2, 14), "debt", unit="EUR/year")
    assert values[0] == 1980 and values[1] == 7 and values[-1] == 0
    assert np.isnan(values[2:-1]).all()
    by_line = {p.line: p for p in problems}
    assert sorted(by_line) == list(range(4, 13))
    assert by_line[4].problem == "is not a number" and "1980 if the comma" in by_line[4].fix
    assert "decimal point: 1.5" in by_line[5].fix
    assert by_line[6].message("f.csv") == (
        "f.csv line 6, column debt is blank; fill in a number in EUR/year"
    )
    assert by_line[7].message("f.csv").startswith("f.csv line 7, column debt: '-3' is negative")
    assert by_line[10].problem == "is not a finite number"


def test_blank_is_allowed_where_not_required_and_minimum_can_be_lifted() -> None:
    values, problems = parse_numbers(["", "-2.5"], [2, 3], "z", required=False, minimum=None)
    assert problems == [] and np.isnan(values[0]) and values[1] == -2.5


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_every_plain_nonnegative_number_is_read_back(value: float) -> None:
    values, problems = parse_numbers([repr(value)], [2], "x")
    assert problems == [] and values[0] == value
