"""Pledged parcels: read, validate, project to UTM, split good parcels from rejects; overlaps.

Frames: parcels come out in a UTM CRS (metres); a file already in a UTM CRS keeps it, anything
else (lon/lat, national grids) is projected to the UTM zone of its centre
(``GeoDataFrame.estimate_utm_crs``) unless a target ``crs`` is given. Areas are hectares
measured in that UTM CRS.

Validation is per parcel and never sinks the batch: each bad parcel becomes one row of
``ParcelSet.rejects`` naming the parcel, its farmer, its row (0-based position in the file),
the file, the problem and the fix (a crop not in the legend: the legend names close to it,
:func:`geo.legend.close_crops`), and is logged, one warning each. Only whole-file problems
raise: a missing file, missing columns, a missing CRS, every parcel's coordinates plainly
wrong for the declared CRS (swapped axes, degrees declared as metres or the reverse: see
:mod:`geo.parcel_crs`), or no parcel at all on the imagery.

When the caller knows the imagery's footprint (``imagery=``, a
:class:`~geo.sources.base.Bounds`), it is the reference that recognises swapped lon/lat, and
parcels lying wholly outside it are listed in ``ParcelSet.outside_imagery`` (kept: they get no
pixel, so their farmers are held for review) with a warning naming them; with
``outside="reject"`` (what onboarding uses) each becomes a reject naming the parcel and the fix.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from geo.errors import ParcelError, ParcelGeometryError
from geo.legend import LegendError, close_crops
from geo.parcel_crs import diagnose, imagery_region, summary
from geo.sources.base import Bounds
from geo.types import CROPS, check_crop

__all__ = [
    "parcels_bounds",
    "MAX_PARCEL_HA",
    "PARCEL_COLUMNS",
    "REJECT_COLUMNS",
    "REQUIRED_COLUMNS",
    "ParcelSet",
    "find_overlaps",
    "read_parcels",
    "reject_records",
    "validate_parcels",
]

log = logging.getLogger(__name__)

#: What to do with parcels wholly outside the imagery footprint: keep them (listed in
#: ``ParcelSet.outside_imagery``; they get no pixel, so their farmers are held for review) or
#: reject them (one reject each, naming the parcel and the fix).
OutsideImagery = Literal["keep", "reject"]

#: Columns every parcel file must have (``region`` is optional, default ``"default"``).
REQUIRED_COLUMNS: tuple[str, ...] = ("parcel_id", "farmer_id", "declared_crop", "declared_area_ha")
#: Columns of ``ParcelSet.parcels``, in order.
PARCEL_COLUMNS: tuple[str, ...] = (
    "parcel_id",
    "farmer_id",
    "region",
    "declared_crop",
    "declared_area_ha",
    "area_ha",
    "geometry",
)
#: Columns of ``ParcelSet.rejects``.
REJECT_COLUMNS: tuple[str, ...] = ("parcel_id", "farmer_id", "row", "file", "error")
#: Larger parcels are rejected as implausible for one field (ha).
MAX_PARCEL_HA = 500.0
#: Smaller parcels are rejected as degenerate (m2).
MIN_PARCEL_M2 = 1.0
DEFAULT_REGION = "default"

_PARQUET = {".parquet", ".geoparquet", ".pq"}
_OGR = {".gpkg", ".geojson", ".json", ".fgb", ".shp"}
_POLYGONAL = ("Polygon", "MultiPolygon")


@dataclass
class ParcelSet:
    """Good parcels and rejected ones from one source.

    Attributes:
        parcels: GeoDataFrame in a UTM CRS with :data:`PARCEL_COLUMNS` (``area_ha`` measured
            in that CRS, hectares), index 0..n-1.
        rejects: DataFrame with :data:`REJECT_COLUMNS`: ``parcel_id`` (``"<row N>"`` when the
            id is missing), ``farmer_id`` (None when missing), ``row`` (0-based position in
            the source), ``file``, ``error``.
        source: the file (or ``"<memory>"``) the parcels came from.
        outside_imagery: ids of parcels lying wholly outside the imagery footprint the
            caller passed (empty when none was passed); kept, or also in ``rejects`` when
            validated with ``outside="reject"``.
    """

    parcels: gpd.GeoDataFrame
    rejects: pd.DataFrame
    source: str = "<memory>"
    outside_imagery: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.parcels)

    @property
    def crs(self) -> CRS | None:
        """The parcels' CRS (UTM)."""
        return self.parcels.crs


