"""Credit decision dates of a season, per region, from ``data/stage_calendar.csv``.

The table has columns ``region`` ("*" = any region), ``stage`` (a :class:`GrowthStage`
value) and ``date`` as ``MM-DD``; a month from November on belongs to the previous
calendar year of the season (``Season(2026)`` runs 1 Nov 2025 .. 31 Oct 2026).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from geo.errors import TableError
from geo.paths import data_file
from geo.types import STAGES, GrowthStage, Season


def load_stage_calendar(path: Path | None = None) -> pd.DataFrame:
    """Read and check the stage calendar table.

    Raises:
        TableError: the file is missing, lacks a column, names an unknown stage or a bad date.
    """
    path = path or data_file("stage_calendar.csv")
    if not path.exists():
        raise TableError(f"{path}: stage calendar not found; restore data/stage_calendar.csv")
    table = pd.read_csv(path, dtype=str)
    missing = {"region", "stage", "date"} - set(table.columns)
    if missing:
        raise TableError(f"{path}: missing columns {sorted(missing)}; expected region,stage,date")
    valid = {s.value for s in STAGES}
    for row, rec in enumerate(table.itertuples(index=False), start=2):
        if rec.stage not in valid:
            raise TableError(
                f"{path} line {row}: unknown stage {rec.stage!r}; expected one of {sorted(valid)}"
            )
        try:
            dt.datetime.strptime(str(rec.date), "%m-%d")
        except ValueError:
            raise TableError(f"{path} line {row}: date {rec.date!r} is not MM-DD") from None
    return table


def stage_dates(
    region: str, season: Season, calendar: pd.DataFrame | None = None
) -> dict[GrowthStage, dt.date]:
    """Decision date of every stage for ``region`` in ``season`` (falls back to region "*").

    Raises:
        TableError: a stage has no date for this region and no "*" default.
    """
    table = load_stage_calendar() if calendar is None else calendar
    out: dict[GrowthStage, dt.date] = {}
    for stage in STAGES:
        rows = table[(table["stage"] == stage.value) & (table["region"] == region)]
        if rows.empty:
            rows = table[(table["stage"] == stage.value) & (table["region"] == "*")]
        if rows.empty:
            raise TableError(
                f"stage calendar has no date for stage {stage.value!r} in region {region!r}; "
                "add a row for the region or a '*' default"
            )
        out[stage] = season.date(str(rows.iloc[0]["date"]))
    dates = [out[s] for s in STAGES]
    if dates != sorted(dates):
        raise TableError(f"stage dates for region {region!r} are not in stage order: {dates}")
    return out
