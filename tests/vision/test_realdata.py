"""Real parcel series in training: laying them into scenes, the monthly form, training and
fine-tuning with them (tiny configs on CPU; the real-data test skips without ../shared/data)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo.samples import SampleSeries, read_samples
from geo.types import BANDS, CROP_INDEX, Season
from vision.model import Segmenter, SegmenterConfig, build_model
from vision.realdata import FRANCE_FILE, bank_of, lay_series, series_bank, to_monthly

TINY = SegmenterConfig(stem_channels=8, decoder_channels=(16, 8, 8))
#: ewoc codes of data/legend.csv for the synthetic samples.
CODES = {"grassland": 1111000000, "maize": 1101060000, "winter_cereals": 1101000000}


def _curve(crop: str, t: np.ndarray) -> np.ndarray:
    """(T,) a greenness 0-1 by dekad index (0 = 1 Nov) with the crop's timing."""
    peak = {"grassland": 18.0, "maize": 27.0, "winter_cereals": 17.0}[crop]
    width = {"grassland": 12.0, "maize": 4.0, "winter_cereals": 5.0}[crop]
    base = 0.45 if crop == "grassland" else 0.05
    return base + (0.9 - base) * np.exp(-0.5 * ((t - peak) / width) ** 2)


def write_samples(path: Path, n_per_class: int = 12, seed: int = 0, monthly: bool = False) -> Path:
    """A small WorldCereal-like long file (season 2023) of three crops with distinct curves,
    clouds and lon/lat spread over ~60 km; written as CSV."""
    rng = np.random.default_rng(seed)
    season = Season(2023)
    dekads = season.dekads()
    t = np.arange(len(dekads), dtype=np.float64)
    rows = []
    for crop, code in CODES.items():
        for i in range(n_per_class):
            green = _curve(crop, t + rng.normal(0, 1))
            lon, lat = -0.5 + rng.uniform(0, 0.8), 46.0 + rng.uniform(0, 0.5)
            stamps = (
                [
                    dt.date(y, m, 1)
                    for y, m in [(2022, 11), (2022, 12)] + [(2023, k) for k in range(1, 11)]
                ]
                if monthly
                else dekads
            )
            for d in stamps:
                k = season.dekad_index(d) + (1 if monthly else 0)
                cloudy = rng.random() < 0.3  # a row of nodata, as in the extractions
                g = green[min(k, len(t) - 1)]
                refl = {
                    "B02": 0.08 - 0.04 * g,
                    "B03": 0.1 - 0.02 * g,
                    "B04": 0.12 - 0.09 * g,
                    "B05": 0.15,
                    "B06": 0.2 + 0.15 * g,
                    "B07": 0.22 + 0.2 * g,
                    "B08": 0.25 + 0.25 * g,
                    "B8A": 0.25 + 0.26 * g,
                    "B11": 0.3 - 0.1 * g,
                    "B12": 0.25 - 0.12 * g,
                }
                rows.append(
                    {
                        "sample_id": f"{crop}_{i}",
                        "timestamp": d.isoformat(),
                        "ewoc_code": code,
                        "lon": lon,
                        "lat": lat,
                        **{
                            f"S2-L2A-{b}": 65535
                            if cloudy
                            else int(10000 * v * (1 + rng.normal(0, 0.02)))
                            for b, v in refl.items()
                        },
                    }
                )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def samples_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_samples(tmp_path_factory.mktemp("samples") / "samples.csv")


@pytest.fixture(scope="module")
def series(samples_file: Path) -> SampleSeries:
    return read_samples(samples_file)


def test_lay_series_keeps_classes_and_gaps(series: SampleSeries) -> None:
    bank = series_bank(series)
    h = w = 32
    labels = np.full((h, w), CROP_INDEX["non_crop"], dtype=np.uint8)
    parcel = np.full((h, w), -1, dtype=np.int32)
    labels[2:14, 2:30], parcel[2:14, 2:30] = CROP_INDEX["maize"], 0
    labels[18:30, 2:30], parcel[18:30, 2:30] = CROP_INDEX["grassland"], 1
    data = np.full((36, len(BANDS), h, w), 0.2, dtype=np.float32)
    observed = np.ones((36, h, w), dtype=bool)
    before = labels.copy()
    rng = np.random.default_rng(0)
    _, _, n = lay_series(data, observed, labels, parcel, bank, rng, p_real=1.0)
    assert n == 2 and (labels == before).all()
    assert (data[:, :, parcel < 0] == np.float32(0.2)).all()  # outside parcels untouched
    for pid, crop, centre in ((0, "maize", (8, 16)), (1, "grassland", (24, 16))):
        field = parcel == pid
        obs = observed[:, field]
        assert (obs == obs[:, :1]).all()  # a cloud covers the whole field
        same = [j for j in bank.by_class[CROP_INDEX[crop]] if (bank.observed[j] == obs[:, 0]).all()]
        assert same, "the field's clear dekads are those of a series of its class"
        # missing where the series is missing, close to the series elsewhere (gain, noise)
        inner = data[:, :, centre[0], centre[1]]  # inside: not mixed with the neighbours
        assert any((np.isnan(inner) == np.isnan(bank.data[j])).all() for j in same)
        ok = np.isfinite(inner)
        assert any(np.allclose(inner[ok], bank.data[j][ok], rtol=0.35) for j in same)


