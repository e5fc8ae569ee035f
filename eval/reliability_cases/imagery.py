"""Bad imagery: geo.sources.local.LocalArchiveSource over an archive of broken files, and
geo.composite.composite_dekads over cloudy, empty, disordered and misaligned scenes.

A bad scene is one :class:`~geo.errors.ImageryError` naming the file (or scene) and the fix;
the caller skips it and the season goes on with the others.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import numpy as np
from affine import Affine

from eval.reliability_cases.base import Context, case, expect, expect_error, fixture_maker
from geo.composite import composite_dekads
from geo.errors import ImageryError
from geo.sources.base import Bounds, SceneData, SceneRef
from geo.sources.local import LocalArchiveSource
from geo.types import Season

UTM = "EPSG:32631"
SEASON = Season(2026)
END = dt.date(2026, 10, 31)
BOUNDS = Bounds(600_000.0, 5_399_920.0, 600_080.0, 5_400_000.0, UTM)
TRANSFORM = Affine(10.0, 0.0, 600_000.0, 0.0, -10.0, 5_400_000.0)
FIX_CORRUPT = "re-download or regenerate the scene"


def _archive(ctx: Context) -> tuple[LocalArchiveSource, dict[str, SceneRef]]:
    root = ctx.fixture("imagery", "archive")
    source = LocalArchiveSource(root)
    refs = source.search(BOUNDS, SEASON.start, SEASON.end)
    return source, {Path(r.href).name: r for r in refs}


def _read_error(ctx: Context, name: str, *needles: str) -> str:
    source, refs = _archive(ctx)
    expect(name in refs, f"{name} is not listed by search (listed: {sorted(refs)})")
    path = Path(refs[name].href)
    exc = expect_error(ImageryError, lambda: source.read(refs[name], BOUNDS), str(path), *needles)
    return str(exc)


def _scene(date: dt.date, *, dn: int = 1000, scl: int = 4, crs: str = UTM) -> SceneData:
    shape = (6, 6)
    return SceneData(
        scene_id=f"S2L2A_{date:%Y%m%d}",
        date=date,
        dn=np.full((10, *shape), dn, np.uint16),
        scl=np.full(shape, scl, np.uint8),
        transform=TRANSFORM,
        crs=crs,
    )


def _season_days(step: int = 5) -> list[dt.date]:
    return [SEASON.start + dt.timedelta(days=d) for d in range(0, 365, step)]


@case(
    "imagery",
    "truncated GeoTIFF",
    "ImageryError naming the file: corrupt or truncated, re-download it",
)
def truncated(ctx: Context) -> str:
    return _read_error(ctx, "S2L2A_20260415.tif", "truncated", FIX_CORRUPT)


@case(
    "imagery",
    "corrupt GeoTIFF (garbage)",
    "listed by its file-name date; read is an ImageryError naming the file and the fix",
)
def corrupt(ctx: Context) -> str:
    return _read_error(ctx, "S2L2A_20260425.tif", "corrupt", FIX_CORRUPT)


@case(
    "imagery",
    "wrong band count",
    "ImageryError: 3 bands, expected 11 (names them), regenerate with write_scene",
)
def wrong_bands(ctx: Context) -> str:
    return _read_error(ctx, "S2L2A_20260505.tif", "3 bands; expected 11", "write_scene")


@case(
    "imagery",
    "all-NaN float bands",
    "ImageryError: float32, expected uint16 DN (never a silent NaN -> 0 cast)",
)
def nan_bands(ctx: Context) -> str:
    return _read_error(ctx, "S2L2A_20260515.tif", "float32", "expected uint16")


@case("imagery", "all-zero bands", "read as nodata; that dekad unobserved (NaN), no crash")
def zero_bands(ctx: Context) -> str:
    source, refs = _archive(ctx)
    zero = source.read(refs["S2L2A_20260525.tif"], BOUNDS)
    good = source.read(refs["S2L2A_20260405.tif"], BOUNDS)
    expect(not zero.dn.any() and not zero.scl.any(), "all-zero file read as data")
    comp = composite_dekads([good, zero], SEASON, END, max_gap=0)
    step = SEASON.dekad_index(zero.date)
    expect(not comp.observed[step].any(), "nodata counted as an observation")
    expect(bool(np.isnan(comp.data[step]).all()), "nodata dekad is not NaN")
    expect(bool(comp.observed[SEASON.dekad_index(good.date)].all()), "good scene lost")
    return f"dekad {step} NaN and unobserved; the good scene's dekad observed"


@case("imagery", "season all cloud", "composite all NaN, observed_fraction 0, no crash")
def all_cloud(ctx: Context) -> str:
    import geopandas as gpd
    from shapely.geometry import box

    from geo.types import CROP_INDEX, CROPS
    from vision.assess import assess_parcels
    from vision.health import load_reference_curves

    scenes = [_scene(d, scl=9) for d in _season_days()]
    comp = composite_dekads(scenes, SEASON, END)
    expect(bool(np.isnan(comp.data).all()), "a cloudy season produced values")
    expect(not comp.observed.any(), "a cloudy pixel counted as observed")
    parcels = gpd.GeoDataFrame(
        {
            "parcel_id": ["P-1"],
            "farmer_id": ["F-1"],
            "region": ["default"],
            "declared_crop": ["maize"],
            "declared_area_ha": [0.36],
            "area_ha": [0.36],
        },
        geometry=[box(600_000.0, 5_399_940.0, 600_060.0, 5_400_000.0)],
        crs=UTM,
    )
    proba = np.full((len(CROPS), 6, 6), 0.01, np.float32)
    proba[CROP_INDEX["maize"]] = 0.9
    rows, _ = assess_parcels(parcels, comp, proba, reference_curves=load_reference_curves())
    row = rows.iloc[0]
    expect(row["observed_fraction"] == 0, f"observed_fraction {row['observed_fraction']}")
    expect(row["health_class"] == "unknown", f"health {row['health_class']}")
    return f"{len(scenes)} cloudy scenes: all NaN, observed_fraction 0, health unknown"


@case(
    "imagery",
    "dates out of order",
    "a list in any order composites the same; an iterator "
    "far out of order is an ImageryError naming the scene; search sorts by date",
)
def out_of_order(ctx: Context) -> str:
    days = _season_days(7)
    scenes = [_scene(d, dn=1000 + 10 * i) for i, d in enumerate(days)]
    shuffled = list(scenes)
    random.Random(7).shuffle(shuffled)
    a = composite_dekads(scenes, SEASON, END)
    b = composite_dekads(shuffled, SEASON, END)
    expect(np.array_equal(a.data, b.data, equal_nan=True), "order changed the composite")
    late = [scenes[0], scenes[10], scenes[1]]  # scenes[1] comes after its dekad was closed
    exc = expect_error(
        ImageryError,
        lambda: composite_dekads(iter(late), SEASON, END),
        scenes[1].scene_id,
        "in date order",
    )
    _, refs = _archive(ctx)
    dates = [r.date for r in refs.values()]
    expect(dates == sorted(dates), f"search not sorted by date: {dates}")
    return f"shuffled list identical; iterator: {exc}"


@case(
    "imagery",
    "scene in another CRS",
    "a file in EPSG:32632 is warped onto the UTM 31N grid; "
    "a SceneData on another grid is an ImageryError naming the scene",
)
def other_crs(ctx: Context) -> str:
    source, refs = _archive(ctx)
    moved = source.read(refs["S2L2A_20260604.tif"], BOUNDS)
    expect(moved.crs == UTM and moved.dn.shape == (10, 8, 8), f"grid {moved.crs} {moved.dn.shape}")
    truth = fixture_maker()._good_scene(dt.date(2026, 6, 4), 6)
    valid = moved.dn[0] > 0
    same = (moved.dn == truth.dn)[:, valid].mean() if valid.any() else 0.0
    expect(valid.mean() > 0.7 and same > 0.7, f"{valid.mean():.0%} valid, {same:.0%} equal")
    other = _scene(dt.date(2026, 6, 10), crs="EPSG:32632")
    exc = expect_error(
        ImageryError,
        lambda: composite_dekads([_scene(dt.date(2026, 6, 1)), other], SEASON, END),
        other.scene_id,
        "EPSG:32632",
        "same Bounds",
    )
    return f"warped: {valid.mean():.0%} valid px, {same:.0%} equal to the source; mixed: {exc}"


@case(
    "imagery",
    "archive with bad files: batch goes on",
    "each bad scene skipped with its error; the readable ones composite",
)
def batch_goes_on(ctx: Context) -> str:
    source, refs = _archive(ctx)
    expect(len(refs) == len(fixture_maker().SCENES), f"listed {sorted(refs)}")
    good, failed = [], []
    for name, ref in refs.items():
        try:
            good.append(source.read(ref, BOUNDS))
        except ImageryError as exc:
            expect(name in str(exc), f"error for {name} does not name it: {exc}")
            failed.append(name)
    expected_bad = {
        "S2L2A_20260415.tif",
        "S2L2A_20260425.tif",
        "S2L2A_20260505.tif",
        "S2L2A_20260515.tif",
    }
    expect(set(failed) == expected_bad, f"failed: {sorted(failed)}")
    comp = composite_dekads(good, SEASON, END)
    observed = sorted({int(t) for t in np.flatnonzero(comp.observed.any(axis=(1, 2)))})
    expect(len(observed) >= 2, f"observed dekads {observed}")
    return f"{len(good)} read, {len(failed)} skipped by name; dekads observed {observed}"