def reject_records(rejects: pd.DataFrame) -> list[dict[str, Any]]:
    """Rejects (:data:`REJECT_COLUMNS`) as JSON-ready records, in order: ``parcel_id`` and
    ``farmer_id`` (None when missing), ``file``, ``error`` (the whole message with the fix).
    What ``stages/<stage>/summary.json`` lists under ``rejects``."""
    out = []
    for rec in rejects.to_dict("records"):
        out.append(
            {
                "parcel_id": _as_id(rec.get("parcel_id")),
                "farmer_id": _as_id(rec.get("farmer_id")),
                "file": str(rec.get("file", "")),
                "error": str(rec.get("error", "")),
            }
        )
    return out


def read_parcels(
    path: str | Path,
    *,
    crs: str | None = None,
    imagery: Bounds | None = None,
    outside: OutsideImagery = "keep",
) -> ParcelSet:
    """Read and validate pledged parcels from GeoParquet, GeoPackage, GeoJSON or FlatGeobuf.

    A geometry GEOS cannot build (an unclosed ring, a ring of fewer than 4 points) does not
    sink the file: it is repaired (the ring closed, with a warning naming the parcel) or its
    parcel rejected.

    Args:
        path: the parcel file (``.parquet``/``.geoparquet`` through pyarrow; ``.gpkg``,
            ``.geojson``/``.json``, ``.fgb``, ``.shp`` through pyogrio).
        crs: target projected CRS (e.g. the imagery's ``"EPSG:32631"``); default: the file's
            own UTM CRS, or the UTM zone of the parcels' centre.
        imagery: the imagery's footprint (any CRS), when known: it recognises swapped lon/lat
            and lists parcels outside it (see :func:`validate_parcels`).
        outside: ``"keep"`` parcels wholly outside ``imagery`` (listed) or ``"reject"`` them.

    Returns:
        A :class:`ParcelSet` (see :func:`validate_parcels`).

    Raises:
        ParcelError: the file is missing, unreadable (incl. attribute text that is not
            UTF-8), of an unknown format, or lacks a required column.
        ParcelGeometryError: the file has no CRS, or its coordinates are plainly wrong for its
            CRS (swapped lon/lat, degrees declared as metres or vice versa), or no parcel lies
            on the ``imagery``.
    """
    path = Path(path)
    if not path.is_file():
        raise ParcelError(
            f"parcel file {path} does not exist; expected a GeoParquet or GeoPackage file of "
            f"parcels with columns {', '.join(REQUIRED_COLUMNS)} (check the path)"
        )
    suffix = path.suffix.lower()
    if suffix not in _PARQUET | _OGR:
        raise ParcelError(
            f"parcel file {path}: unknown format {suffix!r}; expected one of "
            f"{', '.join(sorted(_PARQUET | _OGR))} (convert it with ogr2ogr)"
        )
    undecodable: dict[int, str] = {}
    try:
        if suffix in _PARQUET:
            gdf = gpd.read_parquet(path)
        else:
            gdf, undecodable = _read_ogr(path)
    except UnicodeDecodeError as exc:
        raise ParcelError(
            f"parcel file {path}: attribute text is not UTF-8 ({exc}); re-save the file as "
            "UTF-8 (e.g. `iconv -f latin1 -t utf-8`, or QGIS 'Save Features As' with encoding "
            "UTF-8), or read it with geopandas.read_file(path, encoding='latin-1') and pass the "
            "frame to geo.parcels.validate_parcels"
        ) from exc
    except Exception as exc:  # pyarrow / pyogrio raise many types for a bad file
        raise ParcelError(
            f"parcel file {path} cannot be read as {suffix[1:]}: {exc} (check that the file is "
            "complete; GeoParquet needs its 'geo' metadata: write it with "
            "GeoDataFrame.to_parquet)"
        ) from exc
    log.info("read %d parcels from %s", len(gdf), path)
    return validate_parcels(
        gdf,
        source=str(path),
        crs=crs,
        imagery=imagery,
        outside=outside,
        undecodable=undecodable,
    )


