"""The lender's farmers table: read it, refuse what cannot be scored, set aside their parcels.

``farmers.csv`` has one row per farmer: ``farmer_id``, ``annual_debt_service_eur`` (EUR/year,
>= 0; write 0 for a farmer without debt), ``years_with_lender`` (years, >= 0), and optionally
``region`` (blank: the region of the farmer's parcels) and ``name``.

What refuses the whole file (a :class:`~geo.errors.TableError` naming the file and the fix,
raised at onboarding before any imagery is read): a missing file, an empty one, text that is
not UTF-8, a line that is not CSV, a missing required column, or no farmer row at all.

What refuses one farmer (a row of the rejects frame naming the file, the line as the user
counts it, the column, the value and the fix; the other farmers go on): a blank
``farmer_id``; an ``annual_debt_service_eur`` or ``years_with_lender`` that is not a plain
number (``1,980``, ``n/a``), blank, infinite or negative; the same ``farmer_id`` on two
lines (every line of that farmer is refused: which one holds the right numbers is not
guessed). A refused farmer is never scored on a guess: :func:`set_aside_parcels` moves his
parcels, and those of farmers the table does not list, to the parcel rejects, each naming
why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.errors import TableError
from geo.parcels import REJECT_COLUMNS, ParcelSet
from geo.tablecells import LINE, CellProblem, parse_numbers, read_csv_lines

__all__ = [
    "FARMER_REJECT_COLUMNS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "read_farmers",
    "set_aside_parcels",
]

log = logging.getLogger(__name__)

#: Columns the farmers table must have.
REQUIRED_COLUMNS: Final[tuple[str, ...]] = (
    "farmer_id",
    "annual_debt_service_eur",
    "years_with_lender",
)
#: Columns it may have (``region`` blank or absent: the region of the farmer's parcels).
OPTIONAL_COLUMNS: Final[tuple[str, ...]] = ("region", "name")
#: Columns of the rejects frame of :func:`read_farmers`.
FARMER_REJECT_COLUMNS: Final[tuple[str, ...]] = (
    "farmer_id",
    "line",
    "file",
    "column",
    "value",
    "error",
)
_NUMBERS: Final[dict[str, tuple[str, str]]] = {
    "annual_debt_service_eur": ("EUR/year", "write 0 if the farmer has no debt service"),
    "years_with_lender": ("years", "write 0 for a new customer"),
}


def read_farmers(path: Path | str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and check the farmers table.

    Args:
        path: the farmers CSV (UTF-8).

    Returns:
        (farmers, rejects): ``farmers`` holds one row per accepted farmer, in file order, with
        ``farmer_id`` (str), ``region`` (str, ``""`` when not given), ``name`` (str, when the
        file has it), ``annual_debt_service_eur`` and ``years_with_lender`` (float64);
        ``rejects`` has :data:`FARMER_REJECT_COLUMNS`, one row per refused line (``line`` as
        the user counts it, header = 1; ``farmer_id`` None when blank), ``error`` the whole
        message with file, line, column, value and fix.

    Raises:
        TableError: a whole-file problem (see the module docstring), naming the file.
    """
    path = Path(path)
    source = str(path)
    frame = read_csv_lines(path, what="farmers table", required=REQUIRED_COLUMNS)
    if frame.empty:
        raise _no_rows(source)
    lines = frame[LINE].to_numpy()
    ids = frame["farmer_id"].str.strip()
    problems: dict[int, list[CellProblem]] = {}

    for i in np.flatnonzero((ids == "").to_numpy()):
        problems.setdefault(int(i), []).append(
            CellProblem(
                int(lines[i]),
                "farmer_id",
                str(frame["farmer_id"].iloc[i]),
                "is blank",
                "fill in the farmer's id (the farmer_id of their parcels) or delete the line",
            )
        )
    values: dict[str, np.ndarray] = {}
    for col, (unit, blank_fix) in _NUMBERS.items():
        values[col], found = parse_numbers(frame[col], lines, col, unit=unit, blank_fix=blank_fix)
        position = {int(line): i for i, line in enumerate(lines)}
        for p in found:
            problems.setdefault(position[p.line], []).append(p)
    named = ids[ids != ""]
    for fid, rows in named.groupby(named, sort=False).groups.items():
        if len(rows) < 2:
            continue
        at = [int(lines[r]) for r in rows]
        shown = ", ".join(map(str, at))
        for r in rows:
            problems.setdefault(int(r), []).append(
                CellProblem(
                    int(lines[r]),
                    "farmer_id",
                    str(fid),
                    f"appears on lines {shown}",
                    "keep one line per farmer (which one holds the right numbers is not "
                    "guessed: every line of this farmer is refused)",
                )
            )

    rejects = _rejects_frame(problems, ids, source)
    bad_ids = set(rejects["farmer_id"].dropna())
    keep = np.array(
        [i not in problems and ids.iloc[i] not in bad_ids for i in range(len(frame))], dtype=bool
    )
    farmers = pd.DataFrame(
        {
            "farmer_id": ids.to_numpy()[keep],
            "region": (
                frame["region"].str.strip().to_numpy()[keep]
                if "region" in frame
                else np.full(int(keep.sum()), "", dtype=object)
            ),
        }
    )
    if "name" in frame:
        farmers["name"] = frame["name"].str.strip().to_numpy()[keep]
    for col in _NUMBERS:
        farmers[col] = values[col][keep]
    farmers = farmers.astype({"farmer_id": str, "region": str})
    if len(rejects):
        log.warning(
            "%s: %d of %d farmer line(s) refused; those farmers are not scored",
            source,
            len(rejects),
            len(frame),
        )
        for message in rejects["error"]:
            log.warning("refused: %s", message)
    log.info("%s: %d farmers accepted", source, len(farmers))
    return farmers, rejects


