"""Crop type of parcel series with the shipped segmenter (vision.classify, classify-samples)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from geo.samples import SampleSeries
from geo.types import BANDS, CROPS, Season
from vision.classify import OUTPUT_COLUMNS, classify_samples
from vision.model import Segmenter, load_segmenter

SEASON = Season(2023)


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return load_segmenter()


def _series(n: int = 6, seed: int = 0) -> SampleSeries:
    """``n`` plausible parcel series: a green-up of random timing over soil, some clouds."""
    rng = np.random.default_rng(seed)
    t = np.arange(36, dtype=np.float32)
    peak = rng.uniform(8, 28, size=(n, 1))
    green = np.exp(-(((t[None] - peak) / rng.uniform(3, 6, size=(n, 1))) ** 2))
    soil = np.array([0.06, 0.09, 0.12, 0.15, 0.18, 0.2, 0.22, 0.23, 0.28, 0.22], np.float32)
    leaf = np.array([0.03, 0.07, 0.03, 0.1, 0.3, 0.4, 0.45, 0.46, 0.2, 0.09], np.float32)
    data = (soil * (1 - green[..., None]) + leaf * green[..., None]).astype(np.float32)
    observed = rng.random((n, 36)) > 0.25
    data[~observed] = np.nan
    return SampleSeries(
        sample_ids=np.array([f"p{i}" for i in range(n)]),
        data=data,
        observed=observed,
        season=SEASON,
    )


def test_output_columns_and_probabilities(seg: Segmenter) -> None:
    table = classify_samples(seg, _series())
    assert list(table.columns) == list(OUTPUT_COLUMNS)
    assert table["sample_id"].tolist() == [f"p{i}" for i in range(6)]
    proba = table[[f"p_{c}" for c in CROPS]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(table["confidence"], proba.max(axis=1))
    assert table["crop"].tolist() == [CROPS[i] for i in proba.argmax(axis=1)]


def test_as_of_ignores_everything_after_the_date(seg: Segmenter) -> None:
    series = _series(seed=1)
    as_of = dt.date(2023, 3, 15)
    cut = SEASON.dekad_index(as_of)
    later = np.array(series.data, copy=True)
    later[:, cut + 1 :] = np.random.default_rng(5).uniform(0.0, 0.6, later[:, cut + 1 :].shape)
    changed = SampleSeries(
        sample_ids=series.sample_ids,
        data=later,
        observed=np.concatenate(
            [series.observed[:, : cut + 1], np.ones((len(series), 35 - cut), bool)], axis=1
        ),
        season=SEASON,
    )
    cols = [f"p_{c}" for c in CROPS]
    early = classify_samples(seg, series, as_of=as_of)[cols].to_numpy()
    early_changed = classify_samples(seg, changed, as_of=as_of)[cols].to_numpy()
    np.testing.assert_allclose(early, early_changed, atol=1e-6)
    full = classify_samples(seg, changed)[cols].to_numpy()
    assert not np.allclose(full, early_changed, atol=1e-3), "as_of truncated nothing"
    with pytest.raises(ValueError, match="before season"):
        classify_samples(seg, series, as_of=dt.date(2022, 10, 1))


def _samples_file(path: Path, n: int = 4) -> Path:
    """A long-format parquet of ``n`` samples x 36 dekads (uint16 DN, 65535 = cloudy)."""
    series = _series(n, seed=2)
    dekads = SEASON.dekads()
    rows = []
    for i, sid in enumerate(series.sample_ids):
        for t, day in enumerate(dekads):
            row: dict[str, object] = {"sample_id": sid, "timestamp": pd.Timestamp(day)}
            for b, band in enumerate(BANDS):
                value = series.data[i, t, b]
                row[f"S2-L2A-{band}"] = 65535 if np.isnan(value) else round(value * 10_000)
            rows.append(row)
    frame = pd.DataFrame(rows)
    bands = [f"S2-L2A-{b}" for b in BANDS]
    frame[bands] = frame[bands].astype(np.uint16)
    frame.to_parquet(path, index=False)
    return path


def test_cli_classify_samples_writes_one_row_per_sample(tmp_path: Path) -> None:
    samples = _samples_file(tmp_path / "samples.parquet")
    out = tmp_path / "out" / "crops.csv"
    args = ["classify-samples", "--samples", str(samples), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--as-of", "2023-06-30"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table.columns) == list(OUTPUT_COLUMNS)
    assert sorted(table["sample_id"]) == [f"p{i}" for i in range(4)]


def test_cli_rejects_a_bad_output_suffix_and_a_bad_date(tmp_path: Path) -> None:
    samples = _samples_file(tmp_path / "samples.parquet", n=1)
    bad = CliRunner().invoke(
        app, ["classify-samples", "--samples", str(samples), "--out", str(tmp_path / "o.txt")]
    )
    assert bad.exit_code != 0 and "csv" in bad.output and not (tmp_path / "o.txt").exists()
    date = CliRunner().invoke(
        app,
        [
            "classify-samples",
            "--samples",
            str(samples),
            "--out",
            str(tmp_path / "o.csv"),
            "--as-of",
            "30/06/2023",
        ],
    )
    assert date.exit_code != 0 and "30/06/2023" in date.output
