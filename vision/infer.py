"""Tiled inference: calibrated class probabilities over a scene of any size.

The scene is cut into ``tile`` x ``tile`` windows that overlap by at least ``overlap`` pixels
(the last window of a row/column sits flush with the edge, so no padding is needed unless the
scene is smaller than a tile). Each window's probabilities ``softmax(logits / temperature)``
are weighted by a raised-cosine ramp that falls towards the window's edges (where the network
sees least context) and accumulated into one (K, H, W) sum plus one (H, W) weight sum, so
memory holds the output, one batch of windows and nothing per tile.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch

from geo.errors import ModelError
from vision.model import Segmenter

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Window starts along one axis covering [0, size) with windows of ``tile`` pixels."""
    if size <= tile:
        return [0]
    stride = max(tile - overlap, 1)
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(n: int, overlap: int) -> np.ndarray:
    """1-D blending weights of length n: raised cosine over ``overlap`` px at both ends, > 0."""
    w = np.ones(n, dtype=np.float32)
    k = min(overlap, n // 2)
    if k > 0:
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k, dtype=np.float32) + 0.5) / k)
        w[:k] = edge
        w[n - k :] = edge[::-1]
    return w


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def default_threads() -> int:
    """CPU cores this process may use (``os.sched_getaffinity`` where available)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # macOS, Windows
        return max(os.cpu_count() or 1, 1)


@contextmanager
def _num_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def predict_proba(
    seg: Segmenter,
    x: np.ndarray,
    *,
    tile: int = 256,
    overlap: int = 32,
    batch: int = 4,
    precision: Precision = "fp32",
    threads: int | None = None,
) -> np.ndarray:
    """Calibrated class probabilities for every pixel of a scene.

    Args:
        seg: a loaded segmenter (:func:`vision.model.load_segmenter`).
        x: (in_channels, H, W) float32 from :func:`vision.model.model_input`; any H, W >= 1.
        tile: window side in pixels (rounded up to a multiple of ``seg.cfg.size_multiple``).
        overlap: minimum overlap of neighbouring windows in pixels (blended).
        batch: windows per forward pass.
        precision: "fp32", or "bf16" autocast (fast only on CPUs with native bf16, e.g.
            AVX512-BF16/AMX; on AVX2-only CPUs it is several times slower).
        threads: torch intra-op threads for this call (None: leave torch's setting).

    Returns:
        (K, H, W) float32 probabilities over :data:`geo.types.CROPS`, summing to 1 per pixel:
        ``softmax(logits / seg.temperature)`` blended over overlapping windows.

    Raises:
        ModelError: ``x`` has the wrong number of channels for this model.
        ValueError: bad tile/overlap/batch.
    """
    cfg = seg.cfg
    if x.ndim != 3 or x.shape[0] != cfg.in_channels:
        raise ModelError(
            f"model input has shape {x.shape}; this segmenter expects ({cfg.in_channels}, H, W) "
            "from vision.model.model_input(composite.data)"
        )
    if tile < 8 or overlap < 0 or overlap >= tile or batch < 1:
        raise ValueError(
            f"tile={tile}, overlap={overlap}, batch={batch}: need tile >= 8, "
            "0 <= overlap < tile, batch >= 1"
        )
    _, h, w = x.shape
    mult = cfg.size_multiple
    tile = _round_up(tile, mult)
    th = min(tile, _round_up(h, mult))
    tw = min(tile, _round_up(w, mult))
    ys, xs = _starts(h, th, overlap), _starts(w, tw, overlap)
    window = np.outer(_ramp(th, overlap), _ramp(tw, overlap))

    k = cfg.classes
    acc = np.zeros((k, h, w), dtype=np.float32)
    wsum = np.zeros((h, w), dtype=np.float32)
    model = seg.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    temperature = float(seg.temperature)
    positions = [(y0, x0) for y0 in ys for x0 in xs]

    # One reusable NHWC buffer: its NCHW view is channels_last, so windows are copied once
    # and no per-batch allocation of (batch, Cin, th, tw) floats is left to fragment the heap.
    buf = torch.empty((min(batch, len(positions)), th, tw, cfg.in_channels), dtype=torch.float32)
    buf_np = buf.numpy()
    buf_nchw = buf.permute(0, 3, 1, 2)

    def flush(chunk: list[tuple[int, int]]) -> None:
        for i, (y0, x0) in enumerate(chunk):
            _fill_window(buf_np[i], x, y0, x0)
        inp = buf_nchw[: len(chunk)]
        if precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(inp)
        else:
            logits = model(inp)
        proba = torch.softmax(logits.float() / temperature, dim=1).numpy()
        for (y0, x0), p in zip(chunk, proba, strict=True):
            hh, ww = min(th, h - y0), min(tw, w - x0)
            wv = window[:hh, :ww]
            acc[:, y0 : y0 + hh, x0 : x0 + ww] += p[:, :hh, :ww] * wv
            wsum[y0 : y0 + hh, x0 : x0 + ww] += wv

    with _num_threads(threads), torch.inference_mode():
        for i in range(0, len(positions), batch):
            flush(positions[i : i + batch])
    acc /= wsum
    log.debug("predict_proba: %dx%d px, %d windows of %dx%d", h, w, len(positions), th, tw)
    return acc


def _fill_window(out: np.ndarray, x: np.ndarray, y0: int, x0: int) -> None:
    """Write x's (C, th, tw) window at (y0, x0) into ``out`` (th, tw, C), mirrored like
    ``np.pad(mode="symmetric")`` where it runs past the scene, without a padded copy."""
    th, tw = out.shape[:2]
    hh, ww = min(th, x.shape[1] - y0), min(tw, x.shape[2] - x0)
    if th - hh > hh or tw - ww > ww:  # a pad wider than the data: np.pad's repeated mirror
        out[:] = _window(x, y0, x0, th, tw).transpose(1, 2, 0)
        return
    out[:hh, :ww] = x[:, y0 : y0 + hh, x0 : x0 + ww].transpose(1, 2, 0)
    if ww < tw:
        out[:hh, ww:] = out[:hh, 2 * ww - tw : ww][:, ::-1]
    if hh < th:
        out[hh:] = out[2 * hh - th : hh][::-1]


def _window(x: np.ndarray, y0: int, x0: int, th: int, tw: int) -> np.ndarray:
    """(C, th, tw) view of x at (y0, x0); a padded copy where it runs past the scene."""
    win = x[:, y0 : y0 + th, x0 : x0 + tw]
    ph, pw = th - win.shape[1], tw - win.shape[2]
    if ph or pw:
        win = np.pad(win, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
    return win