def _read_ogr(path: Path) -> tuple[gpd.GeoDataFrame, dict[int, str]]:
    """Read an OGR file; if GEOS cannot build one geometry, decode them one by one.

    Returns the frame and, by row, why a geometry could not be decoded (it is then None).
    An unclosed ring is closed (``shapely.from_wkb(on_invalid="fix")``) with a warning.
    """
    try:
        return gpd.read_file(path, engine="pyogrio"), {}
    except shapely.errors.GEOSException as exc:
        log.warning("%s: a geometry cannot be built (%s); decoding them one by one", path, exc)
    import pyogrio
    from pyogrio.raw import read as read_raw

    frame = pyogrio.read_dataframe(path, read_geometry=False)
    meta, _, wkbs, _ = read_raw(path, columns=[])
    ids = [_as_id(v) for v in frame["parcel_id"]] if "parcel_id" in frame else []
    geoms: list[BaseGeometry | None] = []
    problems: dict[int, str] = {}
    for row, wkb in enumerate(wkbs):
        try:
            geoms.append(shapely.from_wkb(wkb) if wkb is not None else None)
            continue
        except shapely.errors.GEOSException as exc:
            reason = str(exc)
        fixed = shapely.from_wkb(wkb, on_invalid="fix")
        if fixed is None or fixed.is_empty:
            problems[row] = reason
            geoms.append(None)
            continue
        label = (ids[row] if row < len(ids) else None) or f"<row {row}>"
        log.warning(
            "parcel %s (row %d of %s): geometry repaired on reading (%s)", label, row, path, reason
        )
        geoms.append(fixed)
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=meta["crs"]))
    return gdf, problems


def _as_id(value: Any) -> str | None:
    """A clean string id, or None when missing; 17.0 (ints read as floats) becomes "17"."""
    if value is None or (np.ndim(value) == 0 and bool(pd.isna(value))):
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    if isinstance(value, np.floating):
        return _as_id(float(value))
    text = str(value).strip()
    return text or None


def _crop_name(value: Any) -> str | None:
    text = _as_id(value)
    if text is None:
        return None
    return text.lower().replace(" ", "_").replace("-", "_")


def _polygonal_part(geom: BaseGeometry) -> BaseGeometry | None:
    """The Polygon / MultiPolygon part of ``geom`` (from collections), or None."""
    if geom.geom_type in _POLYGONAL:
        return geom
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in shapely.get_parts(geom) if g.geom_type in _POLYGONAL]
        polys = [p for g in parts for p in shapely.get_parts(g)]
        if polys:
            merged = shapely.union_all(polys)
            if merged.geom_type in _POLYGONAL:
                return merged
    return None


class _Rejects:
    """Collects the first problem of each row."""

    def __init__(self, source: str, ids: list[str | None], farmers: list[str | None]) -> None:
        self.source = source
        self.ids = ids
        self.farmers = farmers
        self.rows: dict[int, str] = {}

    def label(self, row: int) -> str:
        pid = self.ids[row]
        return pid if pid is not None else f"<row {row}>"

    def add(self, row: int, problem: str) -> None:
        if row not in self.rows:
            self.rows[row] = f"parcel {self.label(row)} (row {row} of {self.source}): {problem}"

    def alive(self, n: int) -> np.ndarray:
        ok = np.ones(n, dtype=bool)
        ok[list(self.rows)] = False
        return ok

    def frame(self) -> pd.DataFrame:
        rows = sorted(self.rows)
        return pd.DataFrame(
            {
                "parcel_id": [self.label(r) for r in rows],
                "farmer_id": [self.farmers[r] for r in rows],
                "row": np.asarray(rows, dtype=np.int64),
                "file": [self.source] * len(rows),
                "error": [self.rows[r] for r in rows],
            },
            columns=list(REJECT_COLUMNS),
        )


def _target_crs(crs: str | None, source: str) -> CRS | None:
    if crs is None:
        return None
    try:
        target = CRS.from_user_input(crs)
    except CRSError as exc:
        raise ParcelError(
            f"{source}: target CRS {crs!r} is not a CRS ({exc}); pass e.g. 'EPSG:32631'"
        ) from exc
    if not target.is_projected:
        raise ParcelError(
            f"{source}: target CRS {crs!r} is not projected; expected a UTM CRS in metres such "
            "as 'EPSG:32631' (areas are measured in it)"
        )
    return target


