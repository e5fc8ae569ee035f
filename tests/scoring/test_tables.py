"""Crop economics table: loading, validation, wildcard lookup, cost timing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from geo.errors import TableError
from geo.types import CROPS, GrowthStage
from scoring.tables import DEFAULT_PATH, load_economics


def _write(tmp_path: Path, df: pd.DataFrame, name: str = "econ.csv") -> Path:
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


@pytest.fixture()
def table() -> pd.DataFrame:
    return pd.read_csv(DEFAULT_PATH, dtype=str)


def test_default_table_covers_every_crop(economics) -> None:
    for crop in CROPS:
        row = economics.lookup(crop, "somewhere-else", 2031)
        assert row.crop == crop
        assert abs(sum(row.stage_shares.values()) - 1) < 1e-6
    assert economics.version == "2026.1"
    assert economics.lookup("non_crop", "*", "*").revenue_eur_ha == 0
    grass = economics.lookup("grassland", "*", "*").revenue_eur_ha
    assert 0 < grass < economics.lookup("winter_cereals", "*", "*").revenue_eur_ha


def test_wildcard_lookup_prefers_region_row(economics) -> None:
    sud = economics.lookup("maize", "poitou-sud", 2026)
    nord = economics.lookup("maize", "poitou-nord", 2026)
    assert sud.region == "poitou-sud" and sud.costs_eur_ha["irrigation"] > 0
    assert nord.region == "*"


def test_cost_to_come_falls_through_the_season(economics) -> None:
    costs = [economics.cost_to_come("maize", "poitou-nord", 2026, s) for s in GrowthStage]
    row = economics.lookup("maize", "poitou-nord", 2026)
    assert costs[0] == pytest.approx(row.cost_eur_ha)
    assert all(a > b for a, b in zip(costs, costs[1:], strict=False))
    assert costs[-1] == pytest.approx(row.cost_eur_ha * row.stage_shares[GrowthStage.HARVEST])
    # most of the cost falls at sowing
    assert max(row.stage_shares, key=lambda s: row.stage_shares[s]) == GrowthStage.SOWING


def test_negative_price_names_line_and_column(tmp_path: Path, table: pd.DataFrame) -> None:
    table.loc[3, "price_eur_t"] = "-5"
    with pytest.raises(TableError, match=r"line 5, column price_eur_t: '-5' is negative; use"):
        load_economics(_write(tmp_path, table))


def test_shares_must_sum_to_one(tmp_path: Path, table: pd.DataFrame) -> None:
    table.loc[2, "share_sowing"] = "0.1"
    with pytest.raises(TableError, match=r"line 4 \(winter_cereals.*sum to .*expected 1"):
        load_economics(_write(tmp_path, table))


def test_missing_crop_default_row(tmp_path: Path, table: pd.DataFrame) -> None:
    t = table[table["crop"] != "soybean"]
    with pytest.raises(TableError, match="no default row for crop.*soybean"):
        load_economics(_write(tmp_path, t))


def test_missing_column_and_unknown_crop(tmp_path: Path, table: pd.DataFrame) -> None:
    with pytest.raises(TableError, match="missing column.*cost_seed"):
        load_economics(_write(tmp_path, table.drop(columns=["cost_seed"])))
    t = table.copy()
    t.loc[1, "crop"] = "wheat"
    with pytest.raises(TableError, match="unknown crop 'wheat'"):
        load_economics(_write(tmp_path, t))


def test_override_replaces_matching_rows(tmp_path: Path, table: pd.DataFrame) -> None:
    over = table[table["crop"] == "maize"].head(1).copy()
    over["price_eur_t"] = "250"
    over["table_version"] = "lender-7"
    extra = over.copy()
    extra["region"] = "beauce"
    p = _write(tmp_path, pd.concat([over, extra]), "override.csv")
    econ = load_economics(override=p)
    assert econ.lookup("maize", "poitou-nord", 2026).price_eur_t == 250
    assert econ.lookup("maize", "beauce", 2026).region == "beauce"
    assert econ.lookup("maize", "poitou-sud", 2026).price_eur_t == 190  # region row untouched
    assert econ.version == "2026.1+lender-7"


def test_missing_file() -> None:
    with pytest.raises(TableError, match="not found"):
        load_economics("/nonexistent/econ.csv")


def test_errors_name_the_line_of_the_file_across_blank_lines(
    tmp_path: Path, table: pd.DataFrame
) -> None:
    table.loc[3, "price_eur_t"] = "-5"
    lines = table.to_csv(index=False).splitlines()
    path = tmp_path / "econ.csv"
    path.write_text("\n".join([*lines[:2], "", *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(TableError, match=rf"{path} line 6, column price_eur_t: '-5' is negative"):
        load_economics(path)


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        ("1,980", "'1,980' is not a number; write a plain number: 1980"),
        ("", "column price_eur_t is blank"),
        ("1e400", "'1e400' is not a finite number"),
    ],
)
def test_an_override_with_a_bad_number_is_refused_with_the_fix(
    tmp_path: Path, table: pd.DataFrame, cell: str, needle: str
) -> None:
    over = table.iloc[[3]].assign(price_eur_t=cell, table_version="lender-1")
    path = _write(tmp_path, over, "override.csv")
    with pytest.raises(TableError) as err:
        load_economics(override=path)
    assert str(err.value).startswith(f"{path} line 2, column price_eur_t") and needle in str(
        err.value
    )
