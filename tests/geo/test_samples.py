"""Parcel series in the WorldCereal long format onto the season's dekad grid (geo.samples)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo.samples import SampleError, read_samples, spatial_blocks, split_by_block
from geo.types import BANDS, Season

SEASON = Season(2023)
B04 = BANDS.index("B04")


def _frame(dates: list[dt.date], dn: list[int] | None = None, sample: str = "s1") -> pd.DataFrame:
    """One sample, one row per date; every band 1000 DN except B04 = ``dn`` (uint16)."""
    rows = []
    for i, d in enumerate(dates):
        row: dict[str, object] = {"sample_id": sample, "timestamp": pd.Timestamp(d)}
        for band in BANDS:
            row[f"S2-L2A-{band}"] = 1000
        row["S2-L2A-B04"] = dn[i] if dn is not None else 1000
        row.update(ewoc_code=1101060000, lon=-1.0, lat=47.0)
        rows.append(row)
    frame = pd.DataFrame(rows)
    bands = [f"S2-L2A-{b}" for b in BANDS]
    frame[bands] = frame[bands].astype(np.uint16)
    return frame


def _write(tmp_path: Path, frame: pd.DataFrame, name: str = "samples.parquet") -> Path:
    path = tmp_path / name
    frame.to_parquet(path, index=False)
    return path


def _dekad_dates(indices: list[int]) -> list[dt.date]:
    dekads = SEASON.dekads()
    return [dekads[i] for i in indices]


def test_nodata_65535_is_missing_and_labels_are_read(tmp_path: Path) -> None:
    dates = _dekad_dates(list(range(36)))
    dn = [1000 + 10 * i for i in range(36)]
    dn[5] = 65535
    series = read_samples(_write(tmp_path, _frame(dates, dn)), max_gap=0)
    assert series.data.shape == (1, 36, len(BANDS)) and series.data.dtype == np.float32
    assert not series.observed[0, 5] and np.isnan(series.data[0, 5]).all()
    assert series.observed[0].sum() == 35
    assert series.data[0, 6, B04] == pytest.approx(0.106)  # DN x 1e-4
    assert series.crop is not None and series.crop.tolist() == ["maize"]
    assert series.lonlat is not None and series.lonlat.tolist() == [[-1.0, 47.0]]
    assert series.season == SEASON


def test_dekad_stamps_land_on_their_own_dekad(tmp_path: Path) -> None:
    idx = list(range(0, 36, 2))
    series = read_samples(_write(tmp_path, _frame(_dekad_dates(idx))), max_gap=0)
    assert np.flatnonzero(series.observed[0]).tolist() == idx


def test_monthly_stamps_stand_for_the_middle_of_the_month(tmp_path: Path) -> None:
    months = [dt.date(2022 + (m < 11), m, 1) for m in (11, 12, *range(1, 11))]
    dn = [1000 + 100 * k for k in range(12)]
    series = read_samples(_write(tmp_path, _frame(months, dn)), max_gap=3)
    # month k of the season (stamped on the 1st) goes to dekad 3k + 1 (11th - 20th)
    assert np.flatnonzero(series.observed[0]).tolist() == [3 * k + 1 for k in range(12)]
    np.testing.assert_allclose(series.data[0, 3 * np.arange(12) + 1, B04], np.array(dn) * 1e-4)
    # the two dekads between two month middles are filled linearly
    assert series.data[0, 2, B04] == pytest.approx(0.1000 + 0.0100 / 3, rel=1e-5)
    assert series.data[0, 3, B04] == pytest.approx(0.1000 + 0.0200 / 3, rel=1e-5)
    assert np.isnan(series.data[0, 0]).all()  # nothing before the first month's middle


def test_several_values_in_one_dekad_give_their_median(tmp_path: Path) -> None:
    dates = [dt.date(2023, 1, 2), dt.date(2023, 1, 5), dt.date(2023, 1, 8), dt.date(2023, 1, 12)]
    series = read_samples(_write(tmp_path, _frame(dates, [100, 300, 200, 700])), SEASON)
    jan1 = SEASON.dekad_index(dt.date(2023, 1, 1))
    assert series.data[0, jan1, B04] == pytest.approx(0.02)
    assert series.data[0, jan1 + 1, B04] == pytest.approx(0.07)


def test_gap_filling_stops_at_max_gap(tmp_path: Path) -> None:
    # observed at dekads 0, 4 (a gap of 3) and 9 (a gap of 4)
    frame = _frame(_dekad_dates([0, 4, 9]), [1000, 2000, 3000])
    series = read_samples(_write(tmp_path, frame), SEASON, max_gap=3)
    np.testing.assert_allclose(
        series.data[0, 0:5, B04], [0.10, 0.125, 0.15, 0.175, 0.20], rtol=1e-5
    )
    assert np.isnan(series.data[0, 5:9]).all()
    assert series.observed[0].tolist() == [i in (0, 4, 9) for i in range(36)]
    unfilled = read_samples(_write(tmp_path, frame, "b.parquet"), SEASON, max_gap=0)
    assert np.isnan(unfilled.data[0, 1:4]).all()


@pytest.mark.parametrize("column", ["S2-L2A-B11", "timestamp", "sample_id"])
def test_a_missing_column_is_named_with_the_file(tmp_path: Path, column: str) -> None:
    path = _write(tmp_path, _frame(_dekad_dates([0, 1])).drop(columns=[column]), "bad.parquet")
    with pytest.raises(SampleError) as info:
        read_samples(path)
    message = str(info.value)
    assert "bad.parquet" in message and column.removeprefix("S2-L2A-") in message


def test_csv_input_and_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    _frame(_dekad_dates([3, 4])).to_csv(path, index=False)
    assert read_samples(path).observed[0, 3:5].all()
    with pytest.raises(SampleError, match="nope.parquet"):
        read_samples(tmp_path / "nope.parquet")


def test_split_by_block_keeps_blocks_whole_and_fractions_roughly() -> None:
    rng = np.random.default_rng(1)
    # 2000 points over about 100 km x 100 km around 47 N
    lonlat = np.column_stack([rng.uniform(-2.0, -0.7, 2000), rng.uniform(46.5, 47.4, 2000)])
    fractions = {"train": 0.6, "cal": 0.15, "test": 0.25}
    parts = split_by_block(lonlat, fractions, seed=0)
    stacked = np.stack(list(parts.values()))
    assert (stacked.sum(axis=0) == 1).all(), "the parts partition the samples"
    blocks = spatial_blocks(lonlat)
    for mask in parts.values():
        assert not set(blocks[mask]) & set(blocks[~mask]), "a 10 km block straddles two parts"
    for name, share in fractions.items():
        assert parts[name].mean() == pytest.approx(share, abs=0.05)
    again = split_by_block(lonlat, fractions, seed=0)
    assert all((again[k] == parts[k]).all() for k in parts)
    with pytest.raises(ValueError):
        split_by_block(lonlat, {"a": -1.0, "b": 1.0})


@pytest.mark.shared_data
def test_real_france_has_500_samples_and_the_contract_split(shared_data: Path) -> None:
    from vision.realdata import france_parts

    path = shared_data / "worldcereal" / "france2023_dekad_samples.parquet"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    series = read_samples(path)
    assert len(series) == 500 and series.season == Season(2023)
    assert series.observed.any(axis=1).sum() >= 499
    parts = france_parts(path)
    assert {k: len(v) for k, v in parts.items()} == {"train": 307, "cal": 76, "test": 117}
    ids = [set(p.sample_ids.tolist()) for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


@pytest.mark.parametrize(
    ("column", "cell", "needle"),
    [
        ("S2-L2A-B04", "abc", "line 3, column S2-L2A-B04: 'abc' is not a number"),
        ("S2-L2A-B04", "-120", "line 3, column S2-L2A-B04: -120 is negative"),
        ("ewoc_code", "", "line 3, column ewoc_code: blank is not an integer code"),
        ("ewoc_code", "wheat", "line 3, column ewoc_code: 'wheat' is not an integer code"),
    ],
)
def test_a_bad_cell_refuses_the_file_naming_line_column_and_value(
    tmp_path: Path, column: str, cell: str, needle: str
) -> None:
    path = tmp_path / "labels.csv"
    frame = _frame(_dekad_dates([3, 4, 5])).astype({column: object})
    frame.loc[1, column] = cell
    frame.to_csv(path, index=False)
    with pytest.raises(SampleError) as info:
        read_samples(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_blank_and_nodata_band_cells_stay_missing_in_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    frame = _frame(_dekad_dates([3, 4, 5])).astype({"S2-L2A-B04": object})
    frame.loc[1, "S2-L2A-B04"] = ""
    frame.to_csv(path, index=False)
    series = read_samples(path, SEASON, max_gap=0)
    assert series.observed[0].tolist()[3:6] == [True, False, True]
