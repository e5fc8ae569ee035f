"""Is a parcel file's CRS right? Swapped axes and wrong units, recognised from the coordinates.

:func:`diagnose` looks at each parcel's bounding box in the file's *declared* CRS, before any
reprojection, and names what it recognises. It only speaks when there is a tell:

* geographic CRS (degrees, x = longitude, y = latitude):

  - ``|y| > 90`` while ``|x| <= 90``: y cannot be a latitude, x can: **lat/lon swapped**;
  - ``|x| > 180`` or ``|y| > 90`` otherwise: **metres declared as degrees**;
  - the box as written lies outside the reference region but the swapped box falls inside it
    (and x is a possible latitude): **lat/lon swapped**.

* projected CRS (metres):

  - every coordinate within +-180 / +-90 and an area below 1 m2: **degrees declared as
    metres**;
  - a UTM CRS whose x is beyond 0-1000 km (no easting) but a possible northing, while y is a
    possible easting: **easting/northing swapped**;
  - outside the reference region as written, inside it swapped: **easting/northing swapped**.

The reference region is, in order: the imagery's footprint when the caller knows it (a
:class:`~geo.sources.base.Bounds` in any CRS), the area of use of the target UTM zone, or the
bulk of the file's own parcels (when most of them sit together and a stray one's swap lands
among them). Without any of these nothing is inferred: lon 30 / lat 10 is a field in Sudan
and its swap one in Chad; only the imagery can tell which one is meant.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError

from geo.sources.base import Bounds

__all__ = ["Finding", "Region", "diagnose", "imagery_region", "summary"]

Kind = Literal["swapped", "degrees_as_metres", "metres_as_degrees"]

#: Smaller "areas" in a projected CRS mean the coordinates are degrees (m2).
MIN_AREA_M2 = 1.0
#: Parcels within this distance of the file's median position form its bulk (deg / m).
_BULK_RADIUS = {True: 1.0, False: 100_000.0}
#: The bulk's box is widened by this much before a swapped parcel is tested against it.
_BULK_MARGIN = {True: 0.1, False: 10_000.0}
#: Plausible UTM eastings (m); northings run 0-10 000 km.
_EASTING = (100_000.0, 900_000.0)
_NORTHING_MAX = 10_000_000.0

_SWAP_FIX = (
    "swap the axes in the file, or in geopandas: gdf.geometry = gdf.geometry.map(lambda g: "
    "shapely.ops.transform(lambda x, y: (y, x), g))"
)


@dataclass(frozen=True)
class Region:
    """Where the parcels should be: a box (minx, miny, maxx, maxy) in the file's CRS."""

    box: tuple[float, float, float, float]
    label: str


@dataclass(frozen=True)
class Finding:
    """One parcel whose coordinates do not fit its declared CRS.

    Attributes:
        row: 0-based row in the file.
        kind: ``swapped``, ``degrees_as_metres`` or ``metres_as_degrees``.
        why: the tell, in words (e.g. "swapped, it falls inside the imagery ...").
        message: what was detected, with the coordinates and the fix.
    """

    row: int
    kind: Kind
    why: str
    message: str


def imagery_region(imagery: Bounds, crs: CRS) -> Region | None:
    """The imagery footprint ``imagery`` (any CRS) as a box in ``crs``; None if it cannot be
    transformed there (e.g. a UTM box into a far-away zone)."""
    try:
        transformer = Transformer.from_crs(CRS.from_user_input(imagery.crs), crs, always_xy=True)
        box = transformer.transform_bounds(
            imagery.left, imagery.bottom, imagery.right, imagery.top, densify_pts=21
        )
    except (CRSError, ProjError, ValueError):
        return None
    if not np.isfinite(box).all():
        return None
    label = (
        f"the imagery ({imagery.crs} x {imagery.left:.0f}..{imagery.right:.0f}, "
        f"y {imagery.bottom:.0f}..{imagery.top:.0f})"
    )
    return Region((float(box[0]), float(box[1]), float(box[2]), float(box[3])), label)


