"""Bad parcel files: geo.parcels.read_parcels / validate_parcels, and parcels off the imagery.

Per-parcel problems become rejects naming the parcel, its row, the file and the fix while the
good parcels go on; whole-file problems (no CRS, wrong units, not UTF-8, a missing column)
raise one error naming the file and the fix.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.ops
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from eval.reliability_cases.base import Context, capture_logs, case, expect, expect_error
from geo.errors import ParcelError, ParcelGeometryError
from geo.parcels import MAX_PARCEL_HA, ParcelSet, read_parcels, validate_parcels
from geo.types import CROPS

UTM = "EPSG:32631"


def _read(ctx: Context, name: str, **kwargs: Any) -> ParcelSet:
    return read_parcels(ctx.fixture("parcels", name), **kwargs)


def _reject(ps: ParcelSet, pid: str, *needles: str) -> str:
    """The reject message of parcel ``pid``; it must name the file and contain ``needles``."""
    rows = ps.rejects[ps.rejects["parcel_id"] == pid]
    expect(len(rows) == 1, f"parcel {pid} is not rejected (rejects: {list(ps.rejects.parcel_id)})")
    message = str(rows["error"].iloc[0])
    expect(f"parcel {pid}" in message, f"reject of {pid} does not name it: {message}")
    expect(ps.source in message, f"reject of {pid} does not name the file: {message}")
    missing = [n for n in needles if n.lower() not in message.lower()]
    expect(not missing, f"reject of {pid} lacks {missing}: {message}")
    return message


def _kept(ps: ParcelSet, *ids: str) -> None:
    have = set(ps.parcels["parcel_id"])
    expect(set(ids) <= have, f"good parcels {sorted(set(ids) - have)} were not kept")
    expect(len(ps.parcels) + len(ps.rejects) > 0, "no row at all came out")


@case("parcels", "bow-tie polygon", "repaired with shapely.make_valid (warning names it), kept")
def bowtie(ctx: Context) -> str:
    with capture_logs() as logs:
        ps = _read(ctx, "bowtie.geojson")
    _kept(ps, "OK-1", "OK-2", "BOWTIE")
    geom = ps.parcels.set_index("parcel_id").geometry["BOWTIE"]
    expect(geom.is_valid and geom.area > 0, f"BOWTIE kept as an invalid geometry: {geom.wkt}")
    warned = [line for line in logs if "BOWTIE" in line and "make_valid" in line]
    expect(bool(warned), "no warning names the repaired parcel")
    return f"kept, {geom.geom_type} of {geom.area / 1e4:.2f} ha; warning names BOWTIE"


@case("parcels", "empty geometry", "null / empty geometry rejected by name, batch goes on")
def empty_geometry(ctx: Context) -> str:
    ps = _read(ctx, "empty_geometry.geojson")
    _kept(ps, "OK-1", "OK-2")
    msg = _reject(ps, "NULL-GEOM", "empty geometry", "draw the field boundary")
    _reject(ps, "EMPTY-GEOM", "empty geometry")
    return f"2 rejected, 2 kept: {msg}"


@case(
    "parcels",
    "multi-part",
    "MultiPolygon kept (area of all parts), polygon part of a collection kept, a line rejected",
)
def multipart(ctx: Context) -> str:
    ps = _read(ctx, "multipart.geojson")
    _kept(ps, "OK-1", "OK-2", "MULTI", "COLLECTION")
    by_id = ps.parcels.set_index("parcel_id")
    one = float(by_id.loc["OK-1", "area_ha"])
    multi = float(by_id.loc["MULTI", "area_ha"])
    expect(by_id.geometry["MULTI"].geom_type == "MultiPolygon", "MULTI lost its parts")
    expect(math.isclose(multi, 2 * one, rel_tol=0.01), f"MULTI is {multi} ha, not 2 x {one}")
    expect(by_id.geometry["COLLECTION"].geom_type == "Polygon", "COLLECTION not reduced")
    _reject(ps, "LINE", "LineString", "Polygon")
    return f"MULTI {multi:.2f} ha (2 parts), COLLECTION -> Polygon, LINE rejected"


@case("parcels", "zero area", "collinear ring and sub-m2 sliver rejected by name")
def zero_area(ctx: Context) -> str:
    ps = _read(ctx, "zero_area.geojson")
    _kept(ps, "OK-1", "OK-2")
    flat = _reject(ps, "FLAT", "redraw")
    _reject(ps, "SLIVER", "zero", "draw the field boundary")
    return f"FLAT and SLIVER rejected: {flat}"


@case("parcels", "giant parcel", f"> {MAX_PARCEL_HA:.0f} ha rejected: split it or check units")
def giant(ctx: Context) -> str:
    ps = _read(ctx, "giant.geojson")
    _kept(ps, "OK-1", "OK-2")
    return _reject(ps, "GIANT", "giant parcel", "split it")


@case("parcels", "missing CRS", "whole file refused: names the file, says how to set the CRS")
def missing_crs(ctx: Context) -> str:
    path = ctx.fixture("parcels", "missing_crs.parquet")
    exc = expect_error(
        ParcelGeometryError, lambda: read_parcels(path), str(path), "no CRS", "set_crs"
    )
    return str(exc)


@case(
    "parcels",
    "lon/lat swapped",
    "all swapped: refused (hint: lat/lon swapped, how to swap the axes) against the "
    "imagery CRS; one swapped: that parcel rejected, named as swapped",
)
def swapped(ctx: Context) -> str:
    path = ctx.fixture("parcels", "swapped_lonlat.geojson")
    expect_error(
        ParcelGeometryError,
        lambda: read_parcels(path, crs=UTM),
        str(path),
        "lat/lon swapped",
        "swap the axes",
    )
    ps = _read(ctx, "one_swapped.geojson")
    _kept(ps, "OK-1", "OK-2")
    msg = _reject(ps, "SWAP-3", "lat/lon swapped", "swap the axes")
    return f"file refused; in a mixed file: {msg}"


@case(
    "parcels",
    "degrees declared as metres",
    "refused: coordinates look like degrees, "
    "set EPSG:4326 (and the reverse: metres declared as degrees)",
)
def wrong_units(ctx: Context) -> str:
    deg = ctx.fixture("parcels", "degrees_as_metres.geojson")
    exc = expect_error(
        ParcelGeometryError, lambda: read_parcels(deg), str(deg), "look like degrees", "EPSG:4326"
    )
    metres = ctx.fixture("parcels", "metres_as_degrees.geojson")
    expect_error(ParcelGeometryError, lambda: read_parcels(metres), str(metres), "look like metres")
    return str(exc)


@case("parcels", "duplicate parcel ids", "later rows rejected naming the first row; first kept")
def duplicates(ctx: Context) -> str:
    ps = _read(ctx, "duplicate_ids.geojson")
    _kept(ps, "OK-1", "OK-2", "DUP")
    rows = ps.rejects
    expect(len(rows) == 2, f"expected 2 rejects, got {list(rows['error'])}")
    dup = rows[rows["parcel_id"] == "DUP"]["error"].iloc[0]
    expect("duplicate parcel_id (first at row 3)" in dup, f"unclear: {dup}")
    first = ps.parcels.set_index("parcel_id").loc["OK-1", "farmer_id"]
    expect(first == "F-1", f"the first OK-1 (farmer F-1) was not the one kept: {first}")
    return dup


@case(
    "parcels",
    "unknown crop names",
    "rejected listing the legend; ' Winter Cereals ' normalised and kept",
)
def unknown_crops(ctx: Context) -> str:
    ps = _read(ctx, "unknown_crops.geojson")
    _kept(ps, "OK-1", "OK-2", "SPACED")
    crop = ps.parcels.set_index("parcel_id").loc["SPACED", "declared_crop"]
    expect(crop == "winter_cereals", f"SPACED read as {crop!r}")
    msg = _reject(ps, "WHEAT", "unknown crop 'wheat'", ", ".join(CROPS))
    _reject(ps, "BLE", "unknown crop")
    _reject(ps, "NO-CROP", "missing declared_crop")
    return msg


@case("parcels", "missing farmer id", "null and blank farmer_id rejected by name")
def missing_farmer(ctx: Context) -> str:
    ps = _read(ctx, "missing_farmer.geojson")
    _kept(ps, "OK-1", "OK-2")
    _reject(ps, "BLANK-FARMER", "missing farmer_id")
    return _reject(ps, "NO-FARMER", "missing farmer_id", "fill in the farmer")


@case(
    "parcels",
    "non-UTF-8 text",
    "latin-1 GeoJSON refused: names the file, says re-save as UTF-8 (or read with encoding=)",
)
def latin1(ctx: Context) -> str:
    path = ctx.fixture("parcels", "latin1.geojson")
    exc = expect_error(
        ParcelError, lambda: read_parcels(path), str(path), "not UTF-8", "re-save", "encoding="
    )
    return str(exc)


@case(
    "parcels",
    "missing required column",
    "refused: names the column, the file and the columns expected",
)
def missing_column(ctx: Context) -> str:
    path = ctx.fixture("parcels", "missing_column.geojson")
    exc = expect_error(
        ParcelError,
        lambda: read_parcels(path),
        str(path),
        "missing column(s) declared_crop",
        "rename the columns",
    )
    return str(exc)


# --------------------------------------------------------------------------------------
# Parcels outside the imagery: no pixel -> health unknown -> the policy holds
# --------------------------------------------------------------------------------------
def _outside_imagery() -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    from affine import Affine

    from geo.composite import Composite
    from geo.types import BANDS, CROP_INDEX, GrowthStage, Season
    from geo.zonal import build_parcel_index
    from scoring.features import farmer_features
    from scoring.policy import PolicyConfig, decide_batch
    from scoring.tables import load_economics
    from vision.assess import assess_parcels
    from vision.health import load_reference_curves

    season, as_of, size = Season(2026), dt.date(2026, 5, 15), 16
    transform = Affine(10.0, 0.0, 600_000.0, 0.0, -10.0, 5_400_000.0)
    inside = box(600_020.0, 5_399_860.0, 600_140.0, 5_399_980.0)
    outside = box(605_000.0, 5_395_000.0, 605_120.0, 5_395_120.0)  # 5 km off the grid
    parcels = gpd.GeoDataFrame(
        {
            "parcel_id": ["P-IN", "P-OUT"],
            "farmer_id": ["F-IN", "F-OUT"],
            "region": ["default", "default"],
            "declared_crop": ["maize", "maize"],
            "declared_area_ha": [1.44, 1.44],
        },
        geometry=[inside, outside],
        crs=UTM,
    )
    parcels["area_ha"] = parcels.geometry.area / 1e4
    index = build_parcel_index(parcels, transform, (size, size))
    t_now = season.dekad_index(as_of)
    data = np.full((36, len(BANDS), size, size), np.nan, np.float32)
    data[: t_now + 1] = 0.12
    data[: t_now + 1, BANDS.index("B08")] = 0.35  # NDVI ~0.5
    observed = np.zeros((36, size, size), bool)
    observed[: t_now + 1] = True
    comp = Composite(data, observed, season.dekads(), transform, UTM, as_of)
    proba = np.full((len(CROPS), size, size), 0.01, np.float32)
    proba[CROP_INDEX["maize"]] = 0.9
    assessment, _ = assess_parcels(
        parcels, comp, proba, reference_curves=load_reference_curves(), index=index
    )
    farmers = pd.DataFrame(
        {
            "farmer_id": ["F-IN", "F-OUT"],
            "region": ["default", "default"],
            "annual_debt_service_eur": [500.0, 500.0],
            "years_with_lender": [4.0, 4.0],
        }
    )
    overlaps = pd.DataFrame(
        columns=[
            "parcel_id",
            "farmer_id",
            "other_parcel_id",
            "other_farmer_id",
            "overlap_ha",
            "overlap_share",
        ]
    )
    stage = GrowthStage.VEGETATIVE
    features = farmer_features(assessment, farmers, overlaps, load_economics(), season, stage)
    previous = pd.DataFrame({"farmer_id": ["F-IN", "F-OUT"], "limit_eur": [800.0, 800.0]})
    decisions = decide_batch(
        features,
        [0.02] * len(features),
        [[] for _ in range(len(features))],
        previous,
        pd.Series(dtype=float),
        stage,
        PolicyConfig(),
    )
    return index, assessment.set_index("parcel_id"), decisions.set_index("farmer_id")


@case(
    "parcels",
    "parcels outside the imagery",
    "listed in ParcelPixels.empty, health "
    "'unknown', observed 0 -> the policy HOLDS the limit for review",
)
def outside_imagery(ctx: Context) -> str:
    index, assessment, decisions = _outside_imagery()
    expect(index.empty == ["P-OUT"], f"ParcelPixels.empty is {index.empty}")
    out: dict[Any, Any] = assessment.loc["P-OUT"].to_dict()
    expect(out["health_class"] == "unknown", f"health of P-OUT is {out['health_class']}")
    expect(out["observed_fraction"] == 0, f"observed_fraction {out['observed_fraction']}")
    held: dict[Any, Any] = decisions.loc["F-OUT"].to_dict()
    expect(held["action"] == "hold" and bool(held["needs_review"]), f"F-OUT: {held['action']}")
    expect(held["limit_eur"] == 800.0, f"held limit moved to {held['limit_eur']}")
    expect("held for review" in held["reasons"][0], f"reason: {held['reasons'][0]}")
    expect("P-OUT" in held["counterfactual"], f"counterfactual: {held['counterfactual']}")
    other = str(decisions.loc["F-IN", "action"])
    expect(other != "hold", "the farmer with imagery was held too")
    return f"F-OUT {held['action']} at EUR {held['limit_eur']:.0f}: {held['reasons'][0]}"


# --------------------------------------------------------------------------------------
# Random geometries (hypothesis)
# --------------------------------------------------------------------------------------
def _geometries(origin: tuple[float, float], unit: float) -> tuple[Any, Any]:
    """(plausible fields, junk geometries) near ``origin``; ``unit``: CRS units per metre."""
    from hypothesis import strategies as st

    x0, y0 = origin
    coord = st.floats(0, 400, allow_nan=False).map(lambda v: v * unit)
    point = st.tuples(coord, coord).map(lambda p: (x0 + p[0], y0 + p[1]))
    side = st.floats(20, 200).map(lambda v: v * unit)
    fields = st.tuples(point, side, side).map(lambda t: box(*t[0], t[0][0] + t[1], t[0][1] + t[2]))
    size = st.sampled_from([0.0, 1e-3, 0.5, 2500.0]).map(lambda v: v * unit)
    odd = st.tuples(point, size, side).map(lambda t: box(*t[0], t[0][0] + t[1], t[0][1] + t[2]))
    junk = st.one_of(
        st.lists(point, min_size=3, max_size=7).map(Polygon),  # self-intersecting, collinear...
        odd,  # zero width, sub-m2 or giant
        st.lists(st.one_of(fields, odd), min_size=2, max_size=3).map(MultiPolygon),  # overlaps
        st.lists(point, min_size=2, max_size=3).map(LineString),
        point.map(Point),
        st.just(Polygon()),
        st.none(),
    )
    return fields, junk


def _clean(value: Any) -> str | None:
    """The id validate_parcels should make of ``value`` (17.0, an int read as float: "17")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def check_random_batch(gdf: gpd.GeoDataFrame) -> None:
    """``validate_parcels`` never raises on per-parcel problems and every input row ends up
    in exactly one of ``parcels`` / ``rejects``; the parcels kept are usable."""
    n = len(gdf)
    ps = validate_parcels(gdf, source="hypothesis")
    rejected = [int(r) for r in ps.rejects["row"]]
    expect(len(set(rejected)) == len(rejected), f"a row is rejected twice: {rejected}")
    expect(all(0 <= r < n for r in rejected), f"reject rows out of range: {rejected}")
    kept = list(ps.parcels["parcel_id"])
    expect(len(set(kept)) == len(kept), f"a parcel id is kept twice: {kept}")
    expect(len(kept) + len(rejected) == n, f"{n} rows -> {len(kept)} kept + {len(rejected)}")
    survivors = {_clean(gdf["parcel_id"].iloc[r]) for r in range(n) if r not in set(rejected)}
    expect(set(kept) == survivors, f"kept {sorted(kept)} but rows left {survivors}")
    if len(ps.parcels):
        geoms = np.asarray(ps.parcels.geometry.values, dtype=object)
        expect(bool(shapely.is_valid(geoms).all()), "an invalid geometry was kept")
        kinds = set(shapely.get_type_id(geoms))
        expect(kinds <= {3, 6}, f"non-polygonal geometry kept: {kinds}")
        area = ps.parcels["area_ha"].to_numpy()
        expect(bool(((area >= 1e-4) & (area <= MAX_PARCEL_HA)).all()), f"areas {area}")
        expect(ps.parcels.crs is not None and ps.parcels.crs.is_projected, "not in UTM")
        expect(set(ps.parcels["declared_crop"]) <= set(CROPS), "an unknown crop was kept")