def _check_crs(
    geoms: np.ndarray,
    alive: np.ndarray,
    crs: CRS,
    source: str,
    rejects: _Rejects,
    imagery: Bounds | None,
    target: CRS | None,
) -> None:
    """Reject parcels whose coordinates do not fit the declared CRS (swapped axes, wrong
    units: :func:`geo.parcel_crs.diagnose`); raise when every parcel is affected, or when the
    others all lie off the ``imagery`` too (a swapped file whose strays fit nothing)."""
    findings = diagnose(geoms, alive, crs, imagery=imagery, target=target)
    if not findings:
        return
    rest = alive.copy()
    rest[[f.row for f in findings]] = False
    if len(findings) == int(alive.sum()):
        raise ParcelGeometryError(
            f"{source}: every parcel is affected: {summary(findings, geoms, crs)}"
        )
    region = imagery_region(imagery, crs) if imagery is not None else None
    if region is not None and not shapely.intersects(geoms[rest], shapely.box(*region.box)).any():
        raise ParcelGeometryError(
            f"{source}: no parcel lies on {region.label} as the file declares it; "
            f"{len(findings)} of {int(alive.sum())} parcels show why: "
            f"{summary(findings, geoms, crs)}"
        )
    for f in findings:
        rejects.add(f.row, f.message)


def _nonfinite_rows(geoms: np.ndarray) -> np.ndarray:
    """(n,) bool: the geometry has a NaN or infinite coordinate (GEOS cannot handle it)."""
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    out = np.zeros(len(geoms), dtype=bool)
    out[np.unique(index[~np.isfinite(coords).all(axis=1)])] = True
    return out


def _fix_geometries(
    geoms: np.ndarray,
    alive: np.ndarray,
    rejects: _Rejects,
    source: str,
    undecodable: Mapping[int, str],
) -> np.ndarray:
    """Force 2D, repair invalid polygons (keeping polygonal parts) and reject the rest."""
    out = geoms.copy()
    for bad, reason in undecodable.items():
        rejects.add(
            int(bad),
            f"geometry cannot be decoded ({reason}); redraw the field boundary as a closed "
            "polygon ring of at least 4 points",
        )
    nonfinite = _nonfinite_rows(out)
    for nan_row in np.flatnonzero(alive & nonfinite):
        rejects.add(
            int(nan_row),
            "coordinates include NaN or infinite values; fix the broken vertices or redraw "
            "the field boundary",
        )
    missing = shapely.is_missing(out) | shapely.is_empty(out)
    usable = ~missing & ~nonfinite
    simple = np.zeros(len(out), dtype=bool)
    simple[usable] = shapely.is_valid(out[usable]) & ~shapely.has_z(out[usable])
    simple &= np.isin(shapely.get_type_id(out), (3, 6))  # Polygon, MultiPolygon
    for row in np.flatnonzero(rejects.alive(len(out)) & alive & ~simple):
        geom = out[row]
        if geom is None or geom.is_empty:
            rejects.add(int(row), "empty geometry; draw the field boundary or drop the row")
            continue
        if shapely.has_z(geom):
            geom = shapely.force_2d(geom)
        if not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            try:
                repaired = _polygonal_part(shapely.make_valid(geom))
            except shapely.errors.GEOSException as exc:  # make_valid gives up on some rings
                reason, repaired = f"{reason}; make_valid failed: {exc}", None
            if repaired is None or repaired.is_empty:
                rejects.add(
                    int(row),
                    f"invalid geometry ({reason}) with no polygonal part left after "
                    "shapely.make_valid; redraw the field boundary",
                )
                continue
            log.warning(
                "parcel %s (row %d of %s): invalid geometry (%s) repaired with shapely.make_valid",
                rejects.label(int(row)),
                row,
                source,
                reason,
            )
            geom = repaired
        polygonal = _polygonal_part(geom)
        if polygonal is None:
            rejects.add(
                int(row),
                f"geometry is a {geom.geom_type}; expected a Polygon or MultiPolygon of the "
                "field boundary (digitise the field as a polygon)",
            )
            continue
        out[row] = polygonal
    return out


