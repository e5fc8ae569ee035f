"""Spectral indices over reflectance stacks: NDVI, NDRE, NDMI.

Inputs are reflectance (0-1, or L2A digital numbers: the ratios are scale-free) with the band
axis holding the 10 bands of :data:`geo.types.BANDS` in order; by default ``axis=-3``, i.e.
(..., C, H, W) such as a (T, C, H, W) composite. Outputs drop the band axis, are float32 and
NaN where either band is NaN or the denominator is 0.
"""

from __future__ import annotations

import numpy as np

from geo.errors import ImageryError
from geo.types import BANDS

__all__ = ["BAND_INDEX", "ndmi", "ndre", "ndvi", "normalized_difference"]

#: Position of each band name on the band axis.
BAND_INDEX: dict[str, int] = {b: i for i, b in enumerate(BANDS)}


def normalized_difference(
    stack: np.ndarray, first: str, second: str, *, axis: int = -3
) -> np.ndarray:
    """``(first - second) / (first + second)`` over the band axis ``axis`` of ``stack``.

    Args:
        stack: (..., C, H, W) reflectance with C = 10 bands in ``geo.types.BANDS`` order
            (band axis given by ``axis``).
        first, second: band names from ``geo.types.BANDS``.

    Returns:
        float32 array of ``stack.shape`` without the band axis; NaN where undefined.

    Raises:
        ImageryError: the band axis does not hold the 10 bands, or a band name is unknown.
    """
    arr = np.asarray(stack)
    if arr.ndim == 0 or arr.shape[axis] != len(BANDS):
        raise ImageryError(
            f"reflectance stack of shape {arr.shape} has {arr.shape[axis] if arr.ndim else 0} "
            f"bands on axis {axis}; expected {len(BANDS)} ({', '.join(BANDS)}): pass the band "
            "axis with axis=..."
        )
    try:
        i, j = BAND_INDEX[first], BAND_INDEX[second]
    except KeyError as exc:
        raise ImageryError(f"unknown band {exc}; expected one of {', '.join(BANDS)}") from None
    a = np.take(arr, i, axis=axis).astype(np.float32, copy=False)
    b = np.take(arr, j, axis=axis).astype(np.float32, copy=False)
    den = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (a - b) / den
    return np.where(den == 0, np.float32(np.nan), out).astype(np.float32, copy=False)


def ndvi(stack: np.ndarray, *, axis: int = -3) -> np.ndarray:
    """NDVI = (B08 - B04) / (B08 + B04); see :func:`normalized_difference` for frames."""
    return normalized_difference(stack, "B08", "B04", axis=axis)


def ndre(stack: np.ndarray, *, axis: int = -3) -> np.ndarray:
    """NDRE = (B08 - B05) / (B08 + B05), red-edge chlorophyll; see :func:`normalized_difference`."""
    return normalized_difference(stack, "B08", "B05", axis=axis)


def ndmi(stack: np.ndarray, *, axis: int = -3) -> np.ndarray:
    """NDMI = (B08 - B11) / (B08 + B11), canopy moisture; see :func:`normalized_difference`."""
    return normalized_difference(stack, "B08", "B11", axis=axis)