def test_to_monthly_means_and_fills() -> None:
    t = 36
    values = np.arange(t, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # (T, C)
    observed = np.ones(t, dtype=bool)
    observed[3:6] = False  # month 1 has no clear dekad
    observed[7] = False
    data, obs = to_monthly(values, observed)
    assert data.shape == (t, 2) and obs.shape == (t,)
    assert list(np.flatnonzero(obs)) == [1, *range(7, t, 3)]
    assert data[1, 0] == pytest.approx(1.0)  # mean of dekads 0, 1, 2
    assert data[7, 0] == pytest.approx(7.0)  # mean of dekads 6 and 8
    assert np.isnan(data[2:7, 0]).all()  # nothing across the missing month 1
    # between month 2 (middle 7) and month 3 (middle 10): linear at 1/3 and 2/3
    assert data[8, 0] == pytest.approx(7 + (10 - 7) / 3)
    assert data[9, 0] == pytest.approx(7 + 2 * (10 - 7) / 3)
    # the same on an image: (T, C, H, W)
    img, img_obs = to_monthly(values[:, :, None, None], observed[:, None, None])
    np.testing.assert_array_equal(img[:, :, 0, 0], data)
    np.testing.assert_array_equal(img_obs[:, 0, 0], obs)


def test_to_monthly_matches_a_monthly_extraction(tmp_path: Path) -> None:
    """A monthly file read by read_samples has its values where to_monthly puts them."""
    monthly = read_samples(write_samples(tmp_path / "m.csv", n_per_class=3, monthly=True))
    bank = bank_of(monthly.data, monthly.observed, np.zeros(len(monthly), np.int64))
    for i in range(len(monthly)):
        assert set(np.flatnonzero(monthly.observed[i])) <= set(range(1, 36, 3))
        assert (bank.monthly_observed[i] == monthly.observed[i]).all()


def _tiny_cfg(real: Path | None, cache: Path) -> dict[str, object]:
    return dict(
        n_regions=1,
        epochs=2,
        size_px=32,
        n_calib_regions=0,
        n_test_regions=0,
        patch=32,
        batch=2,
        uniform_batch=4,
        uniform_side=8,
        lr=5e-3,
        model=TINY,
        cache_dir=cache,
        real_samples=real,
        threads=1,
    )


def test_training_with_synthetic_series_is_deterministic(
    samples_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from vision.train import TrainConfig, train_segmenter

    cache = tmp_path_factory.mktemp("regions")
    cfg = TrainConfig(seed=1, **_tiny_cfg(samples_file, cache))  # type: ignore[arg-type]
    a = train_segmenter(cfg, progress=False)
    b = train_segmenter(cfg, progress=False)
    assert a.history == b.history and len(a.history) == 1 + 2
    assert a.meta["real_train_counts"] and a.meta["real_metrics"]["france_cal"]["n"] > 0
    assert a.segmenter.temperature == pytest.approx(b.segmenter.temperature)


@pytest.mark.shared_data
@pytest.mark.skipif(not FRANCE_FILE.is_file(), reason="needs ../shared/data (real samples)")
def test_training_with_real_series_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    from vision.train import TrainConfig, train_segmenter

    cache = tmp_path_factory.mktemp("regions")
    cfg = TrainConfig(seed=2, **{**_tiny_cfg(FRANCE_FILE, cache), "epochs": 1})  # type: ignore[arg-type]
    res = train_segmenter(cfg, progress=False)
    counts = res.meta["real_train_counts"]
    assert sum(counts.values()) > 250 and counts["grassland"] > counts["maize"]
    assert {"france_train", "france_cal", "france_test", "belgium"} <= set(res.meta["real_metrics"])
    assert np.isfinite(res.history).all()


def test_finetune_on_samples_lowers_their_loss(series: SampleSeries) -> None:
    import torch

    from vision.finetune import FinetuneConfig, finetune, series_loss

    torch.manual_seed(0)
    seg = Segmenter(model=build_model(TINY).eval(), cfg=TINY)
    before = series_loss(seg, series)
    cfg = FinetuneConfig(epochs=3, lr=5e-3, batch=16, side=8, threads=1, replay=0)
    res = finetune(seg, series=series, cfg=cfg, progress=False)
    after = series_loss(res.segmenter, series)
    assert after < 0.8 * before, (before, after)
    assert series_loss(seg, series) == pytest.approx(before)  # the original is untouched
    assert res.meta["finetune"]["data"]["series"] == {c: 12 for c in CODES}


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_uniform_images_show_the_whole_season_at_full_season_share(
    series: SampleSeries, share: float
) -> None:
    """full_season_share = 1: every image keeps its last observed dekads; 0: a random as_of
    (<= the harvest stage most of the time) cuts them."""
    from vision.dataset import uniform_images

    bank = series_bank(series)
    t = series.data.shape[1]
    batches = uniform_images(
        bank,
        side=8,
        batch=32,
        rng=np.random.default_rng(0),
        season=series.season,
        monthly_share=0.0,
        full_season_share=share,
        max_shift=0,
    )
    x, _ = next(batches)
    valid = x[:, t * len(BANDS) :, 0, 0]  # (batch, T) validity channels
    last = valid.shape[1] - 1 - np.argmax(valid[:, ::-1] > 0.5, axis=1)
    observed_last = t - 1 - np.argmax(series.observed[:, ::-1], axis=1)
    if share == 1.0:
        assert last.min() >= observed_last.min()  # nothing cut at as_of
        assert (last >= t - 4).mean() > 0.9
    else:
        assert (last < t - 4).mean() > 0.5
