"""The one interface for imagery: every source lists scenes and reads them as ``SceneData``.

Archive layout (what ``LocalArchiveSource`` reads and the generator writes), one file per
acquisition: ``<root>/scenes/S2L2A_<YYYYMMDD>.tif``, a Cloud-Optimised GeoTIFF with 11 uint16
bands in the order of :data:`geo.types.BANDS` plus ``SCL`` last (band descriptions set to
those names), L2A digital numbers (reflectance x 10000), nodata 0, 10 m pixels in a UTM CRS,
and the tag ``ACQUISITION_DATE=YYYY-MM-DD``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from affine import Affine

from geo.types import BANDS

#: Band names of an archive scene file, in file order (SCL last).
SCENE_BANDS: tuple[str, ...] = (*BANDS, "SCL")


@dataclass(frozen=True)
class Bounds:
    """An axis-aligned box in a projected CRS (metres): left, bottom, right, top."""

    left: float
    bottom: float
    right: float
    top: float
    crs: str

    def __post_init__(self) -> None:
        if not (self.right > self.left and self.top > self.bottom):
            raise ValueError(f"empty bounds {self}; expected right > left and top > bottom")


@dataclass(frozen=True)
class Grid:
    """The output pixel grid of a read: origin at the bounds' top-left corner,
    ``ceil(width / resolution)`` columns and ``ceil(height / resolution)`` rows (metres)."""

    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, bounds: Bounds, resolution: float) -> Grid:
        """The grid every source reads ``bounds`` onto.

        Raises:
            ValueError: ``resolution`` is not positive.
        """
        if resolution <= 0:
            raise ValueError(f"resolution={resolution}; expected > 0 metres")
        width = max(1, math.ceil((bounds.right - bounds.left) / resolution - 1e-6))
        height = max(1, math.ceil((bounds.top - bounds.bottom) / resolution - 1e-6))
        transform = Affine(resolution, 0.0, bounds.left, 0.0, -resolution, bounds.top)
        return cls(transform, width, height)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the whole pixels."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)


@dataclass(frozen=True)
class SceneRef:
    """One acquisition a source can read."""

    scene_id: str
    date: dt.date
    href: str
    cloud_cover: float | None = None


@dataclass(frozen=True, eq=False)
class SceneData:
    """One acquisition over a window.

    ``dn``: (10, H, W) uint16 L2A digital numbers in BANDS order (0 = nodata);
    ``scl``: (H, W) uint8 scene classification; ``transform``: the window's Affine (10 m
    pixels); ``crs``: e.g. ``"EPSG:32631"``.
    """

    scene_id: str
    date: dt.date
    dn: np.ndarray
    scl: np.ndarray
    transform: Affine
    crs: str
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.scl.shape[0]), int(self.scl.shape[1]))


@runtime_checkable
class TileSource(Protocol):
    """A place imagery comes from: Sentinel Hub, a STAC catalogue, a local archive."""

    name: str

    def search(self, bounds: Bounds, start: dt.date, end: dt.date) -> list[SceneRef]:
        """Scenes intersecting ``bounds`` acquired in [start, end], sorted by date."""
        ...

    def read(self, ref: SceneRef, bounds: Bounds, resolution: float = 10.0) -> SceneData:
        """Read one scene over ``bounds`` on a grid of ``resolution`` metres aligned to it."""
        ...
