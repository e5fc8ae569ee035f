"""Builders of tiny Sentinel-2 L2A scenes for the loopback server and the imagery source tests.

Every scene covers 64 x 64 px at 10 m in EPSG:32631 (left 600000, top 5400000; about 4.4 E,
48.7 N) with known values: band ``b`` of scene ``s`` holds ``400 + 250*b + 13*s`` plus a
pattern of its pixel position at the band's native resolution (10 m for B02 B03 B04 B08,
20 m for B05 B06 B07 B8A B11 B12 and SCL). The top-left 6 x 6 px are nodata (0 everywhere,
SCL 0); SCL holds vegetation (4) with a cloud block (8, or 9 in the cloudy scene), bare soil
(5) and shadow (3). Scenes whose processing baseline is >= 04.00 are written like newer L2A
products: band files hold DN + 1000 (the BOA offset); the "truth" arrays are always the
harmonised DN a source must return.

Files: one Cloud-Optimised GeoTIFF per band and scene, ``<root>/<scene_id>/<asset>.tif``,
with Earth Search asset names (blue, green, red, rededge1..3, nir, nir08, swir16, swir22,
scl), 20 m bands at 20 m. :func:`read_reference` reads them back with plain rasterio window
reads and ``numpy.repeat`` (nearest) to 10 m: the independent answer both remote sources
must match.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from geo.sources.base import SCENE_BANDS, Bounds
from geo.types import BANDS

CRS_CODE = "EPSG:32631"
LEFT, TOP = 600_000.0, 5_400_000.0
SIZE = 64
RES = 10.0
NODATA_PX = 6
BOA_OFFSET = 1000
#: Bands Sentinel-2 measures at 20 m (SCL too).
TWENTY_M = frozenset({"B05", "B06", "B07", "B8A", "B11", "B12", "SCL"})
#: Earth Search v1 asset key of each band.
EARTH_SEARCH_ASSETS: dict[str, str] = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}


@dataclass(frozen=True)
class SceneSpec:
    """What to generate: the acquisition date, its cloud cover (%), MGRS tiles, baseline."""

    date: dt.date
    cloud_cover: float
    tiles: tuple[str, ...] = ("31UDQ",)
    baseline: str = "03.00"

    @property
    def boa_offset(self) -> int:
        return BOA_OFFSET if float(self.baseline) >= 4.0 else 0


DEFAULT_SPECS: tuple[SceneSpec, ...] = (
    SceneSpec(dt.date(2026, 4, 5), 5.0, tiles=("31UDQ", "31UEQ")),
    SceneSpec(dt.date(2026, 4, 15), 62.0),
    SceneSpec(dt.date(2026, 4, 25), 18.0, baseline="05.11"),
)


@dataclass
class BuiltScene:
    """One generated scene: its spec, truth arrays (harmonised DN at 10 m) and band files."""

    index: int
    spec: SceneSpec
    dn: np.ndarray
    scl: np.ndarray
    band_files: dict[str, Path] = field(default_factory=dict)

    @property
    def date(self) -> dt.date:
        return self.spec.date

    @property
    def scene_id(self) -> str:
        return f"S2L2A_{self.date:%Y%m%d}"

    def item_id(self, tile: str) -> str:
        """Earth Search style item id, e.g. ``S2B_31UDQ_20260405_0_L2A``."""
        return f"S2B_{tile}_{self.date:%Y%m%d}_0_L2A"

    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(self.item_id(t) for t in self.spec.tiles)


@dataclass
class ImagerySet:
    """The generated scenes and their common grid."""

    root: Path
    scenes: list[BuiltScene]

    crs: str = CRS_CODE
    transform: Affine = Affine(RES, 0.0, LEFT, 0.0, -RES, TOP)
    width: int = SIZE
    height: int = SIZE

    @property
    def bounds(self) -> Bounds:
        """The full extent of the grid (64 x 64 px for :func:`build_imagery`)."""
        t = self.transform
        return Bounds(t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f, self.crs)

    @property
    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        b = self.bounds
        west, south, east, north = transform_bounds(
            CRS_CODE, "EPSG:4326", b.left, b.bottom, b.right, b.top, densify_pts=21
        )
        return (west, south, east, north)

    def by_date(self, date: dt.date) -> BuiltScene:
        return next(s for s in self.scenes if s.date == date)

    def by_item(self, item_id: str) -> BuiltScene:
        return next(s for s in self.scenes if item_id in s.item_ids)


def _native(band: str, index: int) -> np.ndarray:
    """The band at its native resolution (uint16), nodata corner included."""
    n = SIZE // 2 if band in TWENTY_M else SIZE
    rows, cols = np.mgrid[0:n, 0:n]
    if band == "SCL":
        scl = np.full((n, n), 4, dtype=np.uint16)
        scl[10:16, 20:32] = 9 if index == 1 else 8
        scl[28:32, :] = 5
        scl[20:24, 0:2] = 3
        arr = scl
    else:
        b = BANDS.index(band)
        pattern = (3 * rows + 5 * cols) % 97 if n == SIZE else (7 * rows + 2 * cols) % 89
        arr = (400 + 250 * b + 13 * index + pattern).astype(np.uint16)
    corner = NODATA_PX if n == SIZE else NODATA_PX // 2
    arr[:corner, :corner] = 0
    return arr


def _to_10m(arr: np.ndarray) -> np.ndarray:
    if arr.shape[0] == SIZE:
        return arr
    return np.repeat(np.repeat(arr, 2, axis=0), 2, axis=1)


def _write_cog(path: Path, arr: np.ndarray, res: float) -> None:
    profile = {
        "driver": "MEM",
        "width": arr.shape[1],
        "height": arr.shape[0],
        "count": 1,
        "dtype": "uint16",
        "crs": CRS.from_user_input(CRS_CODE),
        "transform": Affine(res, 0.0, LEFT, 0.0, -res, TOP),
        "nodata": 0,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open("mem", "w", **profile) as mem:
        mem.write(arr, 1)
        rasterio.shutil.copy(
            mem, path, driver="COG", blocksize="128", compress="DEFLATE", overviews="NONE"
        )


def build_imagery(root: Path, specs: tuple[SceneSpec, ...] = DEFAULT_SPECS) -> ImagerySet:
    """Write the per-band COGs of ``specs`` under ``root``; return their truth and paths."""
    scenes = []
    for index, spec in enumerate(specs):
        native = {band: _native(band, index) for band in SCENE_BANDS}
        dn = np.stack([_to_10m(native[b]) for b in BANDS]).astype(np.uint16)
        scl = _to_10m(native["SCL"]).astype(np.uint8)
        scene = BuiltScene(index=index, spec=spec, dn=dn, scl=scl)
        for band, arr in native.items():
            stored = arr
            if spec.boa_offset and band != "SCL":
                stored = np.where(arr > 0, arr + spec.boa_offset, 0).astype(np.uint16)
            path = root / scene.scene_id / f"{EARTH_SEARCH_ASSETS[band]}.tif"
            _write_cog(path, stored, RES * (2 if band in TWENTY_M else 1))
            scene.band_files[band] = path
        scenes.append(scene)
    return ImagerySet(root=root, scenes=scenes)


def read_reference(
    scene: BuiltScene, bounds: Bounds, resolution: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """(dn (10, H, W) uint16, scl (H, W) uint8) of ``scene`` over ``bounds``, read directly.

    Plain rasterio reads of the band files, 20 m bands repeated 2 x 2 (nearest), the BOA
    offset removed for baselines >= 04.00, zeros outside the scene. ``bounds`` must lie on
    the 10 m grid and ``resolution`` be 10 (the only case this reference needs).
    """
    if resolution != RES or bounds.crs != CRS_CODE:
        raise ValueError("read_reference supports 10 m grids in EPSG:32631 only")
    col0 = (bounds.left - LEFT) / RES
    row0 = (TOP - bounds.top) / RES
    if abs(col0 - round(col0)) > 1e-6 or abs(row0 - round(row0)) > 1e-6:
        raise ValueError(f"{bounds} is not on the 10 m grid of the scenes")
    col0, row0 = round(col0), round(row0)
    width = max(1, math.ceil((bounds.right - bounds.left) / RES - 1e-6))
    height = max(1, math.ceil((bounds.top - bounds.bottom) / RES - 1e-6))
    full = np.zeros((len(SCENE_BANDS), SIZE, SIZE), dtype=np.int32)
    for i, band in enumerate(SCENE_BANDS):
        with rasterio.open(scene.band_files[band]) as src:
            full[i] = _to_10m(src.read(1))
    offset = scene.spec.boa_offset
    if offset:
        bands = full[: len(BANDS)]
        full[: len(BANDS)] = np.where(bands > 0, np.maximum(bands - offset, 1), 0)
    out = np.zeros((len(SCENE_BANDS), height, width), dtype=np.int32)
    r_lo, c_lo = max(row0, 0), max(col0, 0)
    r_hi, c_hi = min(row0 + height, SIZE), min(col0 + width, SIZE)
    if r_hi > r_lo and c_hi > c_lo:
        out[:, r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0] = full[:, r_lo:r_hi, c_lo:c_hi]
    return out[: len(BANDS)].astype(np.uint16), out[len(BANDS)].astype(np.uint8)


def sub_bounds(col: int, row: int, width: int, height: int) -> Bounds:
    """Bounds of a pixel window of the scene grid (col/row of its top-left, 10 m pixels)."""
    left = LEFT + col * RES
    top = TOP - row * RES
    return Bounds(left, top - height * RES, left + width * RES, top, CRS_CODE)
