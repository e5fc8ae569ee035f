"""Onboarding a lender's files (issue #17 items 2-4): bad farmer lines, a missing farmers
column, and several bad parcels at once.

Through ``flows.tasks.load_parcels`` as the flows run it: a farmer line with a number that
is not one (``1,980``), blank or negative, or a farmer on two lines, is refused naming the
file, line, column, value and fix, and that farmer's parcels are set aside (never scored on
a guess) while the others go on; a missing column refuses the whole file before any imagery
is read; every rejected parcel is logged and listed (summary records, report), a crop not in
the legend with the legend names close to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
from shapely.geometry import box

from eval.reliability_cases.base import Context, capture_logs, case, expect, expect_error
from geo.errors import TableError

UTM = "EPSG:32631"
#: farmer -> (annual_debt_service_eur, years_with_lender) as a lender's spreadsheet wrote it
FARMER_LINES: tuple[tuple[str, str, str], ...] = (
    ("F-001", "180.0", "20"),
    ("F-002", "450.0", "17"),
    ("F-003", '"1,980"', "17"),  # line 4: a thousands separator
    ("F-004", "", "8"),  # line 5: blank debt
    ("F-005", "-300", "3"),  # line 6: negative debt
    ("F-006", "250", "5"),  # lines 7 and 8: twice
    ("F-006", "900", "5"),
    ("F-007", "120", "2"),
)


def _farmers_csv(path: Path, lines: tuple[tuple[str, str, str], ...] = FARMER_LINES) -> Path:
    text = "farmer_id,region,annual_debt_service_eur,years_with_lender\n"
    text += "".join(f"{f},default,{debt},{years}\n" for f, debt, years in lines)
    path.write_text(text, encoding="utf-8")
    return path


def _parcels(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Fields of 1.44 ha in a row near (600 km, 5400 km) of EPSG:32631, as GeoJSON."""
    geoms = [
        box(600_000.0 + 200 * i, 5_399_000.0, 600_120.0 + 200 * i, 5_399_120.0)
        for i in range(len(rows))
    ]
    gpd.GeoDataFrame(rows, geometry=geoms, crs=UTM).to_file(path, driver="GeoJSON")
    return path


def _one_parcel_each(farmers: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "parcel_id": f"P-{f[2:]}",
            "farmer_id": f,
            "declared_crop": "maize",
            "declared_area_ha": 1.44,
        }
        for f in farmers
    ]


@case(
    "tables",
    "farmers table with bad numbers",
    "'1,980', blank, negative debt and a farmer on two lines: each refused naming file, "
    "line, column, value and fix; those farmers' parcels set aside (not scored on a guess), "
    "the others go on",
)
def farmers_bad_numbers(ctx: Context) -> str:
    from flows.tasks import load_parcels

    farmers = _farmers_csv(ctx.tmp / "farmers.csv")
    ids = sorted({f for f, _, _ in FARMER_LINES})
    parcels = _parcels(ctx.tmp / "parcels.geojson", _one_parcel_each(ids))
    board = load_parcels.fn(parcels, farmers)
    bad = {"F-003", "F-004", "F-005", "F-006"}
    scored = set(board.parcels["farmer_id"])
    expect(scored == set(ids) - bad, f"parcels of farmers {sorted(scored)} go on to scoring")
    expect(
        set(board.farmers["farmer_id"]) == set(ids) - bad,
        f"farmers accepted: {sorted(board.farmers['farmer_id'])}",
    )
    errors = " | ".join(map(str, board.rejects["error"]))
    for needle in (
        f"{farmers} line 4, column annual_debt_service_eur: '1,980' is not a number",
        f"{farmers} line 5, column annual_debt_service_eur is blank",
        f"{farmers} line 6, column annual_debt_service_eur: '-300' is negative",
        "'F-006' appears on lines 7, 8",
        "P-003",
    ):
        expect(needle in errors, f"no reject says {needle!r}: {errors[:600]}")
    debt = board.farmers.set_index("farmer_id")["annual_debt_service_eur"]
    expect(float(debt["F-001"]) == 180.0, f"F-001's debt read as {debt['F-001']}")
    first = next(e for e in board.rejects["error"] if "line 4" in str(e))
    return f"4 farmers refused, 3 go on; {first}"


