"""Small frozen value types shared by every stage: crop classes, growth stages, seasons.

Time frame: a *season* ``Season(2026)`` is the agricultural year from 1 November of the
previous year to 31 October of its year. Its time grid is the 36 *dekads* (10-day steps
starting on the 1st, 11th and 21st of each month) from 1 Nov to 21 Oct; arrays over the
grid have the time axis first: (T, C, H, W) with T = 36.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

#: The project's crop legend, in class-index order (index = pixel value in class maps).
CROPS: Final[tuple[str, ...]] = (
    "non_crop",
    "grassland",
    "winter_cereals",
    "spring_cereals",
    "maize",
    "rapeseed",
    "sunflower",
    "soybean",
    "potato",
    "other_annual",
    "permanent",
)
CROP_INDEX: Final[dict[str, int]] = {c: i for i, c in enumerate(CROPS)}
#: Classes that are not an annual crop a seasonal loan can finance.
NON_FINANCEABLE: Final[frozenset[str]] = frozenset({"non_crop"})

#: Sentinel-2 L2A bands used everywhere, in this order (reflectance 0-1 after scaling).
BANDS: Final[tuple[str, ...]] = (
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B11",
    "B12",
)
#: L2A digital numbers are reflectance x 10000.
REFLECTANCE_SCALE: Final[float] = 1e-4


class GrowthStage(StrEnum):
    """Credit decision points of a season, in order."""

    PRE_SOWING = "pre_sowing"
    SOWING = "sowing"
    VEGETATIVE = "vegetative"
    FLOWERING = "flowering"
    GRAIN_FILL = "grain_fill"
    HARVEST = "harvest"

    @property
    def order(self) -> int:
        return list(GrowthStage).index(self)


STAGES: Final[tuple[GrowthStage, ...]] = tuple(GrowthStage)


def check_crop(name: str, *, where: str = "") -> str:
    """Return ``name`` if it is a legend class; raise ValueError listing the valid names."""
    if name not in CROP_INDEX:
        from geo.errors import ParcelError

        prefix = f"{where}: " if where else ""
        raise ParcelError(
            f"{prefix}unknown crop {name!r}; expected one of {', '.join(CROPS)} "
            "(map your crop names to this legend, see data/legend.csv)"
        )
    return name


@dataclass(frozen=True, order=True)
class Season:
    """An agricultural year: 1 Nov of ``year - 1`` to 31 Oct of ``year``."""

    year: int

    def __post_init__(self) -> None:
        if not 2000 <= self.year <= 2100:
            raise ValueError(f"season year {self.year} is out of range 2000-2100")

    @property
    def start(self) -> dt.date:
        return dt.date(self.year - 1, 11, 1)

    @property
    def end(self) -> dt.date:
        return dt.date(self.year, 10, 31)

    @classmethod
    def of(cls, day: dt.date) -> Season:
        """The season holding ``day`` (Nov-Dec belong to the next year's season)."""
        return cls(day.year + 1 if day.month >= 11 else day.year)

    def date(self, mm_dd: str) -> dt.date:
        """The day ``"MM-DD"`` within this season (Nov-Dec fall in ``year - 1``)."""
        month, day = (int(p) for p in mm_dd.split("-"))
        return dt.date(self.year - 1 if month >= 11 else self.year, month, day)

    def dekads(self) -> list[dt.date]:
        """Start dates of the 36 dekads of the season (1st, 11th, 21st of each month)."""
        out: list[dt.date] = []
        y, m = self.start.year, self.start.month
        for _ in range(12):
            out.extend(dt.date(y, m, d) for d in (1, 11, 21))
            m += 1
            if m == 13:
                y, m = y + 1, 1
        return out

    def dekad_index(self, day: dt.date) -> int:
        """Index of the dekad holding ``day``; raises ValueError outside the season."""
        if not self.start <= day <= self.end:
            raise ValueError(f"{day} is outside season {self.year} ({self.start}..{self.end})")
        months = (day.year - self.start.year) * 12 + day.month - self.start.month
        return months * 3 + min((day.day - 1) // 10, 2)

    def __str__(self) -> str:
        return str(self.year)
