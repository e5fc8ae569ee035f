"""Offline map layers for the review app, rendered from the run's cached composites.

The base layers are the season's own latest composite (``out_dir/cache/composite-YYYYMMDD-*.npz``,
the one with the latest date): true colour and NDVI of the latest clear observation, reprojected
to EPSG:3857 (Web Mercator) so Leaflet's ``imageOverlay`` lines them up with the parcel outlines
exactly. They are rendered once per composite and cached as PNG in ``out_dir/cache/review/``
(in memory if that folder is not writable). A farmer's per-pixel NDVI of one dekad is cut to
the farmer's parcels' bounds (plus a margin), transparent outside the parcels, and kept in a
small in-memory LRU.

Frames: composites are (T, C, H, W) reflectance 0-1 on a UTM grid (metres); images handed to
the browser are (H, W, 4) RGBA PNG in EPSG:3857 with their [[south, west], [north, east]]
bounds in degrees.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import geopandas as gpd
import matplotlib
import numpy as np
from affine import Affine
from rasterio.features import geometry_mask
from rasterio.warp import Resampling

from flows.report import _to_mercator, latest_ndvi, true_colour
from geo.composite import Composite
from geo.errors import ImageryError
from geo.indices import ndvi

matplotlib.use("Agg")
from matplotlib import colormaps  # noqa: E402
from matplotlib import image as mpimg  # noqa: E402

log = logging.getLogger(__name__)

#: NDVI colour scale (same as the static report): RdYlGn over 0 .. NDVI_MAX.
NDVI_CMAP: Final[str] = "RdYlGn"
NDVI_MAX: Final[float] = 0.9
#: Margin around a farmer's parcels in the per-dekad NDVI image, metres.
MARGIN_M: Final[float] = 40.0
_LRU_SIZE: Final[int] = 128
#: Bumped when the rendering changes, so PNGs cached on disk by an older version are not reused.
_RENDER_VERSION: Final[int] = 2

Bounds = list[list[float]]


@dataclass(frozen=True)
class Layer:
    """A rendered PNG and where it lies: [[south, west], [north, east]] in degrees."""

    png: bytes
    bounds: Bounds


@dataclass
class _Scene:
    """What the app keeps of a composite: the NDVI stack and the grid, not all 10 bands."""

    path: Path
    ndvi: np.ndarray  # (T, H, W) float32, NaN where no value
    dates: list[dt.date]
    transform: Affine
    crs: str
    as_of: dt.date


def png_bytes(rgba: np.ndarray) -> bytes:
    """Encode an (H, W, 3|4) float 0-1 image as PNG."""
    buf = io.BytesIO()
    mpimg.imsave(buf, np.clip(rgba, 0.0, 1.0), format="png")
    return buf.getvalue()


def ndvi_rgba(values: np.ndarray, alpha: np.ndarray | float = 1.0) -> np.ndarray:
    """(H, W) NDVI -> (H, W, 4) RGBA on the report's scale; transparent where NaN."""
    rgba = colormaps[NDVI_CMAP](np.clip(np.nan_to_num(values, nan=0.0) / NDVI_MAX, 0, 1))
    rgba[..., 3] = np.where(np.isfinite(values), alpha, 0.0)
    return rgba.astype(np.float32)


def _grid(transform: Affine, crs: str, h: int, w: int, as_of: dt.date) -> Composite:
    """A one-step, one-band Composite carrying only a grid, for ``_to_mercator``."""
    return Composite(
        data=np.zeros((1, 1, h, w), dtype=np.float32),
        observed=np.zeros((1, h, w), dtype=bool),
        dates=[as_of],
        transform=transform,
        crs=crs,
        as_of=as_of,
    )


def latest_composite_path(cache_dir: Path) -> Path | None:
    """The cached composite with the latest as-of date (newest file on a tie), or None."""
    found = []
    for path in cache_dir.glob("composite-*.npz"):
        parts = path.stem.split("-")
        try:
            day = dt.datetime.strptime(parts[1], "%Y%m%d").date()
        except (IndexError, ValueError):
            continue
        found.append((day, path.stat().st_mtime_ns, path))
    return max(found)[2] if found else None