def check_random_geometries(max_examples: int = 100) -> None:
    """Run :func:`check_random_batch` on hypothesis-generated batches (UTM and lon/lat)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    junk_values = {
        "parcel_id": st.sampled_from([" ", "", None, "P-1", 17.0]),
        "farmer_id": st.sampled_from([" ", "", None, float("nan")]),
        "declared_crop": st.sampled_from([" Maize", "Winter-Cereals", "wheat", "", None]),
        "declared_area_ha": st.sampled_from([0.0, -1.0, float("nan"), None, "abc", "3"]),
    }

    @st.composite
    def batches(draw: Any) -> gpd.GeoDataFrame:
        """1-8 rows: good ones, some with a junk attribute and/or geometry (ids may repeat)."""
        lonlat = draw(st.booleans())
        origin, unit, crs = (
            ((4.4, 48.7), 1.35e-5, "EPSG:4326") if lonlat else ((600_000.0, 5_400_000.0), 1.0, UTM)
        )
        fields, junk = _geometries(origin, unit)
        rows = []
        for _ in range(draw(st.integers(1, 8))):
            row: dict[str, Any] = {
                "parcel_id": f"P-{draw(st.integers(0, 20))}",
                "farmer_id": f"F-{draw(st.integers(0, 3))}",
                "declared_crop": draw(st.sampled_from(CROPS)),
                "declared_area_ha": draw(st.floats(0.1, 50.0)),
                "geometry": draw(fields),
            }
            fault = draw(st.sampled_from(["none", "attribute", "geometry", "both"]))
            if fault in ("attribute", "both"):
                key = draw(st.sampled_from(list(junk_values)))
                row[key] = draw(junk_values[key])
            if fault in ("geometry", "both"):
                row["geometry"] = draw(junk)
            rows.append(row)
        return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batches())
    def prop(gdf: gpd.GeoDataFrame) -> None:
        check_random_batch(gdf)

    prop()


@case(
    "parcels",
    "random geometries (hypothesis)",
    "validate_parcels never raises for "
    "per-parcel problems; each row in exactly one of parcels / rejects",
)
def random_geometries(ctx: Context) -> str:
    check_random_geometries(100)
    return "100 random batches (degenerate, invalid, empty, lines, points, junk attributes)"


# --------------------------------------------------------------------------------------
# Onboarding against the imagery footprint (flows.tasks.load_parcels, a local archive)
# --------------------------------------------------------------------------------------
def _tiny_archive(root: Any) -> Any:
    """A local archive of one 40 x 40 px scene (EPSG:32631, 10 m) and its footprint."""
    from affine import Affine

    from geo.sources.base import SceneData
    from geo.sources.local import LocalArchiveSource, scene_file_name, write_scene

    size = 40
    scene = SceneData(
        scene_id="S2L2A_20260415",
        date=dt.date(2026, 4, 15),
        dn=np.full((10, size, size), 1200, np.uint16),
        scl=np.full((size, size), 4, np.uint8),
        transform=Affine(10.0, 0.0, 600_000.0, 0.0, -10.0, 5_400_000.0),
        crs=UTM,
    )
    write_scene(root / "scenes" / scene_file_name(scene.date), scene)
    return LocalArchiveSource(root).footprint()


def _lonlat_parcels(swap: bool = False) -> gpd.GeoDataFrame:
    """Two fields on the tiny archive's scene and one 5 km off it, in lon/lat."""
    fields = {
        "P-IN-1": box(600_020.0, 5_399_820.0, 600_140.0, 5_399_980.0),
        "P-IN-2": box(600_200.0, 5_399_700.0, 600_380.0, 5_399_900.0),
        "P-OFF": box(605_000.0, 5_395_000.0, 605_150.0, 5_395_150.0),
    }
    utm = gpd.GeoSeries(list(fields.values()), crs=UTM).to_crs("EPSG:4326")
    geoms = [shapely.ops.transform(lambda x, y: (y, x), g) if swap else g for g in utm]
    return gpd.GeoDataFrame(
        {
            "parcel_id": list(fields),
            "farmer_id": ["F-1", "F-2", "F-3"],
            "declared_crop": ["maize", "maize", "sunflower"],
            "declared_area_ha": [1.9, 3.6, 2.25],
        },
        geometry=geoms,
        crs="EPSG:4326",
    )


