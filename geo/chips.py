"""Plan a lender's book into chips: a fixed grid per UTM zone, one window read per chip.

Frames and units: each chip lives in its own UTM zone (``EPSG:326xx`` north, ``327xx`` south),
metres, 10 m pixels. The grid of a zone does not depend on the book: chip (col, row) covers
``[col * S, (col + 1) * S) x [row * S, (row + 1) * S)`` metres in the zone's CRS, with
``S = CHIP_PX * RESOLUTION_M`` (5,120 m). That square is the chip's *core*.

Each parcel belongs to exactly one chip: the one whose core holds the parcel's representative
point (a point inside the polygon; shapely's ``representative_point``). The chip's *window*,
what the flow reads and segments, is the core grown by ``HALO_PX`` pixels (the context the
tiled inference needs at the core's edges), grown to cover every parcel it owns whole, and
shrunk to the extent of those parcels plus the halo (a chip with one village reads the village,
not 26 km2): the bounding box of its parcels widened by ``HALO_PX``, snapped outward to the
10 m grid. So a window is at most the core plus the halo, unless a parcel reaches further.
Windows of neighbouring chips overlap; a parcel is still assessed once, in its own chip.
Only chips that hold parcels are planned.

Pure functions over frames and plain values: no file, no network.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.errors import ParcelGeometryError
from geo.sources.base import Bounds

__all__ = [
    "CHIP_PX",
    "HALO_PX",
    "RESOLUTION_M",
    "Chip",
    "ChipPlan",
    "plan_chips",
    "sentinelhub_units",
    "utm_epsg",
]

#: Side of a chip's core in pixels.
CHIP_PX = 512
#: Context added around the core on every side (pixels), for the tiled inference.
HALO_PX = 32
#: Pixel size of the chip grid (metres).
RESOLUTION_M = 10.0


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the UTM zone holding (lon, lat) in degrees (WGS 84): 326zz / 327zz.

    Raises:
        ParcelGeometryError: the point is not a finite longitude/latitude.
    """
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise ParcelGeometryError(
            f"point ({lon}, {lat}) is not a WGS 84 longitude/latitude; check the parcels' CRS"
        )
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


@dataclass(frozen=True)
class Chip:
    """One chip of the plan.

    Attributes:
        epsg: its UTM zone's EPSG code.
        col, row: its position on the zone's grid (``core.left = col * CHIP_PX * 10 m``,
            ``core.bottom = row * CHIP_PX * 10 m``).
        core: the grid square that owns parcels (metres in ``EPSG:<epsg>``).
        window: what is read and segmented: the chip's parcels' bounding box plus the halo,
            edges on the 10 m grid (within the core plus the halo unless a parcel reaches out).
    """

    epsg: int
    col: int
    row: int
    core: Bounds
    window: Bounds

    @property
    def chip_id(self) -> str:
        """``<epsg>_<col>_<row>``, e.g. ``32631_97_936``: stable across books and runs."""
        return f"{self.epsg}_{self.col}_{self.row}"

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the window in 10 m pixels."""
        w = self.window
        return (
            round((w.top - w.bottom) / RESOLUTION_M),
            round((w.right - w.left) / RESOLUTION_M),
        )

    @property
    def pixels(self) -> int:
        h, w = self.shape
        return h * w


@dataclass(frozen=True, eq=False)
class ChipPlan:
    """The chips of a book and which parcel belongs to which.

    Attributes:
        chips: the chips holding parcels, sorted by id.
        assignment: ``parcel_id`` -> ``chip_id`` (every planned parcel exactly once).
        bbox_pixels: 10 m pixels of the book's bounding box per zone (what one box read of
            each zone would cost), summed over the zones.
    """

    chips: tuple[Chip, ...]
    assignment: pd.Series
    bbox_pixels: int

    def __iter__(self) -> Iterator[Chip]:
        return iter(self.chips)

    def __len__(self) -> int:
        return len(self.chips)

    @property
    def window_pixels(self) -> int:
        """10 m pixels read over every chip window (overlapping halos counted per chip)."""
        return sum(c.pixels for c in self.chips)

    def chip(self, chip_id: str) -> Chip:
        """The chip ``chip_id``.

        Raises:
            KeyError: no chip of the plan has that id (the message lists a few).
        """
        for c in self.chips:
            if c.chip_id == chip_id:
                return c
        raise KeyError(
            f"no chip {chip_id!r} in the plan; chips are e.g. "
            f"{', '.join(c.chip_id for c in self.chips[:5])}"
        )

    def parcels_of(self, parcels: gpd.GeoDataFrame, chip: Chip) -> gpd.GeoDataFrame:
        """The parcels of ``chip`` (rows of ``parcels`` by ``parcel_id``), in the chip's CRS."""
        ids = set(self.assignment.index[self.assignment == chip.chip_id])
        mine = parcels[parcels["parcel_id"].astype(str).isin(ids)]
        return mine if mine.crs.to_epsg() == chip.epsg else mine.to_crs(chip.crs)

    def counts(self) -> pd.Series:
        """Parcels per chip id, in chip order."""
        n = self.assignment.value_counts()
        return pd.Series([int(n.get(c.chip_id, 0)) for c in self.chips], [c.chip_id for c in self])


