"""Per-pixel usability masks from the Sentinel-2 scene classification (SCL) or cloud probability.

Every mask is a boolean array on the input's (..., H, W) grid where ``True`` means *usable*
(clear land observation) and ``False`` means masked. Pure numpy; no CRS or units involved.

SCL classes (Sentinel-2 L2A): 0 no data, 1 saturated / defective, 2 dark area pixels,
3 cloud shadows, 4 vegetation, 5 not vegetated, 6 water, 7 unclassified, 8 cloud medium
probability, 9 cloud high probability, 10 thin cirrus, 11 snow / ice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

__all__ = [
    "DEFAULT_MASKED_SCL",
    "SCL_CLASSES",
    "clear_mask",
    "clear_mask_from_probability",
]

log = logging.getLogger(__name__)

#: SCL class names by value.
SCL_CLASSES: dict[int, str] = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}

#: SCL classes dropped by default: nodata, saturated, cloud shadow, cloud medium / high,
#: cirrus, snow.
DEFAULT_MASKED_SCL: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)


def _lookup(masked: Sequence[int]) -> np.ndarray:
    """Boolean table over 0..255: True where the SCL value is usable."""
    table = np.ones(256, dtype=bool)
    for value in masked:
        v = int(value)
        if not 0 <= v <= 255:
            raise ValueError(f"SCL class {value!r} is outside 0-255; expected SCL codes 0-11")
        table[v] = False
    return table


def clear_mask(scl: np.ndarray, masked: Sequence[int] = DEFAULT_MASKED_SCL) -> np.ndarray:
    """Usable-pixel mask from an SCL layer: ``True`` where the class is not in ``masked``.

    Args:
        scl: SCL classes, any shape (typically (H, W) or (T, H, W)); integer, or float with
            NaN (as xarray reads netCDF layers) where NaN counts as no data.
        masked: SCL values to drop; default :data:`DEFAULT_MASKED_SCL`.

    Returns:
        bool array of ``scl.shape``. Values outside 0-255 are masked.

    Raises:
        ValueError: a value in ``masked`` is outside 0-255.
    """
    table = _lookup(masked)
    arr = np.asarray(scl)
    if arr.dtype == np.uint8:
        return table[arr]
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        ints = np.where(finite, arr, -1).astype(np.int64)
        ok = finite & (ints >= 0) & (ints <= 255) & (ints == np.where(finite, arr, -1))
    else:
        ints = arr.astype(np.int64, copy=False)
        ok = (ints >= 0) & (ints <= 255)
    return ok & table[np.clip(ints, 0, 255)]


def clear_mask_from_probability(clp: np.ndarray, threshold: float = 0.4) -> np.ndarray:
    """Usable-pixel mask from a cloud-probability layer: ``True`` where probability < threshold.

    Args:
        clp: cloud probability, any shape. Floats are probabilities 0-1 (NaN = no data,
            masked); unsigned 8-bit integers follow the s2cloudless / Sentinel Hub ``CLP``
            convention 0-255 and are divided by 255.
        threshold: probability (0-1) at or above which a pixel counts as cloud.

    Returns:
        bool array of ``clp.shape``.

    Raises:
        ValueError: ``threshold`` is outside (0, 1], or float probabilities exceed 0-1.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold {threshold} is outside (0, 1]; pass a probability")
    arr = np.asarray(clp)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.dtype != np.uint8:
            raise ValueError(
                f"integer cloud probability of dtype {arr.dtype}; expected uint8 0-255 "
                "or float 0-1 (convert with clp / 255 or clp / 100 first)"
            )
        prob = arr.astype(np.float32) / 255.0
    else:
        prob = arr.astype(np.float32, copy=False)
        finite = prob[np.isfinite(prob)]
        if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
            raise ValueError(
                f"cloud probability ranges {finite.min()}..{finite.max()}; expected 0-1 "
                "(divide percentages by 100, uint8 layers by 255)"
            )
    with np.errstate(invalid="ignore"):
        return np.asarray(prob < threshold)