@case(
    "parcels",
    "onboarding: parcels off the archive's imagery",
    "load_parcels gets the local archive's footprint: a parcel off it is rejected naming "
    "it and the fix, the others go on; a lon/lat-swapped file is refused as 'lat/lon swapped'",
)
def onboarding_off_imagery(ctx: Context) -> str:
    from flows.tasks import load_parcels

    footprint = _tiny_archive(ctx.tmp / "archive")
    expect(footprint is not None, "the local archive gave no footprint")
    farmers = ctx.tmp / "farmers.csv"
    pd.DataFrame(
        {
            "farmer_id": ["F-1", "F-2", "F-3"],
            "annual_debt_service_eur": [500.0, 500.0, 500.0],
            "years_with_lender": [4, 4, 4],
        }
    ).to_csv(farmers, index=False)
    path = ctx.tmp / "parcels.geojson"
    _lonlat_parcels().to_file(path, driver="GeoJSON")
    with capture_logs() as logs:
        board = load_parcels.fn(path, farmers, imagery=footprint)
    kept = sorted(board.parcels["parcel_id"])
    expect(kept == ["P-IN-1", "P-IN-2"], f"kept {kept}")
    ps = ParcelSet(board.parcels, board.rejects, str(path))
    msg = _reject(ps, "P-OFF", "wholly outside the imagery", "add imagery that covers it")
    expect(any("P-OFF" in line and "rejected" in line for line in logs), "no warning names it")
    swapped = ctx.tmp / "swapped.geojson"
    _lonlat_parcels(swap=True).to_file(swapped, driver="GeoJSON")
    expect_error(
        ParcelGeometryError,
        lambda: load_parcels.fn(swapped, farmers, imagery=footprint),
        str(swapped),
        "lat/lon swapped",
        "swap the axes",
    )
    return f"2 kept; {msg}; swapped file refused as lat/lon swapped"
