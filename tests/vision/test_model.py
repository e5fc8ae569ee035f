"""Model config, input channels, shapes and the weights file round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from geo.errors import ModelError
from geo.types import BANDS, CROPS
from vision.model import (
    BAND_SCALE,
    Segmenter,
    SegmenterConfig,
    build_model,
    load_segmenter,
    model_input,
    save_segmenter,
)

TINY = SegmenterConfig(n_steps=4, stem_channels=8, decoder_channels=(16, 8, 8))


def test_config_forbids_unknown_fields() -> None:
    with pytest.raises(ValueError):
        SegmenterConfig(encoder="resnet18", colour="red")  # type: ignore[call-arg]


def test_default_channels() -> None:
    cfg = SegmenterConfig()
    assert cfg.in_channels == 36 * 10 + 36
    assert cfg.classes == len(CROPS)
    assert SegmenterConfig(validity_channels=False).in_channels == 360


def test_model_input_scales_and_zeroes_missing() -> None:
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 0.3, (3, len(BANDS), 5, 6)).astype(np.float32)
    data[2] = np.nan  # a dekad after as_of
    data[0, :, 1, 1] = np.nan  # one missing pixel
    data[1, 0, 0, 0] = 1.7  # out-of-range reflectance is clipped
    x = model_input(data)
    assert x.shape == (3 * 10 + 3, 5, 6) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert (x[20:30] == 0).all() and (x[32] == 0).all()  # dekad 2 values and validity
    assert (x[0:10, 1, 1] == 0).all() and x[30, 1, 1] == 0 and x[30, 0, 0] == 1
    assert x[10, 0, 0] == pytest.approx(1.0 / BAND_SCALE[0])
    assert x[13, 2, 3] == pytest.approx(data[1, 3, 2, 3] / BAND_SCALE[3], rel=1e-6)
    assert model_input(data, validity=False).shape == (30, 5, 6)
    cfg = SegmenterConfig(n_steps=3, validity_channels=False)
    assert Segmenter(torch.nn.Identity(), cfg).prepare(data).shape == (cfg.in_channels, 5, 6)


def test_model_input_rejects_wrong_bands() -> None:
    with pytest.raises(ValueError, match="BANDS"):
        model_input(np.zeros((36, 4, 8, 8), np.float32))


@pytest.mark.parametrize("cfg", [TINY, TINY.model_copy(update={"stem_channels": 0})])
def test_forward_shape(cfg: SegmenterConfig) -> None:
    model = build_model(cfg).eval()
    with torch.inference_mode():
        out = model(torch.zeros(2, cfg.in_channels, 32, 48))
    assert out.shape == (2, len(CROPS), 32, 48)


def test_unused_encoder_stages_are_dropped() -> None:
    names = [n for n, _ in build_model(TINY).named_parameters()]
    assert not any("layer3" in n or "layer4" in n for n in names)


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    path = tmp_path / "seg.pt"
    version = save_segmenter(path, model, TINY, temperature=1.7, meta={"note": "test"})
    seg = load_segmenter(path)
    assert seg.cfg == TINY and seg.temperature == pytest.approx(1.7)
    assert seg.meta["note"] == "test" and seg.version == version and len(version) == 12
    assert not seg.model.training
    x = torch.randn(1, TINY.in_channels, 16, 16)
    with torch.inference_mode():
        assert torch.allclose(seg.model(x), model(x), atol=1e-6)


def test_load_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="train-segmenter"):
        load_segmenter(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="cannot read"):
        load_segmenter(bad)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ModelError, match="format"):
        load_segmenter(other)
