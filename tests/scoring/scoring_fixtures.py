"""Helpers for the scoring tests: hand-made assessment rows (no imagery needed)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from geo.types import CROPS


def parcel(
    parcel_id: str,
    farmer_id: str,
    declared_crop: str = "winter_cereals",
    area_ha: float = 10.0,
    *,
    detected_crop: str | None = None,
    confidence: float = 0.9,
    planted_area_ha: float | None = None,
    observed_fraction: float = 0.9,
    ndvi_last: float = 0.7,
    health_z: float = 0.0,
    health_class: str = "good",
    health_since: dt.date | None = None,
    region: str = "poitou-nord",
    declared_area_ha: float | None = None,
    as_of: dt.date = dt.date(2026, 5, 1),
) -> dict[str, Any]:
    """One assessment row following the DESIGN.md contract."""
    detected = detected_crop or declared_crop
    planted = area_ha if planted_area_ha is None else planted_area_ha
    row: dict[str, Any] = {
        "parcel_id": parcel_id,
        "farmer_id": farmer_id,
        "region": region,
        "declared_crop": declared_crop,
        "declared_area_ha": area_ha if declared_area_ha is None else declared_area_ha,
        "area_ha": area_ha,
        "detected_crop": detected,
        "confidence": confidence,
        "crop_fraction": 0.9,
        "planted_area_ha": planted,
        "planted_area_lo_ha": planted * 0.95,
        "planted_area_hi_ha": planted * 1.05,
        "observed_fraction": observed_fraction,
        "ndvi_last": ndvi_last,
        "health_z": health_z,
        "health_class": health_class,
        "health_since": health_since,
        "growth_stage": "vegetative",
        "as_of": as_of,
    }
    for c in CROPS:
        row[f"frac_{c}"] = 0.9 if c == detected else 0.01
    return row


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def farmers_for(ids: list[str], debt: float = 2000.0, years: float = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "farmer_id": ids,
            "region": ["poitou-nord"] * len(ids),
            "name": [f"Farmer {i}" for i in ids],
            "annual_debt_service_eur": [debt] * len(ids),
            "years_with_lender": [years] * len(ids),
        }
    )


NO_OVERLAPS = pd.DataFrame(
    columns=[
        "parcel_id",
        "farmer_id",
        "other_parcel_id",
        "other_farmer_id",
        "overlap_ha",
        "overlap_share",
    ]
)
