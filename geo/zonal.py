"""Zonal statistics: which pixels belong to which parcel, and per-parcel means and fractions.

Frames: parcels and rasters share one CRS (UTM, metres); a raster grid is a north-up
``transform`` (pixel corners) and ``shape`` (H, W). A pixel belongs to a parcel when its
centre falls inside the polygon, so overlapping parcels both get their shared pixels. Pixels
are addressed by flat index ``row * W + col``. Value arrays are (..., H, W) (e.g. (T, C, H, W)
composites or (K, H, W) class probabilities); results are (n_parcels, ...), in the parcels'
order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from rasterio.features import geometry_mask, rasterize

from geo.errors import ImageryError, ParcelError

__all__ = [
    "ParcelPixels",
    "build_parcel_index",
    "grid_parcel_index",
    "parcel_class_fractions",
    "parcel_mean",
    "parcel_observed_fraction",
    "parcel_proba_mean",
    "rasterize_parcels",
]

log = logging.getLogger(__name__)

#: Gathered values per chunk in :func:`parcel_mean` (bounds its temporary memory).
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True, eq=False)
class ParcelPixels:
    """The pixels of each parcel on one grid (a CSR-style ragged array).

    Attributes:
        parcel_ids: the n parcel ids, in the order of the parcels frame.
        offsets: (n + 1,) int64; parcel i owns ``pixels[offsets[i]:offsets[i + 1]]``.
        pixels: flat pixel indices ``row * W + col`` (int64), ascending within a parcel.
        interior: bool aligned with ``pixels``: the pixel's 3x3 neighbourhood lies wholly
            inside the parcel (not a mixed edge pixel).
        shape: the grid's (H, W).
        empty: ids of parcels with no pixel (outside the grid or smaller than a pixel).
    """

    parcel_ids: list[str]
    offsets: np.ndarray
    pixels: np.ndarray
    interior: np.ndarray
    shape: tuple[int, int]
    empty: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.parcel_ids)

    @property
    def counts(self) -> np.ndarray:
        """(n,) int64 number of pixels of each parcel."""
        return np.diff(self.offsets)

    @property
    def segments(self) -> np.ndarray:
        """(len(pixels),) int64: the parcel position each entry of ``pixels`` belongs to."""
        return np.repeat(np.arange(len(self.parcel_ids), dtype=np.int64), self.counts)

    def pixels_of(self, parcel_id: str) -> np.ndarray:
        """Flat pixel indices of one parcel.

        Raises:
            ParcelError: the id is not in the index.
        """
        try:
            i = self.parcel_ids.index(parcel_id)
        except ValueError:
            raise ParcelError(
                f"parcel {parcel_id!r} is not in this pixel index of {len(self)} parcels; "
                "rebuild it with build_parcel_index from the current parcels"
            ) from None
        return self.pixels[self.offsets[i] : self.offsets[i + 1]]

    def interior_only(self, *, fallback: bool = True) -> ParcelPixels:
        """The same index restricted to interior pixels (no mixed edge pixels).

        With ``fallback`` a parcel without any interior pixel (a narrow strip) keeps all its
        pixels instead of becoming empty.
        """
        keep = self.interior.copy()
        if fallback:
            n_interior = np.bincount(self.segments[keep], minlength=len(self))
            keep |= np.repeat(n_interior == 0, self.counts)
        counts = np.bincount(self.segments[keep], minlength=len(self))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        empty = [pid for pid, c in zip(self.parcel_ids, counts, strict=True) if c == 0]
        return ParcelPixels(
            list(self.parcel_ids),
            offsets,
            self.pixels[keep],
            np.ones(int(keep.sum()), dtype=bool),
            self.shape,
            empty,
        )


def _check_grid(transform: Affine, shape: tuple[int, int]) -> None:
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e >= 0:
        raise ImageryError(
            f"grid transform {tuple(transform)[:6]} is not north-up; expected pixel width > 0, "
            "height < 0 and no rotation (warp the raster to a north-up grid first)"
        )
    if len(shape) != 2 or shape[0] <= 0 or shape[1] <= 0:
        raise ImageryError(f"grid shape {shape}; expected (H, W) with H, W > 0")


def build_parcel_index(
    parcels: gpd.GeoDataFrame,
    transform: Affine,
    shape: tuple[int, int],
    *,
    id_column: str = "parcel_id",
) -> ParcelPixels:
    """Map each parcel to the pixels whose centres fall inside it.

    Each parcel is burned on its own window (``rasterio.features.geometry_mask``), so
    overlapping parcels share pixels. Parcels without a pixel (outside the grid, smaller than
    a pixel, empty geometry) get none and are listed in ``empty``.

    Args:
        parcels: polygons in the grid's CRS (metres), with an ``id_column``.
        transform: north-up Affine of the grid (pixel corners).
        shape: grid (H, W).

    Raises:
        ParcelError: ``id_column`` is missing.
        ImageryError: the transform is rotated or not north-up, or the shape is empty.
    """
    _check_grid(transform, shape)
    if id_column not in parcels.columns:
        raise ParcelError(
            f"parcels have no {id_column!r} column (columns: "
            f"{', '.join(map(str, parcels.columns))}); pass id_column= or read them with "
            "geo.parcels.read_parcels"
        )
    height, width = shape
    res_x, res_y = transform.a, -transform.e
    ids = [str(v) for v in parcels[id_column]]
    chunks: list[np.ndarray] = []
    inner: list[np.ndarray] = []
    counts = np.zeros(len(ids), dtype=np.int64)
    for i, geom in enumerate(parcels.geometry.values):
        if geom is None or geom.is_empty:
            continue
        minx, miny, maxx, maxy = geom.bounds
        # Window of pixels whose centres may fall inside, padded by one for the 3x3 test.
        c0 = math.floor((minx - transform.c) / res_x) - 1
        c1 = math.ceil((maxx - transform.c) / res_x) + 1
        r0 = math.floor((transform.f - maxy) / res_y) - 1
        r1 = math.ceil((transform.f - miny) / res_y) + 1
        if c1 <= 0 or r1 <= 0 or c0 >= width or r0 >= height:
            continue
        win_transform = transform @ Affine.translation(c0, r0)
        inside = geometry_mask(
            [geom], out_shape=(r1 - r0, c1 - c0), transform=win_transform, invert=True
        )
        core = inside[1:-1, 1:-1]
        interior = core.copy()
        for dr in (0, 1, 2):
            for dc in (0, 1, 2):
                interior &= inside[dr : dr + core.shape[0], dc : dc + core.shape[1]]
        rows, cols = np.nonzero(core)
        rows += r0 + 1
        cols += c0 + 1
        ok = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        flat = rows[ok].astype(np.int64) * width + cols[ok]
        chunks.append(flat)
        inner.append(interior[core][ok])
        counts[i] = flat.size
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    pixels = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    interior_flags = np.concatenate(inner) if inner else np.zeros(0, dtype=bool)
    empty = [pid for pid, c in zip(ids, counts, strict=True) if c == 0]
    if empty:
        log.info(
            "%d of %d parcels have no pixel centre on the %dx%d grid (first: %s)",
            len(empty),
            len(ids),
            height,
            width,
            ", ".join(empty[:5]),
        )
    return ParcelPixels(ids, offsets, pixels, interior_flags, (int(height), int(width)), empty)


def grid_parcel_index(grid: np.ndarray, n: int | None = None) -> ParcelPixels:
    """The :class:`ParcelPixels` of a raster of parcel numbers (a generated region's truth).

    Args:
        grid: (H, W) int, parcel number 0..n-1 per pixel, -1 outside every parcel.
        n: number of parcels (default ``grid.max() + 1``); ids are ``"0"``..``str(n - 1)``.

    A pixel is interior when its 3x3 neighbourhood has its own number, as
    :func:`build_parcel_index` judges from the polygon; here pixels off the grid count as
    outside, so a parcel cut by the grid edge loses that edge ring too.
    """
    grid = np.asarray(grid)
    h, w = grid.shape
    n = int(grid.max()) + 1 if n is None else int(n)
    flat = grid.ravel()
    inside = np.flatnonzero(flat >= 0)
    order = inside[np.argsort(flat[inside], kind="stable")]  # by parcel, ascending pixels
    counts = np.bincount(flat[inside], minlength=n).astype(np.int64)
    padded = np.pad(grid, 1, constant_values=-1)
    interior = np.ones((h, w), dtype=bool)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            interior &= padded[dr : dr + h, dc : dc + w] == grid
    ids = [str(i) for i in range(n)]
    return ParcelPixels(
        ids,
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        order.astype(np.int64),
        interior.ravel()[order],
        (int(h), int(w)),
        [pid for pid, c in zip(ids, counts, strict=True) if c == 0],
    )


def _flat_values(index: ParcelPixels, values: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    arr = np.asarray(values)
    if arr.ndim < 2 or tuple(arr.shape[-2:]) != index.shape:
        raise ImageryError(
            f"values of shape {arr.shape} do not end with the index grid {index.shape}; "
            "expected (..., H, W) on the grid the parcel index was built for"
        )
    lead = tuple(int(s) for s in arr.shape[:-2])
    return arr.reshape(-1, index.shape[0] * index.shape[1]), lead


def parcel_mean(index: ParcelPixels, values: np.ndarray) -> np.ndarray:
    """NaN-aware mean of ``values`` over each parcel's pixels.

    Args:
        index: from :func:`build_parcel_index`.
        values: (..., H, W) on the index grid, e.g. (T, C, H, W) reflectance or (T, H, W) NDVI;
            NaN = no value. Booleans average to fractions.

    Returns:
        (n_parcels, ...) float64; NaN where a parcel has no pixel or no valid value.

    Raises:
        ImageryError: ``values`` is not on the index grid.
    """
    flat, lead = _flat_values(index, values)
    n = len(index)
    out = np.full((n, flat.shape[0]), np.nan, dtype=np.float64)
    counts = index.counts
    nonempty = np.flatnonzero(counts)
    if nonempty.size == 0 or flat.shape[0] == 0:
        return out.reshape((n, *lead))
    starts = index.offsets[:-1][nonempty]
    floating = np.issubdtype(flat.dtype, np.floating)
    step = max(1, _CHUNK_ELEMENTS // max(1, index.pixels.size))
    for r0 in range(0, flat.shape[0], step):
        gathered = np.take(flat[r0 : r0 + step], index.pixels, axis=1)
        if floating:
            valid = ~np.isnan(gathered)
            sums = np.add.reduceat(np.where(valid, gathered, 0), starts, axis=1, dtype=np.float64)
            n_valid = np.add.reduceat(valid, starts, axis=1, dtype=np.int64)
        else:
            sums = np.add.reduceat(gathered, starts, axis=1, dtype=np.float64)
            n_valid = np.broadcast_to(counts[nonempty], sums.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(n_valid > 0, sums / np.maximum(n_valid, 1), np.nan)
        out[nonempty, r0 : r0 + step] = means.T
    return out.reshape((n, *lead))


def parcel_observed_fraction(index: ParcelPixels, observed: np.ndarray) -> np.ndarray:
    """Share (0-1) of each parcel's pixels flagged in ``observed`` ((..., H, W) bool).

    For a composite's (T, H, W) ``observed`` this is the per-dekad observed fraction
    (n, T); NaN for parcels without pixels. Raises ImageryError off the index grid.
    """
    return parcel_mean(index, np.asarray(observed, dtype=bool))


def parcel_proba_mean(index: ParcelPixels, proba: np.ndarray) -> np.ndarray:
    """Mean class probabilities per parcel: (K, H, W) -> (n, K) float64 (NaN-aware).

    Raises:
        ImageryError: ``proba`` is not (K, H, W) on the index grid.
    """
    arr = np.asarray(proba)
    if arr.ndim != 3:
        raise ImageryError(f"probabilities of shape {arr.shape}; expected (K, H, W)")
    return parcel_mean(index, arr)


def parcel_class_fractions(
    index: ParcelPixels, class_map: np.ndarray, n_classes: int
) -> np.ndarray:
    """Share of each class among each parcel's pixels: (H, W) class map -> (n, K) float64.

    Values outside 0..K-1 (nodata such as -1 or 255, or NaN) are left out of the shares;
    rows sum to 1, or are NaN where a parcel has no classified pixel.

    Raises:
        ImageryError: ``class_map`` is not (H, W) on the index grid.
    """
    arr = np.asarray(class_map)
    if arr.shape != index.shape:
        raise ImageryError(
            f"class map of shape {arr.shape}; expected {index.shape} (the index grid)"
        )
    values = arr.ravel()[index.pixels]
    if np.issubdtype(values.dtype, np.floating):
        ok = np.isfinite(values)
        values = np.where(ok, values, -1)
    classes = values.astype(np.int64)
    ok = (classes >= 0) & (classes < n_classes)
    seg = index.segments
    hist = np.bincount(seg[ok] * n_classes + classes[ok], minlength=len(index) * n_classes).reshape(
        len(index), n_classes
    )
    total = hist.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hist / np.maximum(total, 1), np.nan)


def rasterize_parcels(
    parcels: gpd.GeoDataFrame,
    transform: Affine,
    shape: tuple[int, int],
    values: np.ndarray | pd.Series | Sequence[float] | str | None = None,
    *,
    fill: int | float = 0,
    dtype: str = "int32",
) -> np.ndarray:
    """Burn parcels into an (H, W) raster for maps (``rasterio.features.rasterize``).

    Args:
        parcels: polygons in the grid's CRS.
        values: one value per parcel, or a column name; default 1..n in frame order.
        fill: value of pixels outside every parcel.
        dtype: output dtype.

    Returns:
        (H, W) array; where parcels overlap the later one wins (use
        :func:`build_parcel_index` for statistics, which keeps overlaps).

    Raises:
        ParcelError: ``values`` does not give one value per parcel.
    """
    _check_grid(transform, shape)
    if values is None:
        vals = np.arange(1, len(parcels) + 1)
    elif isinstance(values, str):
        vals = np.asarray(parcels[values])
    else:
        vals = np.asarray(values)
    if len(vals) != len(parcels):
        raise ParcelError(
            f"{len(vals)} values for {len(parcels)} parcels; pass one value per parcel"
        )
    shapes = [
        (geom, val)
        for geom, val in zip(parcels.geometry.values, vals.tolist(), strict=True)
        if geom is not None and not geom.is_empty
    ]
    if not shapes:
        return np.full(shape, fill, dtype=dtype)
    return np.asarray(
        rasterize(shapes, out_shape=shape, transform=transform, fill=fill, dtype=dtype)
    )
