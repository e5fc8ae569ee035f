"""Simulated draws."""

from __future__ import annotations

import pandas as pd

from geo.types import GrowthStage
from scoring.drawdown import simulate_draws


def test_draws_follow_costs_capped_by_limit_and_never_fall() -> None:
    decisions = pd.DataFrame({"farmer_id": ["A", "B", "C"], "limit_eur": [10_000, 2_000, 0.0]})
    feats = pd.DataFrame(
        {"farmer_id": ["A", "B", "C"], "cost_through_stage_eur": [5_000, 5_000, 5_000]}
    )
    prev = pd.Series({"C": 700.0})
    s = simulate_draws(decisions, feats, GrowthStage.SOWING, previous=prev)
    assert s.to_dict() == {"A": 4_000.0, "B": 2_000.0, "C": 700.0}
