"""Usable-pixel masks from SCL classes and cloud probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from geo.masking import DEFAULT_MASKED_SCL, SCL_CLASSES, clear_mask, clear_mask_from_probability


def test_default_classes_drop_cloud_shadow_snow_and_nodata() -> None:
    assert DEFAULT_MASKED_SCL == (0, 1, 3, 8, 9, 10, 11)
    scl = np.arange(12, dtype=np.uint8).reshape(3, 4)
    usable = clear_mask(scl)
    assert usable.dtype == bool and usable.shape == (3, 4)
    kept = sorted(int(v) for v in scl[usable])
    assert kept == [2, 4, 5, 6, 7]
    assert {SCL_CLASSES[v] for v in kept} == {
        "dark_area_pixels",
        "vegetation",
        "not_vegetated",
        "water",
        "unclassified",
    }


def test_custom_classes_and_other_dtypes() -> None:
    scl = np.array([[4, 6, 9], [300, -1, 2]], dtype=np.int32)
    np.testing.assert_array_equal(
        clear_mask(scl, masked=(6,)), [[True, False, True], [False, False, True]]
    )
    as_float = np.array([[4.0, np.nan, 9.0, 4.5]])
    np.testing.assert_array_equal(clear_mask(as_float), [[True, False, False, False]])
    stack = np.full((5, 2, 2), 4, dtype=np.uint16)
    stack[2, 1, 1] = 8
    assert clear_mask(stack).sum() == 19
    with pytest.raises(ValueError, match="outside 0-255"):
        clear_mask(scl, masked=(256,))


def test_clear_mask_from_probability() -> None:
    prob = np.array([0.0, 0.39, 0.4, 0.9, np.nan], dtype=np.float32)
    np.testing.assert_array_equal(
        clear_mask_from_probability(prob), [True, True, False, False, False]
    )
    clp = np.array([0, 101, 102, 255], dtype=np.uint8)  # 102 / 255 = 0.4
    np.testing.assert_array_equal(clear_mask_from_probability(clp, 0.4), [True, True, False, False])
    with pytest.raises(ValueError, match="expected 0-1"):
        clear_mask_from_probability(np.array([10.0, 90.0]))
    with pytest.raises(ValueError, match="outside"):
        clear_mask_from_probability(prob, 1.5)
    with pytest.raises(ValueError, match="uint8"):
        clear_mask_from_probability(np.array([10, 90], dtype=np.int32))
