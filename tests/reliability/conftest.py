"""Fixtures of the reliability suite (tests/reliability): one test per catalogue case.

The cases live in :mod:`eval.reliability_cases` so that ``python -m eval.reliability`` prints
the same catalogue as a table. Here each case gets a fresh ``tmp_path``; the committed bad
files are in ``fixtures/`` (remade by ``fixtures/make_fixtures.py``); the loopback imagery is
built once per session. A case with a ``known_issue`` is a strict xfail: it must keep failing
until the issue is fixed, then the marker must go.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from eval.reliability_cases import FIXTURES, Case, CaseFailed, CaseSkipped, Context, Shared


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The committed bad files; skips when they were not generated."""
    if not (FIXTURES / "parcels").is_dir():
        pytest.skip(f"no fixtures in {FIXTURES}: run {FIXTURES / 'make_fixtures.py'}")
    return FIXTURES


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    return Shared(tmp_path_factory.mktemp("reliability-shared"))


@pytest.fixture
def ctx(tmp_path: Path, shared: Shared, fixtures_dir: Path) -> Context:
    return Context(tmp=tmp_path, shared=shared, fixtures=fixtures_dir)


@pytest.fixture
def check(ctx: Context) -> Callable[[Case], str]:
    """Run a case as a test: its CaseFailed fails the test; a known issue is a strict xfail."""

    def run(case: Case) -> str:
        try:
            observed = case.check(ctx)
        except CaseSkipped as exc:
            pytest.skip(str(exc))
        except CaseFailed as exc:
            if case.known_issue:
                pytest.xfail(f"known issue: {case.known_issue} ({exc})")
            raise
        if case.known_issue:
            pytest.fail(
                f"known issue no longer seen, drop known_issue from the case: "
                f"{case.known_issue}; observed: {observed}"
            )
        assert observed, f"case {case.id} observed nothing"
        return observed

    return run
