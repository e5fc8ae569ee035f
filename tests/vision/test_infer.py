"""Tiled inference agrees with one forward pass and gives probabilities for any size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.errors import ModelError
from vision.infer import _fill_window, _ramp, _starts, _window, predict_proba
from vision.model import Segmenter, SegmenterConfig, build_model

TINY = SegmenterConfig(n_steps=4, stem_channels=8, decoder_channels=(16, 8, 8))


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    torch.manual_seed(0)
    return Segmenter(model=build_model(TINY).eval(), cfg=TINY, temperature=1.5)


def _x(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth-ish input so the network output varies slowly, as on real fields
    base = rng.uniform(0, 1, (TINY.in_channels, h // 4 + 2, w // 4 + 2)).astype(np.float32)
    return np.ascontiguousarray(base.repeat(4, axis=1).repeat(4, axis=2)[:, :h, :w])


def _direct(seg: Segmenter, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        logits = seg.model(torch.from_numpy(x)[None])
    return torch.softmax(logits / seg.temperature, dim=1)[0].numpy()


def test_single_tile_equals_forward(seg: Segmenter) -> None:
    x = _x(64, 96)
    p = predict_proba(seg, x, tile=128)
    np.testing.assert_allclose(p, _direct(seg, x), atol=1e-5)


def test_tiles_agree_with_untiled_forward(seg: Segmenter) -> None:
    x = _x(160, 136)
    p = predict_proba(seg, x, tile=64, overlap=24, batch=3)
    d = _direct(seg, x)
    diff = np.abs(p - d).max(axis=0)
    assert diff.mean() < 0.02 and np.quantile(diff, 0.95) < 0.06


@pytest.mark.parametrize("shape", [(1, 1), (5, 37), (37, 5), (70, 129), (8, 8)])
def test_any_size_sums_to_one(seg: Segmenter, shape: tuple[int, int]) -> None:
    x = _x(*shape, seed=1)
    p = predict_proba(seg, x, tile=64, overlap=16)
    assert p.shape == (TINY.classes, *shape) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-5)
    assert (p >= 0).all()


def test_wrong_channels(seg: Segmenter) -> None:
    with pytest.raises(ModelError, match="model_input"):
        predict_proba(seg, np.zeros((7, 16, 16), np.float32))


def test_window_maths() -> None:
    assert _starts(100, 256, 32) == [0]
    s = _starts(600, 256, 32)
    assert s[0] == 0 and s[-1] == 600 - 256
    assert all(b - a <= 256 - 32 for a, b in zip(s, s[1:], strict=False))
    w = _ramp(64, 16)
    assert (w > 0).all() and w.max() == 1.0 and np.allclose(w, w[::-1])


def test_temperature_flattens(seg: Segmenter) -> None:
    x = _x(32, 32)
    hot = Segmenter(seg.model, seg.cfg, temperature=10.0)
    assert predict_proba(hot, x).max(0).mean() < predict_proba(seg, x).max(0).mean()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 48), st.integers(1, 48), st.data())
def test_a_window_past_the_scene_is_mirrored_like_np_pad(
    h: int, w: int, th: int, tw: int, data: st.DataObject
) -> None:
    x = np.random.default_rng(h * 100 + w).random((3, h, w), dtype=np.float32)
    y0, x0 = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
    out = np.full((th, tw, 3), np.nan, dtype=np.float32)
    _fill_window(out, x, y0, x0)
    np.testing.assert_array_equal(out, _window(x, y0, x0, th, tw).transpose(1, 2, 0))