def _zone_region(target: CRS | None, crs: CRS) -> Region | None:
    """The target UTM zone's area of use (lon/lat) when the file is in degrees."""
    if target is None or target.utm_zone is None or not crs.is_geographic:
        return None
    area = target.area_of_use
    if area is None:
        return None
    w, s, e, n = area.bounds
    label = f"the target UTM zone {target.to_string()} (lon {w:g}..{e:g}, lat {s:g}..{n:g})"
    return Region((w, s, e, n), label)


def _bulk_region(bounds: np.ndarray, rows: np.ndarray, geographic: bool) -> Region | None:
    """The box of the file's bulk: the parcels near the median position, when they are a
    majority of at least two."""
    if rows.size < 3:
        return None
    cx = (bounds[rows, 0] + bounds[rows, 2]) / 2
    cy = (bounds[rows, 1] + bounds[rows, 3]) / 2
    radius = _BULK_RADIUS[geographic]
    near = rows[(np.abs(cx - np.median(cx)) <= radius) & (np.abs(cy - np.median(cy)) <= radius)]
    if near.size < 2 or 2 * near.size <= rows.size:
        return None
    m = _BULK_MARGIN[geographic]
    box = (
        float(bounds[near, 0].min() - m),
        float(bounds[near, 1].min() - m),
        float(bounds[near, 2].max() + m),
        float(bounds[near, 3].max() + m),
    )
    label = f"the bulk of the file's parcels (x {_span(box[0], box[2], geographic)}, y " + (
        f"{_span(box[1], box[3], geographic)})"
    )
    return Region(box, label)


def _span(lo: float, hi: float, geographic: bool) -> str:
    return f"[{lo:.4f}, {hi:.4f}]" if geographic else f"[{lo:.0f}, {hi:.0f}]"


