"""Seeded random streams and smooth spatial noise fields for the scene generator.

Axis order (H, W) = (rows from north, columns from west); one pixel = 10 m.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy import ndimage


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent, reproducible generator for ``seed`` and a tuple of keys (e.g. the
    purpose and the scene index), so that one stream never depends on another's use."""
    words = [int(seed)] + [
        zlib.crc32(k.encode()) if isinstance(k, str) else int(k) & 0xFFFFFFFF for k in keys
    ]
    return np.random.default_rng(np.random.SeedSequence(words))


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], scale_px: float, octaves: int = 3
) -> np.ndarray:
    """Zero-mean, unit-sd spatially correlated noise (H, W) float32 with feature size about
    ``scale_px`` pixels (sum of bicubic-upsampled coarse grids, halving the scale per octave)."""
    h, w = shape
    out = np.zeros(shape, dtype=np.float32)
    amp = 1.0
    s = max(scale_px, 2.0)
    for _ in range(octaves):
        gh, gw = int(np.ceil(h / s)) + 3, int(np.ceil(w / s)) + 3
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        up = ndimage.zoom(grid, s, order=3, mode="reflect", grid_mode=False)
        out += amp * up[:h, :w]
        amp *= 0.5
        s = max(s / 2.0, 2.0)
    sd = float(out.std())
    return (out - float(out.mean())) / (sd if sd > 0 else 1.0)
