"""Session fixtures for the scoring tests."""

from __future__ import annotations

import pytest

from scoring.loanbook import simulate_loan_book
from scoring.pd_model import PDModel, PDParams, train_pd
from scoring.tables import Economics, load_economics


@pytest.fixture(scope="session")
def economics() -> Economics:
    return load_economics()


@pytest.fixture(scope="session")
def small_model() -> PDModel:
    """A quick PD model (60 trees) on a simulated book of 4,000 loans."""
    return train_pd(simulate_loan_book(4000, seed=11), seed=0, params=PDParams(n_estimators=60))