class ImageryLayers:
    """Base layers and per-farmer NDVI images from a run's composite cache.

    Args:
        cache_dir: where the season flow cached its composites (``out_dir/cache``).
    """

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.png_dir = self.cache_dir / "review"
        self._lock = threading.Lock()
        self._scene: _Scene | None = None
        self._base: dict[tuple[str, str], Layer] = {}
        self._lru: OrderedDict[tuple[str, str, str], Layer] = OrderedDict()

    def composite_path(self) -> Path:
        """The composite the layers come from.

        Raises:
            ImageryError: no composite is cached (the run kept no imagery).
        """
        path = latest_composite_path(self.cache_dir)
        if path is None:
            raise ImageryError(
                f"no composite cached in {self.cache_dir} (composite-YYYYMMDD-*.npz); re-run the "
                "season with the default cache_dir so the map has imagery"
            )
        return path

    def _load(self) -> _Scene:
        path = self.composite_path()
        with self._lock:
            if self._scene is None or self._scene.path != path:
                comp = Composite.from_npz(path)
                self._scene = _Scene(
                    path=path,
                    ndvi=ndvi(comp.data, axis=1),
                    dates=list(comp.dates),
                    transform=comp.transform,
                    crs=comp.crs,
                    as_of=comp.as_of,
                )
                self._render_base(comp, path)
                log.info("review imagery from %s (as of %s)", path.name, comp.as_of)
            return self._scene

    def as_of(self) -> dt.date:
        """The as-of date of the composite behind the layers."""
        return self._load().as_of

    def dekads(self) -> list[dt.date]:
        """Dekads of the composite with any value, up to its as-of date."""
        scene = self._load()
        have = np.isfinite(scene.ndvi).any(axis=(1, 2))
        return [d for d, ok in zip(scene.dates, have, strict=True) if ok and d <= scene.as_of]

    # -- base layers --------------------------------------------------------------------------
    def base_layer(self, kind: str) -> Layer:
        """``"true_colour"`` or ``"ndvi"`` of the latest composite, in EPSG:3857.

        Raises:
            KeyError: unknown kind. ImageryError: no composite.
        """
        if kind not in ("true_colour", "ndvi"):
            raise KeyError(kind)
        path = self.composite_path()
        key = (path.name, kind)
        with self._lock:
            if key in self._base:
                return self._base[key]
            png_file = self.png_dir / f"{path.stem}-{kind}-v{_RENDER_VERSION}.png"
            meta_file = self.png_dir / f"{path.stem}-bounds-v{_RENDER_VERSION}.json"
            if png_file.exists() and meta_file.exists():
                layer = Layer(png_file.read_bytes(), json.loads(meta_file.read_text()))
                self._base[key] = layer
                return layer
        self._load()
        with self._lock:
            return self._base[key]

    def _render_base(self, comp: Composite, path: Path) -> None:
        """Render both base layers of ``comp`` (called with the lock held)."""
        inside = np.ones(comp.shape[-2:] + (1,), dtype=np.float32)
        rgb = true_colour(comp)
        seen = (rgb > 0).any(axis=2, keepdims=True).astype(np.float32)  # never observed: clear
        rgb, bounds = _to_mercator(np.concatenate([rgb, seen], axis=2), comp)
        nd, _ = _to_mercator(
            np.dstack([np.nan_to_num(latest_ndvi(comp), nan=-9.0), inside[..., 0]]),
            comp,
            Resampling.nearest,
        )
        nd_values = np.where((nd[..., 1] > 0.5) & (nd[..., 0] > -2), nd[..., 0], np.nan)
        layers = {
            "true_colour": Layer(png_bytes(np.clip(rgb, 0, 1)), bounds),
            "ndvi": Layer(png_bytes(ndvi_rgba(nd_values)), bounds),
        }
        stem = path.stem
        for kind, layer in layers.items():
            self._base[(path.name, kind)] = layer
        try:
            self.png_dir.mkdir(parents=True, exist_ok=True)
            for kind, layer in layers.items():
                (self.png_dir / f"{stem}-{kind}-v{_RENDER_VERSION}.png").write_bytes(layer.png)
            (self.png_dir / f"{stem}-bounds-v{_RENDER_VERSION}.json").write_text(json.dumps(bounds))
        except OSError as exc:
            log.warning("cannot cache map layers in %s (%s); kept in memory", self.png_dir, exc)

    # -- per-farmer NDVI ----------------------------------------------------------------------
    def farmer_ndvi(self, key: str, parcels: gpd.GeoDataFrame, dekad: dt.date) -> Layer:
        """Per-pixel NDVI of ``dekad`` over ``parcels`` (UTM), clipped to their bounds.

        Pixels outside the parcels are transparent. ``key`` names the farmer for the cache.

        Raises:
            ValueError: ``dekad`` is not a dekad of the composite up to its as-of date, or the
                parcels lie outside the composite.
        """
        scene = self._load()
        cache_key = (scene.path.name, key, dekad.isoformat())
        with self._lock:
            if cache_key in self._lru:
                self._lru.move_to_end(cache_key)
                return self._lru[cache_key]
        if dekad not in scene.dates or dekad > scene.as_of:
            raise ValueError(
                f"dekad {dekad} is not in the composite up to {scene.as_of}; pick one of the "
                "season's dekad start dates (1st, 11th, 21st) up to that date"
            )
        t = scene.dates.index(dekad)
        if parcels.crs is not None and str(parcels.crs) != str(scene.crs):
            parcels = parcels.to_crs(scene.crs)
        minx, miny, maxx, maxy = parcels.total_bounds
        h, w = scene.ndvi.shape[1:]
        inv = ~scene.transform
        c0, r0 = inv @ (minx - MARGIN_M, maxy + MARGIN_M)
        c1, r1 = inv @ (maxx + MARGIN_M, miny - MARGIN_M)
        c0, c1 = sorted((c0, c1))
        r0, r1 = sorted((r0, r1))
        c0, r0 = max(int(math.floor(c0)), 0), max(int(math.floor(r0)), 0)
        c1, r1 = min(int(math.ceil(c1)), w), min(int(math.ceil(r1)), h)
        if c1 <= c0 or r1 <= r0:
            raise ValueError("the farmer's parcels lie outside the season's composite")
        win_t = scene.transform @ Affine.translation(c0, r0)
        values = scene.ndvi[t, r0:r1, c0:c1]
        inside = geometry_mask(
            [g for g in parcels.geometry if g is not None and not g.is_empty],
            out_shape=values.shape,
            transform=win_t,
            invert=True,
            all_touched=False,  # pixel centres inside, as geo.zonal counts them
        )
        rgba = ndvi_rgba(np.where(inside, values, np.nan), alpha=0.9)
        merc, bounds = _to_mercator(
            rgba,
            _grid(win_t, scene.crs, values.shape[0], values.shape[1], scene.as_of),
            Resampling.nearest,
        )
        layer = Layer(png_bytes(merc), bounds)
        with self._lock:
            self._lru[cache_key] = layer
            while len(self._lru) > _LRU_SIZE:
                self._lru.popitem(last=False)
        return layer
