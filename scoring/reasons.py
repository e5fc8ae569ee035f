"""Reason codes in a loan officer's words, from the PD model's own contributions.

:func:`reasons_for` ranks the features of one farmer by the size of their SHAP contribution to
the model's log-odds and phrases the top ones with the farmer's actual values, e.g.
"health 1.8 sd below maize reference since 2026-07-01 (raises risk)".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

#: Contributions smaller than this (log-odds) are not worth a sentence.
MIN_CONTRIBUTION = 0.02


def _f(row: Mapping[str, Any], key: str, default: float = 0.0) -> float:
    try:
        v = float(row.get(key, default))
    except (TypeError, ValueError):
        return default
    return default if math.isnan(v) else v


def _crop(row: Mapping[str, Any]) -> str:
    crop = row.get("health_worst_crop") or row.get("main_crop") or "crop"
    return str(crop).replace("_", " ")


def _health(row: Mapping[str, Any]) -> str:
    z = _f(row, "health_z")
    worst = _f(row, "health_worst_z", z)
    since = row.get("health_since")
    tail = f" since {since}" if since else ""
    if z < -0.05 and worst < z - 0.05:
        return (
            f"health {abs(z):.1f} sd below reference on average "
            f"({_crop(row)}: {abs(worst):.1f} sd below{tail})"
        )
    if z < -0.05:
        return f"health {abs(z):.1f} sd below {_crop(row)} reference{tail}"
    if z > 0.05:
        return f"health {z:.1f} sd above {_crop(row)} reference"
    return "crop health at the reference level"


def _verified(row: Mapping[str, Any]) -> str:
    share = _f(row, "verified_share")
    if share < 0.95:
        return f"only {share:.0%} of declared area verified by imagery"
    return f"{share:.0%} of declared area verified by imagery"


def _gap(row: Mapping[str, Any]) -> str:
    share = _f(row, "area_gap_share")
    if share > 0.005:
        return f"declared area exceeds the planted area seen by {share:.0%}"
    return "declared area matches the planted area seen"


def _margin(row: Mapping[str, Any]) -> str:
    return f"expected revenue covers costs {_f(row, 'margin_ratio'):.1f}x"


def _debt(row: Mapping[str, Any]) -> str:
    return f"existing debt service takes {_f(row, 'debt_service_ratio'):.0%} of expected revenue"


def _years(row: Mapping[str, Any]) -> str:
    years = int(_f(row, "years_with_lender"))
    if years == 0:
        return "new customer"
    return f"{years} year{'s' if years != 1 else ''} with the lender"


def _diversity(row: Mapping[str, Any]) -> str:
    n = int(_f(row, "crop_diversity"))
    return "a single crop" if n <= 1 else f"{n} crops grown"


PHRASES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "health_z": _health,
    "verified_share": _verified,
    "area_gap_share": _gap,
    "margin_ratio": _margin,
    "debt_service_ratio": _debt,
    "years_with_lender": _years,
    "crop_diversity": _diversity,
}


def reasons_for(
    features_row: Mapping[str, Any] | pd.Series,
    contributions_row: Mapping[str, Any] | pd.Series,
    top: int = 3,
) -> list[str]:
    """The ``top`` largest contributions to this farmer's PD, in words.

    Args:
        features_row: the farmer's features (a row of ``farmer_features``).
        contributions_row: the same farmer's contributions (a row of
            ``PDModel.contributions``; ``bias`` is ignored).
        top: how many reasons at most.

    Returns:
        Sentences ending in "(raises risk)" or "(lowers risk)", largest effect first;
        contributions below 0.02 log-odds are left out.
    """
    row = dict(features_row)
    contribs = {
        k: float(v)
        for k, v in dict(contributions_row).items()
        if k in PHRASES and not math.isnan(float(v))
    }
    ranked = sorted(contribs.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    out: list[str] = []
    for name, value in ranked:
        if abs(value) < MIN_CONTRIBUTION or len(out) >= top:
            break
        direction = "raises risk" if value > 0 else "lowers risk"
        out.append(f"{PHRASES[name](row)} ({direction})")
    return out
