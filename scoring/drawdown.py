"""Simulated drawdowns for the demo: farmers draw the cost they have incurred, up to the limit.

At a stage, a farmer's cumulative draw is ``financing_ratio x cost incurred up to and including
the stage`` (``cost_through_stage_eur`` of the features, EUR), capped by the limit in force and
never below what was already drawn (draws are not repaid before harvest).
"""

from __future__ import annotations

import pandas as pd

from geo.types import GrowthStage


def simulate_draws(
    decisions: pd.DataFrame,
    features: pd.DataFrame,
    stage: GrowthStage,
    *,
    financing_ratio: float = 0.8,
    previous: pd.Series | None = None,
) -> pd.Series:
    """Cumulative EUR drawn per farmer after the decisions of ``stage``.

    Args:
        decisions: ``decide_batch`` output (farmer_id, limit_eur).
        features: ``farmer_features`` at the same stage (farmer_id, cost_through_stage_eur).
        stage: the stage (only used to label the series).
        financing_ratio: share of each cost the farmer finances with the loan.
        previous: cumulative draws so far (farmer_id -> EUR).

    Returns:
        Series farmer_id -> cumulative EUR drawn, named ``drawn_eur``.
    """
    cost = dict(zip(features["farmer_id"], features["cost_through_stage_eur"], strict=True))
    prev = previous if previous is not None else pd.Series(dtype=float)
    out: dict[str, float] = {}
    for fid, limit in zip(decisions["farmer_id"], decisions["limit_eur"], strict=True):
        want = financing_ratio * float(cost.get(fid, 0.0))
        before = float(prev.get(fid, 0.0))
        out[str(fid)] = round(max(before, min(want, float(limit))), 2)
    s = pd.Series(out, name="drawn_eur", dtype=float)
    s.index.name = "farmer_id"
    s.attrs["stage"] = stage.value
    return s
