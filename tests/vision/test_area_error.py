"""The planted-area error matrix: measured on the pixels the assessment reads, chosen by the
stage of ``as_of`` (vision.model.Segmenter.error_matrix, vision.metrics)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pytest
from torch import nn

from geo.errors import ModelError
from geo.types import CROPS
from vision.dataset import STAGE_DATES
from vision.metrics import _StageAcc
from vision.model import Segmenter, SegmenterConfig

K = len(CROPS)


def _segmenter(meta: dict) -> Segmenter:
    return Segmenter(model=nn.Identity(), cfg=SegmenterConfig(), meta=meta)


def _by_stage(scale: int = 1) -> dict[str, list[list[int]]]:
    return {s: (np.eye(K, dtype=int) * (i + 1) * scale).tolist() for i, s in enumerate(STAGE_DATES)}


@pytest.mark.parametrize(
    ("as_of", "stage"),
    [
        (dt.date(2025, 11, 15), "pre_sowing"),  # before any stage of the season
        (dt.date(2026, 2, 20), "pre_sowing"),
        (dt.date(2026, 5, 1), "sowing"),
        (dt.date(2026, 6, 30), "flowering"),
        (dt.date(2026, 10, 20), "harvest"),
    ],
)
def test_error_matrix_is_the_latest_stage_on_or_before_as_of(as_of: dt.date, stage: str) -> None:
    seg = _segmenter(
        {
            "stage_dates": dict(STAGE_DATES),
            "area_error_by_stage": _by_stage(),
            "confusion_by_stage": _by_stage(scale=100),
        }
    )
    m = seg.error_matrix(as_of)
    assert m is not None and m.shape == (K, K)
    assert m[0, 0] == list(STAGE_DATES).index(stage) + 1  # interior matrices win


def test_error_matrix_fallbacks_and_bad_shape() -> None:
    harvest = (np.eye(K) * 7).tolist()
    assert _segmenter({"confusion": harvest}).error_matrix(dt.date(2026, 5, 1))[0, 0] == 7
    assert _segmenter({}).error_matrix(dt.date(2026, 5, 1)) is None
    bad = _segmenter({"stage_dates": {"sowing": "04-20"}, "area_error_by_stage": {"sowing": [[1]]}})
    with pytest.raises(ModelError, match="expected"):
        bad.error_matrix(dt.date(2026, 5, 1))


def test_interior_confusion_counts_only_parcel_interiors() -> None:
    """Edge pixels mislabelled, interiors right: the interior matrix has no error, the pixel
    matrix has, and it counts exactly the interior pixels."""
    grid = np.full((8, 12), -1, np.int32)
    grid[0:6, 0:5] = 0
    grid[1:7, 6:12] = 1
    crops = np.array([CROPS.index("maize"), CROPS.index("winter_cereals")], np.uint8)
    labels = np.where(grid >= 0, crops[np.maximum(grid, 0)], 0).astype(np.uint8)
    pred = labels.copy()
    interior = np.zeros_like(grid, bool)
    interior[1:5, 1:4] = True  # maize: 6x5 block -> 4x3 interior (grid edge counts as outside)
    interior[2:6, 7:11] = True
    pred[(grid >= 0) & ~interior] = CROPS.index("grassland")
    proba = np.full((K, *grid.shape), 0.01, np.float32)
    np.put_along_axis(proba, pred[None].astype(np.int64), 0.9, axis=0)
    acc = _StageAcc(K)
    acc.add(proba, SimpleNamespace(labels=labels, parcel_index=grid, parcel_crops=crops))
    r = acc.result()
    inner, full = np.array(r["interior_confusion"]), np.array(r["confusion"])
    assert inner.sum() == interior.sum() == 28
    assert np.trace(inner) == inner.sum()
    assert full[CROPS.index("maize"), CROPS.index("grassland")] == 30 - 12
    assert (inner <= full).all()