def validate_parcels(
    gdf: gpd.GeoDataFrame,
    *,
    source: str = "<memory>",
    crs: str | None = None,
    imagery: Bounds | None = None,
    outside: OutsideImagery = "keep",
    undecodable: Mapping[int, str] | None = None,
) -> ParcelSet:
    """Validate parcels in memory, project them to UTM and split good parcels from rejects.

    Per parcel (first problem wins; the batch never fails for one parcel): missing
    ``parcel_id``; repeated ``parcel_id`` (later rows rejected); missing ``farmer_id``;
    ``declared_crop`` not in :data:`geo.types.CROPS` (names are lower-cased, spaces and
    hyphens become underscores); ``declared_area_ha`` not a positive number; empty or
    non-polygonal geometry, or one with NaN / infinite coordinates; invalid geometry is
    repaired with ``shapely.make_valid`` (warning logged) and rejected only if no polygon is
    left; coordinates that do not fit the declared CRS (swapped lon/lat or easting/northing,
    degrees declared as metres, metres declared as degrees: :mod:`geo.parcel_crs`); area below
    1 m2 or above :data:`MAX_PARCEL_HA` ha (measured in UTM). A missing ``region`` becomes
    ``"default"``. Parcels wholly outside ``imagery`` are listed in ``ParcelSet.outside_imagery``
    and, by ``outside``, kept (with a warning) or rejected ("lies wholly outside the imagery").

    Args:
        gdf: parcels with :data:`REQUIRED_COLUMNS`, a geometry column and a CRS.
        source: name used in messages (the file path).
        crs: target projected CRS; default: keep a UTM CRS, else the UTM zone of the centre.
        imagery: the imagery's footprint (a ``Bounds`` in any CRS), when known: the reference
            that recognises swapped lon/lat, and the area parcels are checked against.
        outside: ``"keep"`` parcels wholly outside ``imagery`` (they get no pixel: their
            farmers are held for review) or ``"reject"`` them.
        undecodable: rows whose geometry the reader could not decode, with why (rejected).

    Returns:
        :class:`ParcelSet` with ``parcels`` (:data:`PARCEL_COLUMNS`, in UTM), ``rejects`` and
        ``outside_imagery``.

    Raises:
        ParcelError: required columns are missing, or ``crs`` is not a projected CRS.
        ParcelGeometryError: there is no CRS; or every parcel's coordinates are wrong for the
            CRS (swapped lon/lat, metres declared as degrees or the reverse); or the parcels
            fall outside the target UTM zone; or none lies on the ``imagery``.
    """
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf._geometry_column_name not in gdf.columns:
        raise ParcelError(
            f"{source}: parcels are not a GeoDataFrame with a geometry column; read them with "
            "geopandas (or geo.parcels.read_parcels)"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in gdf.columns]
    if missing:
        raise ParcelError(
            f"{source}: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(REQUIRED_COLUMNS)} (optional: region); found "
            f"{', '.join(map(str, gdf.columns))}: rename the columns in the file"
        )
    if gdf.crs is None:
        raise ParcelGeometryError(
            f"{source}: the parcels have no CRS; expected e.g. EPSG:4326 (lon/lat) or the UTM "
            "zone (EPSG:326xx): set it in the file (ogr2ogr -a_srs EPSG:4326 out.gpkg in.gpkg) "
            "or with gdf.set_crs(...) before validating"
        )
    target = _target_crs(crs, source)
    frame = gdf.reset_index(drop=True)
    n = len(frame)
    ids = [_as_id(v) for v in frame["parcel_id"]]
    farmers = [_as_id(v) for v in frame["farmer_id"]]
    rejects = _Rejects(source, ids, farmers)

    seen: dict[str, int] = {}
    for row, pid in enumerate(ids):
        if pid is None:
            rejects.add(row, "missing parcel_id; give every parcel a unique id")
        elif pid in seen:
            rejects.add(
                row,
                f"duplicate parcel_id (first at row {seen[pid]}); give each parcel a unique id "
                "or remove the repeated row",
            )
        else:
            seen[pid] = row
    for row, fid in enumerate(farmers):
        if fid is None:
            rejects.add(row, "missing farmer_id; fill in the farmer who pledged the parcel")
    crops = [_crop_name(v) for v in frame["declared_crop"]]
    for row, crop in enumerate(crops):
        if crop is None:
            rejects.add(row, f"missing declared_crop; expected one of {', '.join(CROPS)}")
            continue
        try:
            check_crop(crop, where="declared_crop")
        except ParcelError as exc:
            rejects.add(row, f"{exc}{_close_hint(crop)}")
    declared = pd.to_numeric(frame["declared_area_ha"], errors="coerce").to_numpy(np.float64)
    for bad_row in np.flatnonzero(~(declared > 0) | ~np.isfinite(declared)):
        rejects.add(
            int(bad_row),
            f"declared_area_ha {frame['declared_area_ha'].iloc[bad_row]!r} is not a positive "
            "number of hectares; fill in the declared area",
        )
    if "region" in frame.columns:
        regions = [_as_id(v) or DEFAULT_REGION for v in frame["region"]]
    else:
        regions = [DEFAULT_REGION] * n

    geoms = _fix_geometries(
        np.asarray(frame.geometry.values, dtype=object),
        rejects.alive(n),
        rejects,
        source,
        undecodable or {},
    )
    _check_crs(geoms, rejects.alive(n), frame.crs, source, rejects, imagery, target)

    alive = rejects.alive(n)
    work = gpd.GeoDataFrame(
        {
            "parcel_id": ids,
            "farmer_id": farmers,
            "region": regions,
            "declared_crop": crops,
            "declared_area_ha": declared,
        },
        geometry=gpd.GeoSeries(geoms, crs=frame.crs),
    )
    good = work[alive]
    utm = target or _utm_for(good, source)
    projected = good.to_crs(utm) if utm is not None and good.crs != utm else good
    _check_projected(projected, utm, target is not None, source, rejects)

    area_m2 = shapely.area(np.asarray(projected.geometry.values, dtype=object))
    for row, a in zip(projected.index, area_m2, strict=True):
        if not np.isfinite(a) or a < MIN_PARCEL_M2:
            rejects.add(
                int(row),
                f"area {a:.3g} m2 is (near) zero; draw the field boundary as a real polygon",
            )
        elif a / 1e4 > MAX_PARCEL_HA:
            rejects.add(
                int(row),
                f"giant parcel of {a / 1e4:.1f} ha, more than the {MAX_PARCEL_HA:.0f} ha "
                "plausible for one field; split it into fields or check the CRS and units",
            )
    projected = projected.assign(area_ha=area_m2 / 1e4)
    keep = rejects.alive(n)[projected.index.to_numpy()]
    off: list[str] = []
    if imagery is not None:
        off_rows, where = _outside_imagery(projected[keep], imagery, source, outside)
        off = [str(rejects.label(r)) for r in off_rows]
        if outside == "reject":
            for r in off_rows:
                rejects.add(
                    r,
                    f"lies wholly outside {where}, so it would get no pixel; check its "
                    "coordinates (CRS, axis order), or add imagery that covers it",
                )
            keep = rejects.alive(n)[projected.index.to_numpy()]
    parcels = projected[keep][list(PARCEL_COLUMNS)].reset_index(drop=True)
    parcels["declared_area_ha"] = parcels["declared_area_ha"].astype(np.float64)
    parcels["area_ha"] = parcels["area_ha"].astype(np.float64)
    reject_frame = rejects.frame()
    _log_rejects(reject_frame, n, source)
    log.info("%s: %d parcels valid in %s", source, len(parcels), parcels.crs.to_string())
    return ParcelSet(parcels=parcels, rejects=reject_frame, source=source, outside_imagery=off)


