"""Scoring: crop economics, farmer features, PD model, limit policy and the decision ledger.

Imports geo only (never torch or prefect). The public surface is listed in ``__all__``.
"""

from scoring.drawdown import simulate_draws
from scoring.farmers import read_farmers, set_aside_parcels
from scoring.features import FeatureConfig, farmer_features
from scoring.ledger import Ledger
from scoring.loanbook import simulate_loan_book
from scoring.pd_model import (
    PD_FEATURES,
    PDModel,
    load_shipped_pd,
    train_pd,
    train_pd_from_file,
    validate_loans,
)
from scoring.policy import (
    LimitInputs,
    PDBand,
    PolicyConfig,
    decide_batch,
    decide_one,
    limit_single,
)
from scoring.reasons import reasons_for
from scoring.tables import Economics, EconomicsRow, cost_to_come, load_economics

__all__ = [
    "PD_FEATURES",
    "Economics",
    "EconomicsRow",
    "FeatureConfig",
    "Ledger",
    "LimitInputs",
    "PDBand",
    "PDModel",
    "PolicyConfig",
    "cost_to_come",
    "decide_batch",
    "decide_one",
    "farmer_features",
    "limit_single",
    "load_economics",
    "load_shipped_pd",
    "read_farmers",
    "reasons_for",
    "set_aside_parcels",
    "simulate_draws",
    "simulate_loan_book",
    "train_pd",
    "train_pd_from_file",
    "validate_loans",
]
