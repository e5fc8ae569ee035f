"""A tiny end-to-end training run on CPU, and the data pipeline behind it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vision.calibration import fit_temperature
from vision.dataset import build_region, patches, stage_indices, truncate_season
from vision.model import Segmenter, SegmenterConfig, build_model, load_segmenter
from vision.train import TrainConfig, train_and_save

TINY = SegmenterConfig(stem_channels=8, decoder_channels=(16, 8, 8))


def test_truncate_season_drops_the_future() -> None:
    t, c, h, w = 8, 10, 2, 2
    data = np.ones((t, c, h, w), np.float32)
    observed = np.zeros((t, h, w), bool)
    observed[[0, 2, 3, 6], 0, 0] = True  # dekad 1 is a filled gap, 4-5 filled, 7 trailing
    data[7, :, 0, 0] = np.nan
    out = truncate_season(data, observed, 4)
    valid = np.isfinite(out[:, 0, 0, 0])
    # up to dekad 4 the last observation is dekad 3: dekad 4 (a filled gap in the full
    # season) has no later observation yet, so it is missing
    assert list(valid) == [True, True, True, True, False, False, False, False]
    assert np.isnan(out[:, :, 1, 1]).all()  # never observed
    assert np.isnan(truncate_season(data, observed, -1)).all()


def test_tiny_training_run_reduces_loss(tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = tmp_path_factory.mktemp("regions")
    out = tmp_path_factory.mktemp("model") / "seg.pt"
    res = train_and_save(
        out,
        seed=3,
        n_regions=2,
        epochs=3,
        size_px=48,
        progress=False,
        n_calib_regions=1,
        n_test_regions=0,
        patch=32,
        batch=4,
        lr=5e-3,
        model=TINY,
        cache_dir=cache,
        card=False,
        real_samples=None,
        finish_epochs=2,
        finish_scenes=1,
    )
    seg = load_segmenter(out)
    hist = seg.meta["loss_history"]
    assert len(hist) == 1 + 3
    assert hist[-1] < 0.8 * hist[0], hist
    finish = seg.meta["finish"]  # the finishing phase ran on the first region's parcels
    assert finish["scenes"] == 1 and finish["series"] == 0
    assert finish["steps"] == finish["planned_steps"] > 0
    assert len(finish["loss_history"]) == 1 + 2
    assert 0.05 <= seg.temperature <= 20 and res["version"] == seg.version
    # regions are cached: a second build reads the file
    assert len(list(Path(cache).glob("*.npz"))) == 3
    reg = build_region(TrainConfig(seed=3).seed * 1000 + 10_000, 48, cache_dir=cache)
    x, y = next(patches([reg], patch=32, batch=2, rng=np.random.default_rng(0)))
    assert x.shape == (2, TINY.in_channels, 32, 32) and y.shape == (2, 32, 32)
    assert set(stage_indices(reg.season)) >= {"pre_sowing", "harvest"}


def test_fit_temperature_recovers_scale() -> None:
    import torch

    g = torch.Generator().manual_seed(0)
    true = torch.randn(4000, 5, generator=g) * 2
    labels = torch.distributions.Categorical(logits=true).sample()
    t = fit_temperature(true * 3.0, labels)  # over-confident logits by x3
    assert t == pytest.approx(3.0, rel=0.15)


def test_finetune_on_labelled_scene(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Pixels outside labelled parcels are ignored; a fine-tune on a scene runs and learns."""
    import torch

    from vision.finetune import FinetuneConfig, LabelledScene, finetune, labelled_patches
    from vision.optimise import IGNORE_INDEX

    reg = build_region(12_345, 32, cache_dir=tmp_path_factory.mktemp("regions"))
    labels = np.where(reg.parcel_index >= 0, reg.labels.astype(np.int64), IGNORE_INDEX)
    scene = LabelledScene(reg.data.astype(np.float32), reg.observed, labels, reg.season)
    x, y = next(labelled_patches([scene], patch=24, batch=3, rng=np.random.default_rng(0)))
    assert x.shape == (3, TINY.in_channels, 24, 24) and y.shape == (3, 24, 24)
    assert set(np.unique(y)) <= set(np.unique(labels)) and (y != IGNORE_INDEX).any()
    torch.manual_seed(0)
    seg = Segmenter(model=build_model(TINY).eval(), cfg=TINY)
    cfg = FinetuneConfig(epochs=3, lr=1e-3, patch=32, scene_batch=2, threads=1, replay=0)
    res = finetune(seg, scenes=[scene], cfg=cfg, progress=False)
    hist = res.meta["finetune"]["loss_history"]
    assert hist[-1] < hist[0], hist
    assert sum(res.meta["finetune"]["data"]["scene_pixels"].values()) == (labels >= 0).sum()
    assert "replay_regions" not in res.meta["finetune"]["data"]


def test_finetune_replay_teaches_the_generated_regions(tmp_path_factory: pytest.TempPathFactory):
    """With replay, a fine-tune on one parcel class also learns the replayed generated region
    (all its pixels labelled), which a fine-tune without replay never sees."""
    import torch

    from vision.finetune import FinetuneConfig, LabelledScene, finetune
    from vision.optimise import IGNORE_INDEX
    from vision.train import TRAIN_SEEDS

    cache = tmp_path_factory.mktemp("replay")
    reg = build_region(12_346, 32, cache_dir=cache)
    only = np.where(reg.labels == reg.labels.max(), reg.labels.astype(np.int64), IGNORE_INDEX)
    lender = LabelledScene(reg.data.astype(np.float32), reg.observed, only, reg.season)
    replayed = build_region(TRAIN_SEEDS, 32, cache_dir=cache)

    def replay_loss(seg: Segmenter) -> float:
        x = torch.from_numpy(seg.prepare(replayed.data.astype(np.float32))[None])
        with torch.no_grad():
            logits = seg.model(x)
        y = torch.from_numpy(replayed.labels.astype(np.int64)[None])
        return float(torch.nn.functional.cross_entropy(logits, y))

    results = {}
    for replay in (0, 1):
        torch.manual_seed(0)
        seg = Segmenter(model=build_model(TINY).eval(), cfg=TINY)
        cfg = FinetuneConfig(
            epochs=4, lr=3e-3, patch=32, scene_batch=2, threads=1, replay=replay, replay_px=32
        )
        res = finetune(seg, scenes=[lender], cfg=cfg, progress=False, replay_cache=cache)
        results[replay] = (replay_loss(res.segmenter), res.meta["finetune"])
    assert results[1][1]["data"]["replay_regions"] == [TRAIN_SEEDS]
    assert results[1][0] < 0.9 * results[0][0], {k: v[0] for k, v in results.items()}
