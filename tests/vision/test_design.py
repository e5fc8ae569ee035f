"""The temporal designs of the design study (eval/design.py) read the segmenter's input layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval.design import DESIGNS, C, K, T, per_date, series_input


def test_series_input_is_the_segmenters_layout() -> None:
    rng = np.random.default_rng(0)
    data = rng.uniform(0.01, 0.4, size=(3, T, C)).astype(np.float32)
    data[1, 20:] = np.nan
    x = torch.from_numpy(series_input(data))
    assert x.shape == (3, T * C + T)
    d = per_date(x)
    assert d.shape == (3, T, C + 1)
    assert d[1, :20, C].eq(1).all() and d[1, 20:, C].eq(0).all()
    assert d[1, 20:, :C].eq(0).all() and d[0, :, :C].gt(0).all()


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_designs_give_one_logit_per_class(design: str) -> None:
    torch.manual_seed(0)
    model = DESIGNS[design]().eval()
    x = torch.from_numpy(series_input(np.full((4, T, C), 0.1, dtype=np.float32)))
    out = model(x)
    assert out.shape == (4, K) and torch.isfinite(out).all()


def test_attention_pooling_ignores_missing_dates() -> None:
    """What sits in a missing dekad's channels must not move the light L-TAE's output."""
    torch.manual_seed(0)
    model = DESIGNS["ltae"]().eval()
    data = np.full((1, T, C), 0.1, dtype=np.float32)
    data[0, 30:] = np.nan
    x = torch.from_numpy(series_input(data))
    y = x.clone()
    y[0, 30 * C : T * C] = 5.0  # garbage in the reflectances of the missing dekads
    with torch.inference_mode():
        assert torch.allclose(model(x), model(y), atol=1e-6)
        z = x.clone()
        z[0, 0:C] = 5.0  # an observed dekad does count
        assert not torch.allclose(model(x), model(z), atol=1e-3)