def _no_rows(source: str) -> TableError:
    return TableError(
        f"{source}: the farmers table has a header but no farmer line; add one line per "
        f"farmer with {', '.join(REQUIRED_COLUMNS)}"
    )


def _rejects_frame(
    problems: dict[int, list[CellProblem]], ids: pd.Series, source: str
) -> pd.DataFrame:
    rows = []
    for i in sorted(problems):
        found = problems[i]
        fid = ids.iloc[i] or None
        who = f"farmer {fid}" if fid else "a farmer without id"
        message = "; and ".join(p.message(source) for p in found)
        rows.append(
            {
                "farmer_id": fid,
                "line": found[0].line,
                "file": source,
                "column": ", ".join(dict.fromkeys(p.column for p in found)),
                "value": found[0].value,
                "error": f"{message} ({who} is not scored)",
            }
        )
    return pd.DataFrame(rows, columns=list(FARMER_REJECT_COLUMNS)).astype({"line": np.int64})


def set_aside_parcels(
    parcel_set: ParcelSet,
    farmers: pd.DataFrame,
    farmer_rejects: pd.DataFrame,
    farmers_path: Path | str,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """The parcels whose farmer the table accepts, and every reject of onboarding.

    A parcel of a refused farmer, or of a farmer the table does not list, becomes a reject
    naming the parcel, its file and why its farmer is not scored (``row`` -1: the set-aside
    parcel was valid, its position is not kept). The
    farmer lines refused (``farmer_rejects``) are listed too, with ``parcel_id`` None and
    ``row`` the line of the farmers file.

    Args:
        parcel_set: what :func:`geo.parcels.read_parcels` returned.
        farmers: the accepted farmers (:func:`read_farmers`).
        farmer_rejects: the refused lines (:func:`read_farmers`).
        farmers_path: the farmers file (for messages).

    Raises:
        TableError: not one valid parcel has an accepted farmer (the table is wrong as a
            whole: names the first reason).

    Returns:
        (parcels, rejects): the parcels still to score (``parcel_set.parcels``' columns, index
        0..n-1) and a frame with :data:`geo.parcels.REJECT_COLUMNS`: the parcel rejects of
        ``parcel_set``, then the parcels set aside, then the refused farmer lines.
    """
    parcels = parcel_set.parcels
    known = set(farmers["farmer_id"].astype(str))
    why: dict[str, str] = {}
    for fid, refused in farmer_rejects.groupby("farmer_id", sort=False):
        where = ", ".join(f"line {r.line} ({r.column})" for r in refused.itertuples())
        why[str(fid)] = f"its farmer {fid} is refused at {farmers_path} {where}"
    owner = parcels["farmer_id"].astype(str)
    out = ~owner.isin(known).to_numpy()
    set_aside = []
    for pid, fid in zip(parcels["parcel_id"][out], owner[out], strict=True):
        reason = (
            f"{why[fid]}; fix the farmer's line"
            if fid in why
            else f"farmer {fid} has no line in the farmers table {farmers_path}; add the farmer "
            "with annual_debt_service_eur and years_with_lender"
        )
        set_aside.append(
            {
                "parcel_id": str(pid),
                "farmer_id": fid,
                "row": -1,
                "file": parcel_set.source,
                "error": f"parcel {pid} of {parcel_set.source}: not scored, {reason}",
            }
        )
    lines = [
        {
            "parcel_id": None,
            "farmer_id": r["farmer_id"],
            "row": int(r["line"]),
            "file": r["file"],
            "error": r["error"],
        }
        for r in farmer_rejects.to_dict("records")
    ]
    parts = [
        frame
        for frame in (
            parcel_set.rejects,
            pd.DataFrame(set_aside, columns=list(REJECT_COLUMNS)),
            pd.DataFrame(lines, columns=list(REJECT_COLUMNS)),
        )
        if len(frame)
    ]
    rejects = (
        pd.concat(parts, ignore_index=True) if parts else parcel_set.rejects.reset_index(drop=True)
    )
    if len(parcels) and bool(out.all()):
        raise TableError(
            f"{farmers_path}: no parcel is left to score: the farmer of every one of the "
            f"{len(parcels)} valid parcels of {parcel_set.source} is refused or not in the "
            f"farmers table (first: {set_aside[0]['error']}); fix the farmers table"
        )
    if set_aside:
        log.warning(
            "%d parcel(s) set aside: their farmer is refused or not in the farmers table",
            len(set_aside),
        )
        for item in set_aside:
            log.warning("set aside: %s", item["error"])
    return parcels[~out].reset_index(drop=True), rejects
