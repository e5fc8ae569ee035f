"""Dekad composites: the median of clear observations per 10-day step, with short gaps filled.

Frames: a :class:`Composite` lives on the scenes' grid (``transform`` / ``crs``, a UTM CRS in
metres, 10 m pixels); ``data`` is (T, C, H, W) float32 reflectance 0-1 with T = 36 dekads of a
:class:`~geo.types.Season` and C = the 10 bands of :data:`geo.types.BANDS`.

Memory: scenes are consumed one at a time. Each scene's clear pixels are kept as uint16
digital numbers only while its dekad is *open*; a dekad is reduced to its median (into the
float32 output) and freed once a scene two dekads later arrives. Sources return scenes in date
order, so at most two dekads (a handful of scenes) are held at once; a ``Sequence`` of scenes
in any order is sorted by date first (references only, no pixel copies).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from geo.errors import ImageryError
from geo.masking import DEFAULT_MASKED_SCL, clear_mask
from geo.sources.base import SceneData
from geo.types import BANDS, REFLECTANCE_SCALE, Season

__all__ = ["Composite", "composite_dekads", "fill_gaps"]

log = logging.getLogger(__name__)

#: A dekad is reduced once a scene this many dekads later arrives (tolerates small disorder).
_CLOSE_LAG = 2
#: Pixel-steps per block in :func:`fill_gaps` (bounds its temporaries).
_FILL_BLOCK = 1 << 20
_NPZ_VERSION = 1


@dataclass(eq=False)
class Composite:
    """A season of dekad composites over one grid.

    Attributes:
        data: (T, C, H, W) float32 reflectance 0-1, bands in ``geo.types.BANDS`` order; NaN
            where nothing usable was seen even after gap filling (and after ``as_of``).
        observed: (T, H, W) bool, True where a clear observation fell in that dekad (before
            gap filling); ``valid & ~observed`` marks gap-filled values.
        dates: the T dekad start dates (``Season.dekads()``).
        transform: Affine of the grid (pixel corner; metres in ``crs``).
        crs: e.g. ``"EPSG:32631"``.
        as_of: the last acquisition date allowed in (no information from after it).
    """

    data: np.ndarray
    observed: np.ndarray
    dates: list[dt.date]
    transform: Affine
    crs: str
    as_of: dt.date

    def __post_init__(self) -> None:
        t, _, h, w = self.data.shape
        if self.observed.shape != (t, h, w) or len(self.dates) != t:
            raise ImageryError(
                f"composite data {self.data.shape}, observed {self.observed.shape} and "
                f"{len(self.dates)} dates disagree; expected (T, C, H, W), (T, H, W), T dates"
            )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, C, H, W)."""
        t, c, h, w = self.data.shape
        return (int(t), int(c), int(h), int(w))

    @property
    def valid(self) -> np.ndarray:
        """(T, H, W) bool: a value exists (observed or gap-filled); all bands share it."""
        return np.asarray(~np.isnan(self.data[:, 0]))

    def to_npz(self, path: str | Path, *, compressed: bool = False) -> Path:
        """Cache the composite to ``path`` (``.npz``, zlib-compressed if ``compressed``,
        atomic); return the path.

        Raises:
            ImageryError: the file cannot be written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                (np.savez_compressed if compressed else np.savez)(
                    f,
                    version=np.int64(_NPZ_VERSION),
                    data=self.data,
                    observed=self.observed,
                    dates=np.array([d.isoformat() for d in self.dates]),
                    transform=np.array(tuple(self.transform)[:6], dtype=np.float64),
                    crs=np.array(self.crs),
                    as_of=np.array(self.as_of.isoformat()),
                )
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise ImageryError(
                f"cannot write composite cache {path}: {exc} (check the directory is writable)"
            ) from exc
        return path

    @classmethod
    def from_npz(cls, path: str | Path) -> Composite:
        """Load a composite written by :meth:`to_npz`.

        Raises:
            ImageryError: the file is missing, corrupt or not a composite cache.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["version"]) != _NPZ_VERSION:
                    raise ImageryError(
                        f"composite cache {path} has version {int(z['version'])}; expected "
                        f"{_NPZ_VERSION}: delete it so the composite is rebuilt"
                    )
                return cls(
                    data=z["data"],
                    observed=z["observed"],
                    dates=[dt.date.fromisoformat(str(s)) for s in z["dates"]],
                    transform=Affine(*(float(v) for v in z["transform"])),
                    crs=str(z["crs"]),
                    as_of=dt.date.fromisoformat(str(z["as_of"])),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ImageryError(
                f"cannot read composite cache {path}: {exc}; delete it so it is rebuilt"
            ) from exc


def _sorted_slots(planes: list[np.ndarray]) -> list[np.ndarray]:
    """The k arrays sorted element-wise (ascending); sorting networks for k <= 3."""
    k = len(planes)
    if k == 1:
        return planes
    if k == 2:
        return [np.minimum(planes[0], planes[1]), np.maximum(planes[0], planes[1])]
    if k == 3:
        a, b, c = planes
        lo1, hi1 = np.minimum(a, b), np.maximum(a, b)
        return [np.minimum(lo1, c), np.maximum(lo1, np.minimum(hi1, c)), np.maximum(hi1, c)]
    return list(np.sort(np.stack(planes), axis=0))


def _median_dn(stack: list[np.ndarray], n_clear: np.ndarray, out: np.ndarray) -> None:
    """Write the per-pixel median of the non-zero values of ``stack`` into ``out`` (reflectance).

    ``stack``: k arrays (C, H, W) uint16 DN, 0 where masked (masking is per pixel, so every band
    of a pixel is zero or none is); ``n_clear``: (H, W) count of non-zero observations;
    ``out``: (C, H, W) float32, set to NaN where ``n_clear`` is 0. Works band by band so its
    temporaries are (H, W) planes.
    """
    k = len(stack)
    # Masked values are 0 and sort first: the n clear values are slots k-n..k-1, and the
    # median averages slots lo and hi. As per-pixel weights on the sorted slots, each slot
    # costs one multiply-add.
    n = n_clear.astype(np.int16)
    lo, hi = k - n + (n - 1) // 2, k - n + n // 2
    half = np.float32(0.5 * REFLECTANCE_SCALE)
    weights: list[np.ndarray | None] = []
    for j in range(k):
        weight = ((lo == j).astype(np.float32) + (hi == j)) * half
        if j == k - 1:
            weight[n == 0] = np.nan  # nothing clear: NaN propagates through the sum
        weights.append(weight if weight.any() else None)
    for band in range(out.shape[0]):
        slots = _sorted_slots([s[band] for s in stack])
        target = out[band]
        first = True
        for slot, weight in zip(slots, weights, strict=True):
            if weight is None:
                continue
            if first:
                np.multiply(slot, weight, out=target, dtype=np.float32)
                first = False
            else:
                target += slot * weight
        if first:
            target.fill(0.0)


def fill_gaps(data: np.ndarray, observed: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill, in place, runs of <= ``max_gap`` unobserved steps between two observed ones.

    Linear interpolation along time between the observations on each side; no extrapolation
    before the first or after the last observation of a pixel. Works on blocks of rows so
    its temporaries stay small.

    Args:
        data: (T, C, H, W) float32, values at observed steps (others are overwritten if filled).
        observed: (T, H, W) bool.
        max_gap: longest run of missing steps that is filled (0 disables filling).

    Returns:
        ``data`` (the same array).
    """
    t_len, n_bands, height, width = data.shape
    if max_gap <= 0 or t_len < 3:
        return data
    work = data if data.flags.c_contiguous else np.ascontiguousarray(data)
    flat = work.reshape(-1)  # a view of the contiguous array
    step_size = n_bands * height * width
    rows = max(1, _FILL_BLOCK // (t_len * width))
    for r0 in range(0, height, rows):
        block = observed[:, r0 : r0 + rows]
        ft, fr, fc, p, n = _gap_positions(block, max_gap)
        if ft.size == 0:
            continue
        w = ((ft - p) / (n - p)).astype(np.float32)
        w0 = np.float32(1.0) - w
        pix = (fr + r0) * width + fc
        for band in range(n_bands):
            base = band * height * width + pix
            flat[ft * step_size + base] = (
                flat[p * step_size + base] * w0 + flat[n * step_size + base] * w
            )
    if work is not data:
        data[...] = work
    return data


def _gap_positions(
    observed: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps, rows and cols to fill in ``observed`` (T, h, W), with the observed step before
    and after each (all int64)."""
    t_len = observed.shape[0]
    steps = np.arange(t_len, dtype=np.int16)[:, None, None]
    prev = np.where(observed, steps, np.int16(-1))
    np.maximum.accumulate(prev, axis=0, out=prev)
    nxt = np.minimum.accumulate(np.where(observed, steps, np.int16(t_len))[::-1], axis=0)[::-1]
    fill = (nxt - prev <= max_gap + 1) & (prev >= 0) & (nxt < t_len)
    fill &= ~observed
    ft, fr, fc = np.nonzero(fill)
    return (
        ft.astype(np.int64),
        fr.astype(np.int64),
        fc.astype(np.int64),
        prev[ft, fr, fc].astype(np.int64),
        nxt[ft, fr, fc].astype(np.int64),
    )


class _Builder:
    """Accumulates scenes into per-dekad stacks and reduces closed dekads into ``data``."""

    def __init__(self, first: SceneData, n_steps: int, masked_scl: Sequence[int]) -> None:
        self.transform = first.transform
        self.crs = first.crs
        self.shape = first.shape
        h, w = self.shape
        # Every slot is written once: by its median when closed, else NaN in finish().
        self.data = np.empty((n_steps, len(BANDS), h, w), dtype=np.float32)
        self.observed = np.zeros((n_steps, h, w), dtype=bool)
        self.masked_scl = tuple(masked_scl)
        self.open: dict[int, list[np.ndarray]] = {}
        self.counts: dict[int, np.ndarray] = {}
        self.closed: set[int] = set()
        self.newest = -1

    def check_grid(self, scene: SceneData) -> None:
        expected = (len(BANDS), *self.shape)
        if scene.dn.shape != expected or scene.scl.shape != self.shape:
            raise ImageryError(
                f"scene {scene.scene_id} ({scene.date}): dn {scene.dn.shape} / scl "
                f"{scene.scl.shape}; expected dn {expected} and scl {self.shape} like the first "
                "scene: read every scene over the same bounds and resolution"
            )
        same_crs = scene.crs == self.crs or CRS.from_user_input(scene.crs) == CRS.from_user_input(
            self.crs
        )
        if not same_crs or not scene.transform.almost_equals(self.transform):
            raise ImageryError(
                f"scene {scene.scene_id} ({scene.date}) is on grid {scene.crs} "
                f"{tuple(scene.transform)[:6]}; expected {self.crs} {tuple(self.transform)[:6]} "
                "like the first scene: read every scene over the same Bounds and resolution"
            )

    def add(self, scene: SceneData, step: int) -> None:
        if step in self.closed:
            raise ImageryError(
                f"scene {scene.scene_id} ({scene.date}) arrived after its dekad was composited "
                "(scenes more than one dekad out of date order from an iterator); pass the "
                "scenes as a list, or in date order as TileSource.search returns them"
            )
        clear = clear_mask(scene.scl, self.masked_scl)
        clear &= scene.dn.min(axis=0) != 0
        obs = (scene.dn * clear).astype(np.uint16, copy=False)
        self.open.setdefault(step, []).append(obs)
        if step in self.counts:
            self.counts[step] += clear
        else:
            self.counts[step] = clear.astype(np.uint16)
        if step > self.newest:
            self.newest = step
            for old in [s for s in self.open if s <= step - _CLOSE_LAG]:
                self.close(old)

    def close(self, step: int) -> None:
        stack = self.open.pop(step)
        n_clear = self.counts.pop(step)
        _median_dn(stack, n_clear, self.data[step])
        self.observed[step] = n_clear > 0
        self.closed.add(step)

    def finish(self) -> None:
        for step in sorted(self.open):
            self.close(step)
        for step in range(self.data.shape[0]):
            if step not in self.closed:
                self.data[step] = np.nan


def composite_dekads(
    scenes: Iterable[SceneData],
    season: Season,
    as_of: dt.date,
    *,
    max_gap: int = 3,
    masked_scl: Sequence[int] = DEFAULT_MASKED_SCL,
) -> Composite:
    """Composite scenes into the 36 dekads of ``season`` using only acquisitions up to ``as_of``.

    Each scene is masked by SCL (``masked_scl``, see :func:`geo.masking.clear_mask`) and by
    nodata (a pixel with any band 0 is unusable). Per dekad and pixel the value is the median
    of the clear observations, in reflectance 0-1 (DN x 1e-4). Then runs of <= ``max_gap``
    empty dekads between two observed dekads are filled linearly in time (:func:`fill_gaps`);
    nothing is extrapolated, so dekads after the last clear observation (and after ``as_of``)
    stay NaN. Scenes outside the season or after ``as_of`` are ignored (debug log).

    Args:
        scenes: :class:`~geo.sources.base.SceneData` on one common grid, consumed once. A
            ``Sequence`` may be in any order; an iterator should be in date order (small
            disorder within two dekads is fine).
        season: the season whose dekad grid (T = 36) is used.
        as_of: the last acquisition date allowed in.
        max_gap: longest run of empty dekads to fill (0 disables gap filling).
        masked_scl: SCL classes treated as unusable.

    Returns:
        A :class:`Composite` with ``data`` (36, 10, H, W) float32 on the scenes' grid.

    Raises:
        ImageryError: no scene of the season was given, a scene is on a different grid or
            band layout than the first one (the message names the scene), or an iterator
            delivered a scene after its dekad had already been composited.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap {max_gap} is negative; expected 0 or more dekads")
    dates = season.dekads()
    stream: Iterable[SceneData] = (
        sorted(scenes, key=lambda s: s.date) if isinstance(scenes, Sequence) else scenes
    )
    builder: _Builder | None = None
    used = ignored = 0
    for scene in stream:
        if not season.start <= scene.date <= season.end:
            log.debug(
                "ignoring scene %s (%s): outside season %s", scene.scene_id, scene.date, season
            )
            ignored += 1
            continue
        if builder is None:
            builder = _Builder(scene, len(dates), masked_scl)
        builder.check_grid(scene)
        if scene.date > as_of:
            log.debug("ignoring scene %s (%s): after as_of %s", scene.scene_id, scene.date, as_of)
            ignored += 1
            continue
        builder.add(scene, season.dekad_index(scene.date))
        used += 1
    if builder is None:
        raise ImageryError(
            f"no scene of season {season} ({season.start}..{season.end}) to composite "
            f"({ignored} outside it); search the source over the season's dates"
        )
    builder.finish()
    fill_gaps(builder.data, builder.observed, max_gap)
    log.info(
        "composited %d scenes (%d ignored) into %d dekads up to %s; %.1f%% pixel-dekads observed",
        used,
        ignored,
        len(dates),
        as_of,
        100.0 * float(builder.observed.mean()),
    )
    return Composite(
        data=builder.data,
        observed=builder.observed,
        dates=dates,
        transform=builder.transform,
        crs=builder.crs,
        as_of=as_of,
    )