#: At most this many rejects are logged one by one (all are in ``ParcelSet.rejects``).
LOGGED_REJECTS = 50


def _log_rejects(rejects: pd.DataFrame, n: int, source: str) -> None:
    """One warning per reject (the first :data:`LOGGED_REJECTS`), after a count."""
    if not len(rejects):
        return
    log.warning("%s: %d of %d parcels rejected", source, len(rejects), n)
    for message in rejects["error"].iloc[:LOGGED_REJECTS]:
        log.warning("rejected: %s", message)
    if len(rejects) > LOGGED_REJECTS:
        log.warning(
            "%s: %d more rejects not logged; every one is in the stage's summary.json and the "
            "report",
            source,
            len(rejects) - LOGGED_REJECTS,
        )


def _close_hint(crop: str) -> str:
    """``"; close legend names: ..."`` for an unknown crop, or ``""`` when none is close."""
    try:
        close = close_crops(crop)
    except LegendError as exc:  # the legend file is unreadable: say so, keep the reject
        log.warning("cannot suggest legend names for %r: %s", crop, exc)
        return ""
    if not close:
        return ""
    return f"; close legend names: {', '.join(close)}"


def _outside_imagery(
    parcels: gpd.GeoDataFrame, imagery: Bounds, source: str, outside: OutsideImagery
) -> tuple[list[int], str]:
    """Rows (``parcels``' index: positions in the file) of parcels wholly outside the
    ``imagery`` footprint, warned about (as kept, or as rejected by ``outside``), and the
    footprint in words.

    Raises:
        ParcelGeometryError: not one parcel touches the imagery.
    """
    if len(parcels) == 0:
        return [], ""
    region = imagery_region(imagery, parcels.crs)
    if region is None:
        log.warning("%s: cannot compare the parcels with the imagery footprint %s", source, imagery)
        return [], ""
    geoms = np.asarray(parcels.geometry.values, dtype=object)
    off = ~shapely.intersects(geoms, shapely.box(*region.box))
    if not off.any():
        return [], region.label
    left, bottom, right, top = parcels.total_bounds
    if off.all():
        raise ParcelGeometryError(
            f"{source}: none of the {len(parcels)} parcels lies on {region.label}: the parcels "
            f"span x {left:.0f}..{right:.0f}, y {bottom:.0f}..{top:.0f} in "
            f"{parcels.crs.to_string()}; check the file's CRS and coordinates, or point the "
            "run at imagery of this region"
        )
    ids = [str(p) for p in parcels["parcel_id"][off]]
    shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    fate = (
        "rejected"
        if outside == "reject"
        else "kept: they get no pixel, so their farmers are held for review"
    )
    log.warning(
        "%s: %d parcel(s) lie wholly outside %s: %s; %s: check their coordinates, or add "
        "imagery that covers them",
        source,
        len(ids),
        region.label,
        shown,
        fate,
    )
    return [int(r) for r in parcels.index[off]], region.label