@case(
    "tables",
    "farmers table missing a column",
    "refused at onboarding, before any imagery: TableError naming the file, the column and "
    "the columns expected",
)
def farmers_missing_column(ctx: Context) -> str:
    from flows.tasks import load_parcels

    farmers = ctx.tmp / "farmers.csv"
    farmers.write_text("farmer_id,region,years_with_lender\nF-001,default,20\n", encoding="utf-8")
    parcels = _parcels(ctx.tmp / "parcels.geojson", _one_parcel_each(["F-001"]))
    exc = expect_error(
        TableError,
        lambda: load_parcels.fn(parcels, farmers),
        str(farmers),
        "annual_debt_service_eur",
        "years_with_lender",
    )
    return str(exc)


@case(
    "parcels",
    "two bad parcels, both named",
    "a giant parcel and a 'common_soft_wheat' one: both logged and listed (summary records, "
    "report), the crop with the legend names close to it (winter_cereals)",
)
def two_bad_parcels(ctx: Context) -> str:
    import pandas as pd

    from flows.tasks import load_parcels

    rows = _one_parcel_each(["F-001", "F-002", "F-003"])
    rows[1]["declared_crop"] = "common_soft_wheat"
    parcels = ctx.tmp / "parcels.geojson"
    geoms = [
        box(600_000.0, 5_399_000.0, 600_120.0, 5_399_120.0),
        box(600_200.0, 5_399_000.0, 600_320.0, 5_399_120.0),
        box(601_000.0, 5_390_000.0, 609_000.0, 5_398_000.0),  # 6400 ha: giant
    ]
    gpd.GeoDataFrame(rows, geometry=geoms, crs=UTM).to_file(parcels, driver="GeoJSON")
    farmers = _farmers_csv(ctx.tmp / "farmers.csv", FARMER_LINES[:3])
    farmers.write_text(
        farmers.read_text(encoding="utf-8").replace('"1,980"', "1980"), encoding="utf-8"
    )
    with capture_logs() as logs:
        board = load_parcels.fn(parcels, farmers)
    expect(list(board.parcels["parcel_id"]) == ["P-001"], f"kept {list(board.parcels.parcel_id)}")
    for pid in ("P-002", "P-003"):
        expect(any(pid in line for line in logs), f"no log line names {pid}")
    wheat = str(board.rejects.set_index("parcel_id").loc["P-002", "error"])
    expect("winter_cereals" in wheat and "close" in wheat, f"no close legend name: {wheat}")

    from flows.report import rejects_html
    from geo.parcels import reject_records

    listed = {r["parcel_id"] for r in reject_records(board.rejects)}
    expect({"P-002", "P-003"} <= listed, f"summary records list {sorted(map(str, listed))}")
    page = rejects_html(pd.DataFrame(board.rejects))
    expect("P-002" in page and "P-003" in page, "the report's rejects omit one")
    return wheat


@case(
    "tables",
    "labels file with a bad cell",
    "a band value that is text or negative, or a blank ewoc_code: the samples file is refused "
    "naming file, line, column and value (never read as nodata or a guessed label)",
)
def labels_bad_cells(ctx: Context) -> str:
    import pandas as pd

    from geo.samples import SampleError, read_samples
    from geo.types import BANDS, Season

    dekads = Season(2026).dekads()[10:14]
    rows = [
        {
            "sample_id": "S-1",
            "timestamp": pd.Timestamp(d),
            **{f"S2-L2A-{b}": 1000 for b in BANDS},
            "ewoc_code": 1101060000,
        }
        for d in dekads
    ]
    frame = pd.DataFrame(rows).astype({"S2-L2A-B04": object, "ewoc_code": object})
    path = ctx.tmp / "labels.csv"
    frame.assign(**{"S2-L2A-B04": ["1000", "abc", "1000", "-40"]}).to_csv(path, index=False)
    band = expect_error(
        SampleError,
        lambda: read_samples(path),
        str(path),
        "line 3, column S2-L2A-B04: 'abc' is not a number",
        "line 5, column S2-L2A-B04: '-40' is negative",
    )
    frame.loc[2, "ewoc_code"] = ""
    frame.to_csv(path, index=False)
    expect_error(
        SampleError, lambda: read_samples(path), "line 4, column ewoc_code: blank", "integer"
    )
    return str(band)
