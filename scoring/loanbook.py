"""A simulated seasonal loan book to train and test the PD model.

There is no public farm-loan default data (see ``../shared/data/README.md``), so the shipped PD
model learns from this simulation and a lender retrains it on their own history
(``cropcredit train-pd --loans FILE``, schema in :func:`scoring.pd_model.validate_loans`).

Generating rules (one row per farmer-season; the same rules are in
``data/models/PD_MODEL_CARD.md``):

1. **Region-season health shock.** Each loan falls in one of 2 regions x 6 seasons; each
   region-season has a shock ``s ~ N(0, 0.7)`` (a drought year is s << 0). Farm health
   ``health_z = s + N(0, 0.8)``, clipped to [-4, 3].
2. **Verification.** 90 % of farmers declare honestly: ``verified_share ~ Beta(9, 1.2)``; 10 %
   overstate: ``Beta(2, 2)``. ``area_gap_share = (1 - verified_share) * U(0, 0.8) + N(0, 0.03)``
   clipped to [0, 1].
3. **Margin.** Planned ``margin_ratio`` (expected revenue / cultivation cost) is
   ``LogNormal(log 1.6, 0.25)`` times the health yield factor ``clip(1 + 0.08 health_z, 0.2,
   1.1)``. The realised margin ratio multiplies it by ``1 + 0.18 e``, ``e ~ N(0, 1)`` (the farm
   yield cv), unseen at decision time.
4. **Debt and history.** ``debt_service_ratio ~ Gamma(2, 0.08)`` clipped to [0, 2] (existing debt
   service / expected revenue); ``years_with_lender`` is 0 for 25 % (new customers), else
   ``1 + Poisson(4)``; ``crop_diversity = 1 + Binomial(4, 0.4)``.
5. **Default.** ``logit P(default) = ALPHA + 4.0 max(0, 1.3 - realised margin ratio)
   + 0.35 max(0, -health_z) + 3.0 debt_service_ratio + 2.5 (1 - verified_share)
   + 2.0 area_gap_share - 0.12 min(years_with_lender, 10) - 0.1 (crop_diversity - 1)
   + N(0, 0.5)``; ``default ~ Bernoulli``. ``ALPHA`` is set so the base rate is about 6.5 %.

Every effect has the sign the PD model's monotone constraints assume; ``low_confidence_share``
is drawn but has no effect (imagery doubt is not borrower risk: the policy handles it by
holding for review).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

ALPHA: Final[float] = -3.95
REGIONS: Final[tuple[str, ...]] = ("poitou-nord", "poitou-sud")
SEASONS: Final[tuple[int, ...]] = (2020, 2021, 2022, 2023, 2024, 2025)


def simulate_loan_book(n: int, seed: int) -> pd.DataFrame:
    """Simulate ``n`` farmer-seasons with PD features and a 0/1 ``default`` (rules above).

    Returns:
        DataFrame with loan_id, farmer_id, region, season, the columns of
        :data:`scoring.pd_model.PD_FEATURES`, low_confidence_share and default (int 0/1).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    region_idx = rng.integers(0, len(REGIONS), n)
    season_idx = rng.integers(0, len(SEASONS), n)
    shocks = rng.normal(0.0, 0.7, size=(len(REGIONS), len(SEASONS)))
    health_z = np.clip(shocks[region_idx, season_idx] + rng.normal(0, 0.8, n), -4, 3)

    honest = rng.random(n) < 0.9
    verified = np.where(honest, rng.beta(9, 1.2, n), rng.beta(2, 2, n))
    gap = np.clip((1 - verified) * rng.uniform(0, 0.8, n) + rng.normal(0, 0.03, n), 0, 1)
    low_conf = rng.beta(1, 9, n)

    factor = np.clip(1 + 0.08 * health_z, 0.2, 1.1)
    margin = rng.lognormal(np.log(1.6), 0.25, n) * factor
    realised = margin * (1 + 0.18 * rng.normal(0, 1, n))

    dsr = np.clip(rng.gamma(2.0, 0.08, n), 0, 2)
    years = np.where(rng.random(n) < 0.25, 0, 1 + rng.poisson(4, n)).astype(float)
    diversity = (1 + rng.binomial(4, 0.4, n)).astype(float)

    logit = (
        ALPHA
        + 4.0 * np.maximum(0, 1.3 - realised)
        + 0.35 * np.maximum(0, -health_z)
        + 3.0 * dsr
        + 2.5 * (1 - verified)
        + 2.0 * gap
        - 0.12 * np.minimum(years, 10)
        - 0.1 * (diversity - 1)
        + rng.normal(0, 0.5, n)
    )
    default = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "loan_id": [f"L-{seed}-{i:06d}" for i in range(n)],
            "farmer_id": [f"SF-{i:06d}" for i in range(n)],
            "region": np.asarray(REGIONS)[region_idx],
            "season": np.asarray(SEASONS)[season_idx],
            "verified_share": verified,
            "area_gap_share": gap,
            "health_z": health_z,
            "margin_ratio": margin,
            "debt_service_ratio": dsr,
            "years_with_lender": years,
            "crop_diversity": diversity,
            "low_confidence_share": low_conf,
            "default": default,
        }
    )