def _utm_for(good: gpd.GeoDataFrame, source: str) -> CRS | None:
    """Keep a UTM CRS; otherwise the UTM zone of the parcels' median position.

    The median (not the centre of the bounds) keeps one stray parcel from moving everyone to
    a wrong zone; the stray one is then rejected by :func:`_check_projected`.
    Returns None when there is no parcel.
    """
    crs = good.crs
    if crs is not None and crs.utm_zone is not None:
        return crs
    if len(good) == 0:
        return crs
    try:
        points = good.geometry.representative_point().to_crs("EPSG:4326")
        middle = Point(float(np.median(points.x)), float(np.median(points.y)))
        return gpd.GeoSeries([middle], crs="EPSG:4326").estimate_utm_crs()
    except (RuntimeError, ValueError, CRSError) as exc:
        raise ParcelGeometryError(
            f"{source}: cannot find the UTM zone of the parcels ({exc}); check the CRS and "
            "coordinates, or pass crs='EPSG:326xx'"
        ) from exc


def _check_projected(
    projected: gpd.GeoDataFrame, utm: CRS | None, explicit: bool, source: str, rejects: _Rejects
) -> None:
    """Reject parcels that fall off the (UTM) target grid: non-finite or far outside the zone."""
    if len(projected) == 0:
        return
    bounds = shapely.bounds(np.asarray(projected.geometry.values, dtype=object))
    finite = np.isfinite(bounds).all(axis=1)
    off = ~finite
    if utm is not None and utm.utm_zone is not None:
        with np.errstate(invalid="ignore"):
            off |= (bounds[:, 0] < 0) | (bounds[:, 2] > 1_000_000)
    if not off.any():
        return
    zone = utm.to_string() if utm is not None else "the target CRS"
    hint = "the parcels' CRS or swapped lon/lat" if explicit else "the parcels' coordinates"
    text = (
        f"lies outside {zone} (easting beyond 0-1000 km); check {hint}, or read the region's "
        "parcels with the CRS of its own UTM zone"
    )
    if off.all():
        raise ParcelGeometryError(f"{source}: every parcel {text}")
    for row in projected.index[off]:
        rejects.add(int(row), text)


