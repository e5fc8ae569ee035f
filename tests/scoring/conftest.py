"""Session fixtures for the scoring tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg import PgServer, start_or_reason

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


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server in a temp dir for the session (skips, saying why, if it cannot)."""
    server, reason = start_or_reason()
    if server is None:
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty ledger database: a SQLite file, then a fresh database on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database()