def _snap_out(lo: float, hi: float) -> tuple[float, float]:
    r = RESOLUTION_M
    return math.floor(lo / r + 1e-9) * r, math.ceil(hi / r - 1e-9) * r


def plan_chips(
    parcels: gpd.GeoDataFrame,
    *,
    chip_px: int = CHIP_PX,
    halo_px: int = HALO_PX,
) -> ChipPlan:
    """Assign every parcel to one chip of its UTM zone's fixed grid and size the windows.

    Args:
        parcels: GeoDataFrame with ``parcel_id`` and polygon geometries, in any CRS that
            reprojects to WGS 84 (the flows pass the onboarded parcels, in UTM metres).
        chip_px: side of a chip's core in pixels of 10 m.
        halo_px: context added on every side of the core, in pixels.

    Returns:
        A :class:`ChipPlan`; no chip without a parcel.

    Raises:
        ParcelGeometryError: ``parcels`` has no CRS, or a parcel has no usable geometry.
        ValueError: ``chip_px`` < 8 or ``halo_px`` < 0.
    """
    if chip_px < 8 or halo_px < 0:
        raise ValueError(f"chip_px={chip_px}, halo_px={halo_px}: need chip_px >= 8, halo_px >= 0")
    if parcels.crs is None:
        raise ParcelGeometryError(
            "parcels have no CRS: read them with geo.parcels.read_parcels (UTM metres)"
        )
    if len(parcels) == 0:
        return ChipPlan((), pd.Series(dtype=str, name="chip_id"), 0)
    if parcels.geometry.is_empty.any() or parcels.geometry.isna().any():
        bad = parcels.loc[parcels.geometry.is_empty | parcels.geometry.isna(), "parcel_id"]
        raise ParcelGeometryError(
            f"parcels {', '.join(map(str, bad[:5]))} have no geometry; onboard them with "
            "geo.parcels.read_parcels, which rejects them"
        )
    side = chip_px * RESOLUTION_M
    halo = halo_px * RESOLUTION_M
    points = parcels.geometry.representative_point()
    lonlat = points.to_crs("EPSG:4326")
    epsg = np.array([utm_epsg(float(x), float(y)) for x, y in zip(lonlat.x, lonlat.y, strict=True)])
    ids = parcels["parcel_id"].astype(str).to_numpy()
    chips: list[Chip] = []
    assigned: dict[str, str] = {}
    bbox_pixels = 0
    for zone in sorted(set(epsg.tolist())):
        rows = np.flatnonzero(epsg == zone)
        crs = f"EPSG:{zone}"
        geoms = parcels.geometry.iloc[rows]
        pts = points.iloc[rows]
        if parcels.crs.to_epsg() != zone:
            geoms, pts = geoms.to_crs(crs), pts.to_crs(crs)
        col = np.floor(pts.x.to_numpy() / side).astype(np.int64)
        row = np.floor(pts.y.to_numpy() / side).astype(np.int64)
        b = geoms.bounds.to_numpy()  # minx, miny, maxx, maxy
        left, right = _snap_out(float(b[:, 0].min()), float(b[:, 2].max()))
        bottom, top = _snap_out(float(b[:, 1].min()), float(b[:, 3].max()))
        bbox_pixels += round((right - left) / RESOLUTION_M) * round((top - bottom) / RESOLUTION_M)
        frame = pd.DataFrame(
            {"col": col, "row": row, "l": b[:, 0], "b": b[:, 1], "r": b[:, 2], "t": b[:, 3]}
        )
        for key, part in frame.groupby(["col", "row"], sort=True):
            c, r = (int(v) for v in key)  # type: ignore[call-overload,union-attr]
            core = Bounds(c * side, r * side, (c + 1) * side, (r + 1) * side, crs)
            wl, wr = _snap_out(part["l"].min() - halo, part["r"].max() + halo)
            wb, wt = _snap_out(part["b"].min() - halo, part["t"].max() + halo)
            chip = Chip(zone, c, r, core, Bounds(wl, wb, wr, wt, crs))
            chips.append(chip)
            for i in part.index:
                assigned[ids[rows[i]]] = chip.chip_id
    chips.sort(key=lambda ch: ch.chip_id)
    assignment = pd.Series(assigned, name="chip_id").reindex(ids)
    return ChipPlan(tuple(chips), assignment, bbox_pixels)


#: Bands a Sentinel Hub request of :mod:`geo.sources.sentinelhub` asks for (10 + SCL + mask).
SH_REQUEST_BANDS = 12
#: Sentinel Hub's minimum charge per request (processing units).
SH_MIN_UNITS = 0.005


def sentinelhub_units(plan: ChipPlan, scenes_per_chip: int) -> float:
    """Estimated Sentinel Hub processing units to read every chip window ``scenes_per_chip``
    times (one Process API request per scene and chip).

    Sentinel Hub's rule: a request costs ``(width * height / 512²) * (input bands / 3)``
    units (UINT16 output: factor 1), at least :data:`SH_MIN_UNITS`. The request of
    :mod:`geo.sources.sentinelhub` reads 12 bands (10 + SCL + dataMask), so a 576 x 576
    window costs 5.06 units per scene.
    """
    per_scene = sum(
        max(c.pixels / 512.0**2 * SH_REQUEST_BANDS / 3.0, SH_MIN_UNITS) for c in plan.chips
    )
    return per_scene * scenes_per_chip