def find_overlaps(parcels: gpd.GeoDataFrame, *, min_share: float = 0.05) -> pd.DataFrame:
    """Pairs of parcels of DIFFERENT farmers whose overlap is a notable share of one of them.

    A pair is listed, in both directions, when the overlap is at least ``min_share`` of either
    parcel's area (an STRtree finds candidate pairs; no all-pairs loop).

    Args:
        parcels: frame with ``parcel_id``, ``farmer_id`` and polygons in a projected CRS
            (metres), e.g. ``read_parcels(...).parcels``.
        min_share: smallest overlap share (0-1) of either parcel that is reported.

    Returns:
        DataFrame with ``parcel_id``, ``farmer_id``, ``other_parcel_id``, ``other_farmer_id``,
        ``overlap_ha``, ``overlap_share`` (share of ``parcel_id``'s area, 0-1), sorted by
        ``parcel_id`` then ``other_parcel_id``.

    Raises:
        ParcelError: columns are missing.
        ParcelGeometryError: the CRS is missing or not projected.
    """
    columns = ["parcel_id", "farmer_id", "other_parcel_id", "other_farmer_id"]
    empty = pd.DataFrame(
        {c: pd.Series(dtype=object) for c in columns}
        | {"overlap_ha": pd.Series(dtype=np.float64), "overlap_share": pd.Series(dtype=np.float64)}
    )
    missing = [c for c in ("parcel_id", "farmer_id") if c not in parcels.columns]
    if missing:
        raise ParcelError(
            f"parcels lack column(s) {', '.join(missing)}; pass read_parcels(...).parcels"
        )
    if parcels.crs is None or not parcels.crs.is_projected:
        raise ParcelGeometryError(
            f"find_overlaps needs parcels in a projected CRS (metres), got {parcels.crs}; "
            "pass read_parcels(...).parcels (UTM) or reproject with .to_crs(...)"
        )
    geoms = np.asarray(parcels.geometry.values, dtype=object)
    if len(geoms) < 2:
        return empty
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    farmers = np.asarray([str(f) for f in parcels["farmer_id"]], dtype=object)
    ids = np.asarray([str(p) for p in parcels["parcel_id"]], dtype=object)
    pick = (left < right) & (farmers[left] != farmers[right])
    left, right = left[pick], right[pick]
    if left.size == 0:
        return empty
    overlap = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    area = shapely.area(geoms)
    share_l = overlap / area[left]
    share_r = overlap / area[right]
    keep = (overlap > 0) & (np.maximum(share_l, share_r) >= min_share)
    left, right, overlap = left[keep], right[keep], overlap[keep]
    share_l, share_r = share_l[keep], share_r[keep]
    a = np.concatenate([left, right])
    b = np.concatenate([right, left])
    out = pd.DataFrame(
        {
            "parcel_id": ids[a],
            "farmer_id": farmers[a],
            "other_parcel_id": ids[b],
            "other_farmer_id": farmers[b],
            "overlap_ha": np.concatenate([overlap, overlap]) / 1e4,
            "overlap_share": np.concatenate([share_l, share_r]),
        }
    )
    out = out.sort_values(["parcel_id", "other_parcel_id"], kind="stable").reset_index(drop=True)
    if len(out):
        log.info("%d overlapping pairs of different farmers' parcels", len(out) // 2)
    return out


def parcels_bounds(parcels: gpd.GeoDataFrame, margin_m: float = 30.0) -> Bounds:
    """Bounds of the parcels, widened by ``margin_m`` and snapped outward to the 10 m grid:
    the window the flows read imagery for."""
    left, bottom, right, top = parcels.total_bounds
    snap = 10.0
    return Bounds(
        float(np.floor((left - margin_m) / snap) * snap),
        float(np.floor((bottom - margin_m) / snap) * snap),
        float(np.ceil((right + margin_m) / snap) * snap),
        float(np.ceil((top + margin_m) / snap) * snap),
        crs=str(parcels.crs.to_string()),
    )