def _intersects(bounds: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    minx, miny, maxx, maxy = box
    return (
        (bounds[:, 0] <= maxx)
        & (bounds[:, 2] >= minx)
        & (bounds[:, 1] <= maxy)
        & (bounds[:, 3] >= miny)
    )


def _describe(kind: Kind, b: np.ndarray, crs: CRS, why: str, area_m2: float = 0.0) -> str:
    """The message for boxes ``b`` (k, 4) of one kind: coordinates, tell and fix."""
    name = crs.to_string()
    geographic = bool(crs.is_geographic)
    # how the numbers read: as what they are, not as what the CRS declares
    in_degrees = {"degrees_as_metres": True, "metres_as_degrees": False}.get(kind, geographic)
    rx = _span(float(b[:, 0].min()), float(b[:, 2].max()), in_degrees)
    ry = _span(float(b[:, 1].min()), float(b[:, 3].max()), in_degrees)
    if kind == "swapped" and geographic:
        return (
            f"coordinates look like lat/lon swapped: x in {rx} looks like latitude and y in "
            f"{ry} like longitude ({why}); write x = longitude, y = latitude: {_SWAP_FIX} (a "
            "file exported with EPSG:4326's latitude-first axis order, e.g. from GML or WFS "
            "1.1, is the usual cause)"
        )
    if kind == "swapped":
        return (
            f"coordinates look like easting/northing swapped: x in {rx} looks like a northing "
            f"and y in {ry} like an easting in {name} ({why}); write x = easting, y = "
            f"northing: {_SWAP_FIX}"
        )
    if kind == "degrees_as_metres":
        return (
            f"coordinates look like degrees declared as metres: x in {rx} and y in {ry} look "
            f"like longitude and latitude (a parcel measures {area_m2:.2g} m2 in {name}{why}), "
            f"but {name} is in metres; declare the CRS they are in: "
            "gdf.set_crs('EPSG:4326', allow_override=True), or ogr2ogr -a_srs EPSG:4326 "
            "fixed.gpkg in.gpkg"
        )
    return (
        f"coordinates look like metres declared as degrees: x in {rx} and y in {ry} cannot be "
        f"longitude and latitude (beyond +-180 / +-90) but the CRS is {name} (lon/lat); "
        f"declare the projected CRS they are in{why}: gdf.set_crs('EPSG:326xx', "
        "allow_override=True), or ogr2ogr -a_srs EPSG:326xx fixed.gpkg in.gpkg"
    )


def diagnose(
    geoms: np.ndarray,
    alive: np.ndarray,
    crs: CRS,
    *,
    imagery: Bounds | None = None,
    target: CRS | None = None,
) -> list[Finding]:
    """Parcels whose coordinates show a swapped-axes or wrong-units CRS (see module doc).

    Args:
        geoms: (n,) shapely geometries in the file's declared CRS ``crs``.
        alive: (n,) bool, the rows to look at (others are already rejected).
        crs: the declared CRS.
        imagery: the imagery's footprint (any CRS), the best reference region.
        target: the target projected CRS, if the caller chose one (its UTM zone is a
            reference region for lon/lat files).

    Returns:
        One :class:`Finding` per affected row, by row.
    """
    bounds = shapely.bounds(geoms)  # (n, 4); NaN for missing / empty
    rows_ok = alive & np.isfinite(bounds).all(axis=1)
    ax = np.fmax(np.abs(bounds[:, 0]), np.abs(bounds[:, 2]))
    ay = np.fmax(np.abs(bounds[:, 1]), np.abs(bounds[:, 3]))
    geographic = bool(crs.is_geographic)
    kinds: dict[int, tuple[Kind, str, float]] = {}
    reference = imagery_region(imagery, crs) if imagery is not None else None
    reference = reference or _zone_region(target, crs)

    if geographic:
        for r in np.flatnonzero(rows_ok & (ay > 90) & (ay <= 180) & (ax <= 90)):
            kinds[int(r)] = ("swapped", "y beyond +-90 cannot be a latitude", 0.0)
        metres = rows_ok & ((ax > 180) | (ay > 90))
        why = " (e.g. the UTM zone of the region)"
        if imagery is not None:
            native = (imagery.left, imagery.bottom, imagery.right, imagery.top)
            if _intersects(bounds[metres], native).any():
                why = f" (read as {imagery.crs} they fall inside the imagery)"
        for r in np.flatnonzero(metres):
            kinds.setdefault(int(r), ("metres_as_degrees", why, 0.0))
    else:
        area = shapely.area(geoms)
        degrees = rows_ok & (ax <= 180) & (ay <= 90) & (area < MIN_AREA_M2)
        lonlat = imagery_region(imagery, CRS.from_epsg(4326)) if imagery is not None else None
        for r in np.flatnonzero(degrees):
            inside = lonlat is not None and bool(_intersects(bounds[r : r + 1], lonlat.box)[0])
            why = "; as lon/lat it falls inside the imagery" if inside else ""
            kinds[int(r)] = ("degrees_as_metres", why, float(area[r]))
        if crs.utm_zone is not None:
            swapped_utm = (
                rows_ok
                & ~degrees
                & ((bounds[:, 0] < 0) | (bounds[:, 2] > 1_000_000))
                & (bounds[:, 0] >= 0)
                & (bounds[:, 2] <= _NORTHING_MAX)
                & (bounds[:, 1] >= _EASTING[0])
                & (bounds[:, 3] <= _EASTING[1])
            )
            for r in np.flatnonzero(swapped_utm):
                kinds[int(r)] = ("swapped", "x beyond 0-1000 km is no UTM easting", 0.0)

    rest = rows_ok.copy()
    rest[list(kinds)] = False
    region = reference or _bulk_region(bounds, np.flatnonzero(rest), geographic)
    if region is not None:
        swapped_boxes = bounds[:, [1, 0, 3, 2]]
        maybe = rest & ~_intersects(bounds, region.box) & _intersects(swapped_boxes, region.box)
        if geographic:
            maybe &= ax <= 90
        for r in np.flatnonzero(maybe):
            kinds[int(r)] = ("swapped", f"swapped, they fall inside {region.label}", 0.0)
    return [
        Finding(r, kind, why, _describe(kind, bounds[r : r + 1], crs, why, area))
        for r, (kind, why, area) in sorted(kinds.items())
    ]


def summary(findings: list[Finding], geoms: np.ndarray, crs: CRS) -> str:
    """One message for a whole file: the most common kind, over all its rows' coordinates."""
    kind = Counter(f.kind for f in findings).most_common(1)[0][0]
    chosen = [f for f in findings if f.kind == kind]
    rows = [f.row for f in chosen]
    bounds = shapely.bounds(geoms[rows])
    area = float(np.max(shapely.area(geoms[rows]))) if kind == "degrees_as_metres" else 0.0
    return _describe(kind, bounds, crs, chosen[0].why, area)
