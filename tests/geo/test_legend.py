"""The crop legend ``data/legend.csv``: WorldCereal ``ewoc_code`` -> project crop class."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from geo.legend import IGNORE, LegendError, build_legend, code_to_int, crops_for_codes, load_legend
from geo.paths import data_file
from geo.types import CROPS


def _worldcereal_legend(shared_data: Path) -> Path:
    path = shared_data / "worldcereal" / "crop_type_class_mappings.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def test_legend_file_has_its_columns_and_only_known_classes() -> None:
    table = pd.read_csv(data_file("legend.csv"))
    assert {"ewoc_code", "crop"} <= set(table.columns)
    assert table["ewoc_code"].is_unique
    assert set(table["crop"]) <= set(CROPS) | {IGNORE}
    legend = load_legend()
    assert legend[0] == IGNORE  # "unknown"
    assert legend[code_to_int("11-01-06-000-0")] == "maize"


def test_unknown_code_is_an_error_naming_it() -> None:
    with pytest.raises(LegendError, match="1234567890"):
        crops_for_codes([1101060000, 1234567890])
    with pytest.raises(LegendError, match="11-xx"):
        code_to_int("11-xx-01-000-0")


def test_crops_for_codes_maps_each_code() -> None:
    out = crops_for_codes([1101060000, 1101020001, 1101020002, 0])
    assert out.tolist() == ["maize", "winter_cereals", "spring_cereals", IGNORE]


@pytest.mark.shared_data
def test_every_worldcereal_code_is_in_the_legend(shared_data: Path) -> None:
    source = pd.read_csv(_worldcereal_legend(shared_data), sep=";", encoding="utf-8-sig", dtype=str)
    codes = {code_to_int(c) for c in source["ewoc_code"].dropna()}
    missing = sorted(codes - set(load_legend()))
    assert not missing, f"codes missing from data/legend.csv: {missing[:10]}"


@pytest.mark.shared_data
def test_committed_legend_is_what_build_legend_makes(shared_data: Path) -> None:
    built = build_legend(_worldcereal_legend(shared_data))
    committed = pd.read_csv(data_file("legend.csv"))
    pd.testing.assert_frame_equal(
        built[["ewoc_code", "crop"]].reset_index(drop=True),
        committed[["ewoc_code", "crop"]].reset_index(drop=True),
        check_dtype=False,
    )


def test_close_crops_name_the_class_of_a_worldcereal_label() -> None:
    from geo.legend import close_crops

    close = close_crops("common_soft_wheat")
    assert close[0] == "winter_cereals (legend label 'common_soft_wheat')"
    assert any(c.startswith("winter_cereals") for c in close_crops("Wheat"))
    assert close_crops("sunflowers")[0] == "sunflower"
    assert close_crops("qqqq") == []
