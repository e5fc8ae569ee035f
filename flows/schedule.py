"""The season's calendar of runs, derived from the stage calendar in ``data/``.

A re-limit run at each growth stage per region (pre-sowing limits at ``pre_sowing``), and an
acquisition run every ``acquire_every_days`` days from the season start to harvest, at a fixed
local time in the lender's time zone. Deployments (``cropcredit serve-flows``, ``prefect.yaml``)
use these as Prefect cron schedules.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from geo.calendar import load_stage_calendar, stage_dates
from geo.types import GrowthStage, Season


@dataclass(frozen=True, order=True)
class PlannedRun:
    """One scheduled flow run."""

    when: dt.datetime
    flow: str
    region: str
    stage: GrowthStage | None

    @property
    def cron(self) -> str:
        """A cron expression firing once, on this run's date and time (yearly)."""
        return f"{self.when.minute} {self.when.hour} {self.when.day} {self.when.month} *"


def season_runs(
    season: Season,
    *,
    regions: list[str] | None = None,
    timezone: str = "Europe/Paris",
    at: dt.time = dt.time(6, 0),
    acquire_every_days: int = 5,
) -> list[PlannedRun]:
    """Every run of ``season`` in time order: acquisitions and stage re-limits.

    Raises:
        ValueError: an unknown time zone or a non-positive acquisition interval.
    """
    if acquire_every_days < 1:
        raise ValueError(f"acquire_every_days must be >= 1, got {acquire_every_days}")
    try:
        tz = ZoneInfo(timezone)
    except Exception:
        raise ValueError(
            f"unknown time zone {timezone!r}; use an IANA name like Europe/Paris"
        ) from None
    calendar = load_stage_calendar()
    names = regions or sorted(r for r in calendar["region"].unique() if r != "*")
    runs: list[PlannedRun] = []
    for region in names:
        dates = stage_dates(region, season, calendar)
        for stage, day in dates.items():
            flow = "set_limits" if stage == GrowthStage.PRE_SOWING else "relimit"
            runs.append(PlannedRun(dt.datetime.combine(day, at, tz), flow, region, stage))
        day = season.start
        last = dates[GrowthStage.HARVEST]
        while day <= last:
            early = dt.datetime.combine(day, at, tz) - dt.timedelta(hours=1)
            runs.append(PlannedRun(early, "acquire", region, None))
            day += dt.timedelta(days=acquire_every_days)
    return sorted(runs)
