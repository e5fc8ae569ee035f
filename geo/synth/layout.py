"""Landscape layout of a synthetic region: road-bounded blocks, irregular parcels, non-crop land.

CRS: a projected UTM CRS (metres); the region is a square of ``size_px`` x ``size_px`` pixels
of 10 m whose top-left corner is ``origin`` (x, y). Rasters are (H, W), row 0 = north.

Blocks are Voronoi cells of Lloyd-relaxed seeds; their edges are the roads. A block is
farmland (subdivided into parcels), forest, a village or bare land (quarry, building site).
Farmland blocks are cut into parcels by anisotropic Voronoi cells (random direction and
elongation per block, as fields along a road), each inset by a 1.5-4 m margin (hedge, grass
strip); parcels outside 0.2-20 ha are split or dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from shapely import affinity
from shapely.geometry import LineString, MultiPoint, Point, Polygon, box

from geo.synth.noise import smooth_field

PIXEL_M = 10.0
MIN_PARCEL_HA = 0.2
MAX_PARCEL_HA = 20.0

#: Land-cover codes of the layout raster (``Layout.cover``).
COVER_PARCEL, COVER_FOREST, COVER_BUILT, COVER_BARE, COVER_WATER = 0, 1, 2, 3, 4


@dataclass
class Layout:
    """Geometry of a region: parcel polygons (UTM, m), their pixel index map and land cover.

    ``parcel_index``: (H, W) int32, index into ``parcels`` or -1; ``cover``: (H, W) uint8 land
    cover code (COVER_*); ``transform``: Affine of the 10 m grid.
    """

    parcels: list[Polygon]
    block_of: list[int]
    parcel_index: np.ndarray
    cover: np.ndarray
    transform: Affine
    bounds: tuple[float, float, float, float]


def _voronoi_cells(points: np.ndarray, clip: Polygon) -> list[Polygon]:
    cells = shapely.voronoi_polygons(MultiPoint(points), extend_to=clip)
    out = []
    for cell in shapely.get_parts(cells):
        part = cell.intersection(clip)
        if not part.is_empty and part.area > 0:
            out.append(part if isinstance(part, Polygon) else max(part.geoms, key=lambda g: g.area))
    return out


def _points_in(rng: np.random.Generator, poly: Polygon, n: int) -> np.ndarray:
    minx, miny, maxx, maxy = poly.bounds
    pts: list[np.ndarray] = []
    for _ in range(50):
        cand = np.column_stack(
            [rng.uniform(minx, maxx, 4 * n + 8), rng.uniform(miny, maxy, 4 * n + 8)]
        )
        inside = shapely.contains_xy(poly, cand[:, 0], cand[:, 1])
        pts.extend(cand[inside])
        if len(pts) >= n:
            break
    return np.asarray(pts[:n])


def _split(poly: Polygon) -> list[Polygon]:
    """Cut a polygon in two across its long axis."""
    rect = poly.minimum_rotated_rectangle
    xy = np.asarray(rect.exterior.coords)[:4]
    e1, e2 = xy[1] - xy[0], xy[2] - xy[1]
    long_axis = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    c = np.asarray(poly.centroid.coords[0])
    normal = np.array([-long_axis[1], long_axis[0]])
    normal /= np.hypot(*normal)
    far = 1e5
    blade = LineString([c - far * normal, c + far * normal]).buffer(1.0)
    halves = shapely.get_parts(poly.difference(blade))
    return [h for h in halves if isinstance(h, Polygon)]


def _subdivide(rng: np.random.Generator, block: Polygon, mean_ha: float) -> list[Polygon]:
    inner = block.buffer(-5.0, join_style="mitre")
    if inner.is_empty or inner.area < MIN_PARCEL_HA * 1e4:
        return []
    if not isinstance(inner, Polygon):
        inner = max(inner.geoms, key=lambda g: g.area)
    n = max(1, round(inner.area / 1e4 / mean_ha * rng.uniform(0.75, 1.25)))
    if n == 1:
        cells = [inner]
    else:
        angle = rng.uniform(0, 180)
        stretch = rng.uniform(1.3, 2.8)
        c = inner.centroid
        warped = affinity.scale(
            affinity.rotate(inner, -angle, origin=c), 1 / stretch, 1.0, origin=c
        )
        pts = _points_in(rng, warped, n)
        if len(pts) < 2:
            cells = [inner]
        else:
            cells = [
                affinity.rotate(affinity.scale(cell, stretch, 1.0, origin=c), angle, origin=c)
                for cell in _voronoi_cells(pts, warped)
            ]
    out: list[Polygon] = []
    todo = list(cells)
    while todo:
        cell = todo.pop()
        if cell.area > MAX_PARCEL_HA * 1e4 * 0.9:
            todo.extend(_split(cell))
            continue
        inset = cell.buffer(-rng.uniform(1.5, 4.0), join_style="mitre")
        if isinstance(inset, Polygon) and inset.area >= MIN_PARCEL_HA * 1e4 * 1.05:
            out.append(shapely.set_precision(inset, 0.01))
    return out


def make_layout(
    rng: np.random.Generator,
    size_px: int,
    origin: tuple[float, float],
    mean_parcel_ha: float = 2.0,
    min_parcels: int = 0,
) -> Layout:
    """Draw blocks, roads, parcels and non-crop land of a square region.

    Args:
        rng: the layout's random stream.
        size_px: side of the square region in 10 m pixels.
        origin: (x, y) of the top-left corner in the UTM CRS (m).
        mean_parcel_ha: target mean parcel area (ha) before insets and filtering.
        min_parcels: split the largest parcels until there are at least this many.
    """
    x0, y0 = origin
    side = size_px * PIXEL_M
    frame = box(x0, y0 - side, x0 + side, y0)
    transform = Affine(PIXEL_M, 0.0, x0, 0.0, -PIXEL_M, y0)
    n_blocks = max(4, round(frame.area / 1e4 / 45.0))
    seeds = np.column_stack(
        [rng.uniform(x0, x0 + side, n_blocks), rng.uniform(y0 - side, y0, n_blocks)]
    )
    for _ in range(2):  # Lloyd relaxation: blocks of similar size
        cells = _voronoi_cells(seeds, frame)
        seeds = np.array([c.centroid.coords[0] for c in cells])
    blocks = _voronoi_cells(seeds, frame)
    kinds = rng.choice(
        ["farm", "forest", "village", "bare"], size=len(blocks), p=[0.8, 0.12, 0.05, 0.03]
    )
    if len(blocks) >= 6:  # every region has some wood and a hamlet
        order = rng.permutation(len(blocks))
        kinds[order[0]], kinds[order[1]] = "forest", "village"

    parcels: list[Polygon] = []
    block_of: list[int] = []
    for b, (blk, kind) in enumerate(zip(blocks, kinds, strict=True)):
        if kind == "farm":
            cells = _subdivide(rng, blk, mean_parcel_ha * float(rng.lognormal(0.0, 0.5)))
            parcels.extend(cells)
            block_of.extend([b] * len(cells))
    while parcels and len(parcels) < min_parcels:
        big = int(np.argmax([p.area for p in parcels]))
        halves = [h for h in _split(parcels[big]) if h.area >= MIN_PARCEL_HA * 1e4]
        if len(halves) < 2:
            break
        parcels[big : big + 1] = halves
        block_of[big : big + 1] = [block_of[big]] * len(halves)

    shape = (size_px, size_px)
    cover = np.full(shape, COVER_FOREST, dtype=np.uint8)  # hedges and margins
    for code, kind in ((COVER_BUILT, "village"), (COVER_BARE, "bare")):
        geoms = [blk for blk, k in zip(blocks, kinds, strict=True) if k == kind]
        if geoms:
            features.rasterize(geoms, out=cover, transform=transform, default_value=code)
    village = cover == COVER_BUILT
    gardens = smooth_field(rng, shape, 4.0, octaves=2) < -0.4
    cover[village & gardens] = COVER_FOREST
    forest_blocks = [blk for blk, k in zip(blocks, kinds, strict=True) if k == "forest"]
    ponds = []
    for blk in forest_blocks + [blk for blk, k in zip(blocks, kinds, strict=True) if k == "bare"]:
        for p in _points_in(rng, blk.buffer(-60.0), int(rng.integers(0, 3))):
            r = rng.uniform(15, 45)
            ponds.append(affinity.scale(Point(p).buffer(r), rng.uniform(0.6, 1.6), 1.0))
    if ponds:
        features.rasterize(ponds, out=cover, transform=transform, default_value=COVER_WATER)

    parcel_index = np.full(shape, -1, dtype=np.int32)
    if parcels:
        features.rasterize(
            ((g, i) for i, g in enumerate(parcels)), out=parcel_index, transform=transform
        )
    roads = [LineString(np.asarray(blk.exterior.coords)) for blk in blocks]
    road_mask = features.rasterize(
        roads, out_shape=shape, transform=transform, all_touched=True, default_value=1
    ).astype(bool)
    parcel_index[road_mask] = -1
    cover[parcel_index >= 0] = COVER_PARCEL
    cover[road_mask] = COVER_BUILT
    return Layout(
        parcels=parcels,
        block_of=block_of,
        parcel_index=parcel_index,
        cover=cover,
        transform=transform,
        bounds=(x0, y0 - side, x0 + side, y0),
    )


def polygon_area_ha(poly: Polygon) -> float:
    """Area of a UTM polygon in hectares."""
    return float(poly.area) / 1e4
