"""A compact imagery cache per chip and dekad, so a stage reads only the scenes that changed.

What is kept per (chip, dekad): the two middle values of the clear observations of each pixel
and band as uint16 digital numbers (``lo``, and ``hi - lo``, which is 0 where the count is
odd and compresses to nothing), and the count of clear observations (uint8), in one
``np.savez_compressed`` file named by the dekad and a key over the source, the window and the
ids of the scenes that made it. A later stage finds the dekads whose scenes did not change on
disk and reads, masks and reduces only the others (the new scenes since the previous stage).

:func:`assemble` turns the dekads into a :class:`~geo.composite.Composite` with the same
floating-point operations as :func:`geo.composite.composite_dekads` (median in reflectance =
``lo * 0.5e-4 + hi * 0.5e-4``, or ``dn * 1e-4`` for an odd count; gaps of <= ``max_gap``
dekads filled by :func:`geo.composite.fill_gaps`), so a composite from the cache is bit for
bit the composite of the same scenes made in one go.

Frames: a dekad's arrays are (C, H, W) on the chip window's grid (UTM metres, 10 m pixels),
C = the 10 bands of :data:`geo.types.BANDS`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from affine import Affine

from geo.composite import Composite, fill_gaps
from geo.errors import ImageryError
from geo.masking import DEFAULT_MASKED_SCL, clear_mask
from geo.sources.base import Bounds, SceneData
from geo.types import BANDS, REFLECTANCE_SCALE, Season

__all__ = ["ChipCache", "DekadStack", "assemble", "dekad_key", "reduce_dekad"]

log = logging.getLogger(__name__)

_VERSION = 1


@dataclass(frozen=True, eq=False)
class DekadStack:
    """The clear observations of one dekad over one window, reduced to their middle values.

    Attributes:
        scene_ids: the scenes that made it, in date order.
        lo, hi: (C, H, W) uint16 DN, the lower and upper middle clear value per pixel and band
            (equal where the count is odd; 0 where nothing was clear).
        n_clear: (H, W) uint8 count of clear observations.
    """

    scene_ids: tuple[str, ...]
    lo: np.ndarray
    hi: np.ndarray
    n_clear: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.lo.nbytes + self.hi.nbytes + self.n_clear.nbytes)


def reduce_dekad(
    scenes: Sequence[SceneData], masked_scl: Sequence[int] = DEFAULT_MASKED_SCL
) -> DekadStack:
    """Mask the scenes of one dekad (SCL and nodata, as :func:`geo.composite.composite_dekads`)
    and keep each pixel's two middle clear values.

    Raises:
        ImageryError: no scene, or the scenes are not on one grid (the message names them).
    """
    if not scenes:
        raise ImageryError("no scene to reduce into a dekad; search the source first")
    first = scenes[0]
    obs = np.empty((len(scenes), len(BANDS), *first.shape), dtype=np.uint16)
    for i, scene in enumerate(scenes):
        if scene.dn.shape != obs.shape[1:] or not scene.transform.almost_equals(first.transform):
            raise ImageryError(
                f"scene {scene.scene_id} ({scene.date}) is on grid {scene.dn.shape} "
                f"{tuple(scene.transform)[:6]}; expected {obs.shape[1:]} "
                f"{tuple(first.transform)[:6]} like {first.scene_id}: read every scene of a "
                "chip over its window"
            )
        clear = clear_mask(scene.scl, masked_scl)
        clear &= scene.dn.min(axis=0) != 0
        np.multiply(scene.dn, clear, out=obs[i], casting="unsafe")
    n = (obs[:, 0] != 0).sum(axis=0).astype(np.int16)  # masked pixels are 0 in every band
    lo, hi = _middle_values(obs, n)
    none = n == 0
    lo[:, none] = 0
    hi[:, none] = 0
    return DekadStack(tuple(s.scene_id for s in scenes), lo, hi, n.astype(np.uint8, copy=False))


def _middle_values(obs: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper middle of each pixel's ``n`` clear (non-zero) values among the
    ``k`` observations (k, C, H, W); masked values are 0, so in sorted order the clear ones
    are slots k-n..k-1. One, two and three observations (nearly every dekad at a 5-day
    revisit) are done with min/max instead of a sort along the first axis."""
    k = obs.shape[0]
    if k == 1:
        return obs[0].copy(), obs[0].copy()
    if k == 2:
        a, b = np.minimum(obs[0], obs[1]), np.maximum(obs[0], obs[1])
        return np.where((n == 2)[None], a, b), b
    if k == 3:
        top = obs.max(axis=0)
        low = obs.min(axis=0)
        mid = (obs.sum(axis=0, dtype=np.uint32) - top - low).astype(np.uint16)
        three, two = (n == 3)[None], (n == 2)[None]
        return np.where(three | two, mid, top), np.where(three, mid, top)
    obs.sort(axis=0)
    lo_i = (k - n + (n - 1) // 2).clip(0, k - 1)[None, None]
    hi_i = (k - n + n // 2).clip(0, k - 1)[None, None]
    lo = np.take_along_axis(obs, np.broadcast_to(lo_i, (1, *obs.shape[1:])), axis=0)[0]
    hi = np.take_along_axis(obs, np.broadcast_to(hi_i, (1, *obs.shape[1:])), axis=0)[0]
    return lo, hi


def _median(stack: DekadStack, out: np.ndarray) -> None:
    """Write the dekad's median reflectance (C, H, W) float32 into ``out`` with the float
    operations of ``geo.composite._median_dn`` (so the results are identical)."""
    half = np.float32(0.5 * REFLECTANCE_SCALE)
    odd = (stack.n_clear % 2 == 1)[None]
    # _median_dn weighs each slot by ((lo == j) + (hi == j)) * half: an odd count puts
    # 2 * half on one slot, an even count half on each of two.
    np.multiply(stack.lo, np.float32(2.0) * half, out=out, dtype=np.float32)
    even = stack.lo * half + stack.hi * half
    np.copyto(out, even, where=~odd)
    out[:, stack.n_clear == 0] = np.nan


def assemble(
    dekads: Mapping[int, DekadStack],
    season: Season,
    as_of: dt.date,
    transform: Affine,
    crs: str,
    shape: tuple[int, int],
    *,
    max_gap: int = 3,
) -> Composite:
    """The season composite (36 dekads) from the dekads that had scenes, gaps filled.

    Args:
        dekads: dekad index (0-35 in ``season.dekads()``) -> its :class:`DekadStack`.
        season, as_of: the composite's season and last acquisition date.
        transform, crs, shape: the window's grid (metres, 10 m pixels), (H, W).
        max_gap: as :func:`geo.composite.composite_dekads`.

    Raises:
        ImageryError: no dekad, or a dekad on another shape than ``shape``.
    """
    if not dekads:
        raise ImageryError(
            f"no scene of season {season} up to {as_of} over this window; search the source "
            "over the season's dates"
        )
    dates = season.dekads()
    data = np.full((len(dates), len(BANDS), *shape), np.nan, dtype=np.float32)
    observed = np.zeros((len(dates), *shape), dtype=bool)
    for step, stack in sorted(dekads.items()):
        if stack.n_clear.shape != shape:
            raise ImageryError(
                f"dekad {dates[step]} of scenes {', '.join(stack.scene_ids)} is "
                f"{stack.n_clear.shape}; expected {shape}: delete the chip cache"
            )
        _median(stack, data[step])
        observed[step] = stack.n_clear > 0
    fill_gaps(data, observed, max_gap)
    return Composite(
        data=data, observed=observed, dates=dates, transform=transform, crs=crs, as_of=as_of
    )


def dekad_key(source: str, window: Bounds, scene_ids: Sequence[str]) -> str:
    """16 hex digits over the source name, the window and the dekad's scene ids."""
    return hashlib.sha256(
        json.dumps([source, str(window), sorted(scene_ids), _VERSION]).encode()
    ).hexdigest()[:16]


def _savez(f: IO[bytes], **arrays: np.ndarray | np.generic) -> None:
    """``np.savez_compressed`` at deflate level 1: a third of level 6's time for 2 % more
    bytes on these arrays; ``np.load`` reads it the same."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)


class ChipCache:
    """Dekads of chips on disk: ``<root>/<chip id>/<YYYYMMDD>-<key>.npz``.

    A dekad whose scenes changed gets a new key (a new file); the file of the same dekad with
    the older key is removed when the new one is written, so a chip keeps one file per dekad.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, chip_id: str, dekad: dt.date, key: str) -> Path:
        return self.root / chip_id / f"{dekad:%Y%m%d}-{key}.npz"

    def load(self, chip_id: str, dekad: dt.date, key: str) -> DekadStack | None:
        """The cached dekad, or None when absent (a corrupt file is logged and ignored)."""
        path = self.path(chip_id, dekad, key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["version"]) != _VERSION:
                    return None
                lo = z["lo"]
                return DekadStack(
                    tuple(str(s) for s in z["scene_ids"]),
                    lo,
                    (lo + z["hi_minus_lo"]).astype(np.uint16, copy=False),
                    z["n_clear"],
                )
        except (OSError, KeyError, ValueError) as exc:
            log.warning("chip cache %s unreadable (%s): the dekad is read again", path, exc)
            return None

    def save(self, chip_id: str, dekad: dt.date, key: str, stack: DekadStack) -> Path:
        """Write the dekad (compressed, atomic) and drop that dekad's older files.

        Raises:
            ImageryError: the file cannot be written.
        """
        path = self.path(chip_id, dekad, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                _savez(
                    f,
                    version=np.int64(_VERSION),
                    scene_ids=np.array(stack.scene_ids),
                    lo=stack.lo,
                    hi_minus_lo=stack.hi - stack.lo,
                    n_clear=stack.n_clear,
                )
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise ImageryError(
                f"cannot write chip cache {path}: {exc} (check the directory is writable)"
            ) from exc
        for old in path.parent.glob(f"{dekad:%Y%m%d}-*.npz"):
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def nbytes(self) -> int:
        """Bytes on disk under the cache root."""
        return sum(p.stat().st_size for p in self.root.rglob("*.npz"))
