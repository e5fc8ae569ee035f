"""A local archive of scene files: ``<root>/scenes/*.tif`` (layout in :mod:`geo.sources.base`),
or GDAL virtual rasters ``*.vrt`` in the same layout (a mosaic or a re-gridded view of files
kept elsewhere).

:func:`write_scene` writes one :class:`~geo.sources.base.SceneData` as a Cloud-Optimised
GeoTIFF in the archive layout; :class:`LocalArchiveSource` indexes an archive by date and
footprint and reads only the window a caller asks for.

Frames: files are 10 m pixels in a UTM CRS (metres); arrays are (C, H, W) uint16 L2A digital
numbers in :data:`geo.types.BANDS` order plus the SCL layer (H, W); nodata is 0.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from geo.errors import ImageryError
from geo.sources.base import SCENE_BANDS, Bounds, Grid, SceneData, SceneRef

__all__ = ["LocalArchiveSource", "scene_file_name", "write_scene"]

log = logging.getLogger(__name__)

#: Tag holding the acquisition date (``YYYY-MM-DD``) in every archive file.
DATE_TAG = "ACQUISITION_DATE"
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
_FIX_CORRUPT = (
    "re-download or regenerate the scene (check it with `gdalinfo -checksum`), "
    "or move it out of the archive"
)


def scene_file_name(date: dt.date) -> str:
    """File name of the scene acquired on ``date`` in the archive layout."""
    return f"S2L2A_{date:%Y%m%d}.tif"


def write_scene(path: str | Path, scene: SceneData) -> Path:
    """Write ``scene`` as a Cloud-Optimised GeoTIFF in the archive layout; return its path.

    The file holds 11 uint16 bands: the 10 bands of :data:`geo.types.BANDS` (L2A digital
    numbers, reflectance x 10000) then ``SCL``, with band descriptions set to those names,
    nodata 0, ZSTD compression (level 1) with predictor 2, 512 px internal tiles, no
    overviews, ``scene.crs`` / ``scene.transform`` as its grid and
    the tag ``ACQUISITION_DATE=YYYY-MM-DD`` (plus ``scene.meta`` as extra tags). The file is
    written to a temporary name beside ``path`` and renamed, so readers never see half a file.

    Raises:
        ImageryError: ``scene.dn`` is not (10, H, W) matching ``scene.scl`` (H, W), or the
            file cannot be written.
    """
    path = Path(path)
    n_bands = len(SCENE_BANDS) - 1
    if scene.dn.ndim != 3 or scene.dn.shape[0] != n_bands or scene.dn.shape[1:] != scene.scl.shape:
        raise ImageryError(
            f"scene {scene.scene_id}: dn has shape {scene.dn.shape} and scl {scene.scl.shape}; "
            f"expected dn ({n_bands}, H, W) and scl (H, W) (build SceneData with BANDS order)"
        )
    height, width = scene.shape
    stack = np.empty((len(SCENE_BANDS), height, width), dtype=np.uint16)
    stack[:n_bands] = scene.dn
    stack[n_bands] = scene.scl
    profile = {
        "driver": "MEM",
        "width": width,
        "height": height,
        "count": len(SCENE_BANDS),
        "dtype": "uint16",
        "crs": CRS.from_user_input(scene.crs),
        "transform": scene.transform,
        "nodata": 0,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tif", dir=path.parent)
    os.close(fd)
    try:
        with rasterio.open("scene", "w", **profile) as mem:
            mem.write(stack)
            for i, name in enumerate(SCENE_BANDS, start=1):
                mem.set_band_description(i, name)
            mem.update_tags(**{str(k): str(v) for k, v in scene.meta.items()})
            mem.update_tags(**{DATE_TAG: scene.date.isoformat(), "SCENE_ID": scene.scene_id})
            rasterio.shutil.copy(
                mem,
                tmp_name,
                driver="COG",
                # ZSTD level 1: 3-4x faster to write than DEFLATE for the same size on noisy
                # reflectance; no overviews: the pipeline reads full resolution windows only.
                compress="ZSTD",
                level="1",
                predictor="2",
                blocksize="512",
                overviews="NONE",
            )
        os.replace(tmp_name, path)
    except (RasterioError, CPLE_BaseError, OSError) as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise ImageryError(
            f"scene {scene.scene_id}: cannot write {path}: {exc} "
            "(check the directory exists, is writable and has free space)"
        ) from exc
    log.debug("wrote scene %s to %s", scene.scene_id, path)
    return path


@dataclass(frozen=True)
class _Entry:
    """One archive file as indexed: its date, footprint (file CRS) and CRS."""

    path: Path
    date: dt.date
    bounds: tuple[float, float, float, float] | None
    crs: str | None
    cloud_cover: float | None


def _date_from_name(path: Path) -> dt.date | None:
    match = _NAME_DATE.search(path.stem)
    if match is None:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _same_crs(a: str, b: str) -> bool:
    return bool(CRS.from_user_input(a) == CRS.from_user_input(b))


class LocalArchiveSource:
    """Scenes from ``<root>/scenes/*.tif`` and ``*.vrt`` (see :mod:`geo.sources.base` for the
    layout).

    The archive is indexed on the first :meth:`search` (date from the ``ACQUISITION_DATE``
    tag, else from the file name; footprint from the file's bounds); call :meth:`refresh`
    after adding files. A file whose header cannot be read is still listed when its name
    carries a date (its footprint is then unknown), so that :meth:`read` reports it with an
    :class:`ImageryError` the caller can handle per scene; a file with neither is skipped
    with a warning.
    """

    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._index: list[_Entry] | None = None
        # per file: (size, mtime) when indexed and its entry, so a refresh re-reads only
        # headers of new or changed files
        self._seen: dict[Path, tuple[tuple[int, int], _Entry | None]] = {}

    @property
    def scene_dir(self) -> Path:
        return self.root / "scenes"

    def refresh(self) -> None:
        """Forget the index; the next :meth:`search` rescans ``<root>/scenes`` (headers are
        read again only for files added or changed since)."""
        self._index = None

    def _entries(self) -> list[_Entry]:
        if self._index is not None:
            return self._index
        if not self.scene_dir.is_dir():
            raise ImageryError(
                f"local archive {self.root}: no directory {self.scene_dir}; expected "
                "<root>/scenes/S2L2A_<YYYYMMDD>.tif (write scenes with "
                "geo.sources.local.write_scene or point the source at the archive root)"
            )
        entries = []
        seen: dict[Path, tuple[tuple[int, int], _Entry | None]] = {}
        for path in sorted([*self.scene_dir.glob("*.tif"), *self.scene_dir.glob("*.vrt")]):
            try:
                st = path.stat()
            except OSError:  # removed while listing
                continue
            stamp = (st.st_size, st.st_mtime_ns)
            known = self._seen.get(path)
            entry = known[1] if known is not None and known[0] == stamp else self._index_file(path)
            seen[path] = (stamp, entry)
            if entry is not None:
                entries.append(entry)
        self._seen = seen
        entries.sort(key=lambda e: (e.date, e.path.name))
        log.debug("indexed %d scenes in %s", len(entries), self.scene_dir)
        self._index = entries
        return entries

    @staticmethod
    def _index_file(path: Path) -> _Entry | None:
        name_date = _date_from_name(path)
        try:
            with rasterio.open(path) as src:
                tags = src.tags()
                bounds = (src.bounds.left, src.bounds.bottom, src.bounds.right, src.bounds.top)
                crs = src.crs.to_string() if src.crs else None
        except (RasterioError, CPLE_BaseError) as exc:
            if name_date is None:
                log.warning("skipping %s: unreadable (%s) and no date in its name", path, exc)
                return None
            log.warning("%s is unreadable (%s); listing it by its file name date", path, exc)
            return _Entry(path, name_date, None, None, None)
        date = name_date
        if DATE_TAG in tags:
            try:
                date = dt.date.fromisoformat(tags[DATE_TAG][:10])
            except ValueError:
                log.warning("%s: bad %s tag %r", path, DATE_TAG, tags[DATE_TAG])
        if date is None:
            log.warning("skipping %s: no %s tag and no YYYYMMDD date in its name", path, DATE_TAG)
            return None
        try:
            cloud = float(tags["CLOUD_COVER"]) if "CLOUD_COVER" in tags else None
        except ValueError:
            cloud = None
        return _Entry(path, date, bounds, crs, cloud)

    def footprint(self) -> Bounds | None:
        """The box covering every readable scene, in the first scene's CRS (metres).

        Scenes in another CRS are transformed into it (their box's bounds). None when the
        archive has no ``scenes`` directory or no scene with a readable header, so the
        footprint is unknown.
        """
        if not self.scene_dir.is_dir():
            return None
        boxes = []
        crs = ""
        for e in self._entries():
            if e.bounds is None or e.crs is None:
                continue
            crs = crs or e.crs
            same = _same_crs(e.crs, crs)
            boxes.append(e.bounds if same else transform_bounds(e.crs, crs, *e.bounds))
        if not boxes:
            return None
        box = np.asarray(boxes, dtype=np.float64)
        return Bounds(
            float(box[:, 0].min()),
            float(box[:, 1].min()),
            float(box[:, 2].max()),
            float(box[:, 3].max()),
            crs=crs,
        )

    def search(self, bounds: Bounds, start: dt.date, end: dt.date) -> list[SceneRef]:
        """Scenes whose footprint intersects ``bounds``, acquired in [start, end], by date.

        Raises:
            ImageryError: ``<root>/scenes`` does not exist.
        """
        refs = []
        for e in self._entries():
            if not start <= e.date <= end:
                continue
            if e.bounds is not None and e.crs is not None:
                left, bottom, right, top = e.bounds
                if not _same_crs(e.crs, bounds.crs):
                    left, bottom, right, top = transform_bounds(
                        e.crs, bounds.crs, left, bottom, right, top
                    )
                if not (
                    left < bounds.right
                    and right > bounds.left
                    and bottom < bounds.top
                    and top > bounds.bottom
                ):
                    continue
            refs.append(SceneRef(e.path.stem, e.date, str(e.path), e.cloud_cover))
        return refs

    def read(self, ref: SceneRef, bounds: Bounds, resolution: float = 10.0) -> SceneData:
        """Read ``ref`` over ``bounds`` on a grid of ``resolution`` metres anchored at its corner.

        The output grid has its origin at (``bounds.left``, ``bounds.top``) in ``bounds.crs``,
        ``ceil(width / resolution)`` columns and ``ceil(height / resolution)`` rows. When the
        file shares that CRS, resolution and pixel alignment only the covering window is read;
        pixels outside the file are 0 (nodata). Otherwise the file is warped on the fly
        (``WarpedVRT``, nearest neighbour so SCL classes stay classes).

        Returns:
            SceneData with ``dn`` (10, H, W) uint16 and ``scl`` (H, W) uint8.

        Raises:
            ImageryError: the file is missing, corrupt or truncated, has other than 11 uint16
                bands, or band descriptions that are not ``geo.sources.base.SCENE_BANDS``.
        """
        path = Path(ref.href)
        grid = Grid.of(bounds, resolution)
        width, height, transform = grid.width, grid.height, grid.transform
        if not path.is_file():
            raise ImageryError(
                f"scene {ref.scene_id}: file {path} does not exist "
                "(re-run the search, the archive changed; or restore the file)"
            )
        try:
            with rasterio.open(path) as src:
                self._check_bands(src, path)
                if src.crs is None:
                    raise ImageryError(
                        f"scene {ref.scene_id}: {path} has no CRS; expected a UTM CRS "
                        "(regenerate it with geo.sources.local.write_scene)"
                    )
                stack = self._read_window(src, bounds, transform, width, height)
        except (RasterioError, CPLE_BaseError) as exc:
            raise ImageryError(
                f"scene {ref.scene_id}: cannot read {path} ({exc}); the file looks corrupt or "
                f"truncated: {_FIX_CORRUPT}"
            ) from exc
        return SceneData(
            scene_id=ref.scene_id,
            date=ref.date,
            dn=stack[:-1].astype(np.uint16, copy=False),
            scl=stack[-1].astype(np.uint8),
            transform=transform,
            crs=bounds.crs,
            meta={"source": self.name, "href": str(path)},
        )

    @staticmethod
    def _check_bands(src: rasterio.io.DatasetReader, path: Path) -> None:
        if src.count != len(SCENE_BANDS):
            raise ImageryError(
                f"{path}: {src.count} bands; expected {len(SCENE_BANDS)} "
                f"({', '.join(SCENE_BANDS)}): regenerate the file with "
                "geo.sources.local.write_scene"
            )
        if set(src.dtypes) != {"uint16"}:
            raise ImageryError(
                f"{path}: bands of type {', '.join(sorted(set(src.dtypes)))}; expected uint16 "
                "L2A digital numbers (reflectance x 10000, nodata 0): convert the file (e.g. "
                "reflectance x 10000, NaN -> 0, as uint16) with geo.sources.local.write_scene"
            )
        descriptions = tuple(src.descriptions)
        if any(descriptions) and descriptions != SCENE_BANDS:
            raise ImageryError(
                f"{path}: band descriptions {descriptions}; expected {SCENE_BANDS} in that "
                "order: rewrite the file with the bands reordered (geo.sources.local.write_scene)"
            )

    @staticmethod
    def _read_window(
        src: rasterio.io.DatasetReader,
        bounds: Bounds,
        transform: Affine,
        width: int,
        height: int,
    ) -> np.ndarray:
        """(11, height, width) array of the file over the output grid; 0 outside the file."""
        st = src.transform
        aligned = (
            _same_crs(src.crs.to_string(), bounds.crs)
            and st.b == 0
            and st.d == 0
            and math.isclose(st.a, transform.a)
            and math.isclose(st.e, transform.e)
        )
        col_f = (transform.c - st.c) / st.a if aligned else 0.0
        row_f = (transform.f - st.f) / st.e if aligned else 0.0
        aligned = aligned and abs(col_f - round(col_f)) < 1e-6 and abs(row_f - round(row_f)) < 1e-6
        if not aligned:
            with WarpedVRT(
                src,
                crs=bounds.crs,
                transform=transform,
                width=width,
                height=height,
                resampling=Resampling.nearest,
                nodata=0,
            ) as vrt:
                return np.asarray(vrt.read())
        col0, row0 = round(col_f), round(row_f)
        out = np.zeros((src.count, height, width), dtype=src.dtypes[0])
        # Intersect the wanted window with the file and paste it into the zero canvas.
        c_lo, r_lo = max(col0, 0), max(row0, 0)
        c_hi, r_hi = min(col0 + width, src.width), min(row0 + height, src.height)
        if c_hi > c_lo and r_hi > r_lo:
            window = Window(c_lo, r_lo, c_hi - c_lo, r_hi - r_lo)
            out[:, r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0] = src.read(window=window)
        return out
