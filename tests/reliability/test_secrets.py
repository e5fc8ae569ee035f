"""Secrets never leak; tokens compared in constant time (catalogue group ``secrets``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from eval.reliability_cases import Case, cases
from eval.reliability_cases.leaks import (
    DB_PASSWORD,
    OFFICER_TOKEN,
    SH_SECRET,
    VIEWER_TOKEN,
    WRONG_SECRET,
)

PARAMS = [
    pytest.param(c, id=c.name, marks=pytest.mark.network if c.network else ())
    for c in cases("secrets")
]
SECRETS = (SH_SECRET, WRONG_SECRET, DB_PASSWORD, OFFICER_TOKEN, VIEWER_TOKEN)


@pytest.mark.parametrize("case", PARAMS)
def test_secret_case(
    case: Case, check: Callable[[Case], str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    observed = check(case)
    assert caplog.records, "nothing was logged: the DEBUG capture did not work"
    for secret in SECRETS:
        assert secret not in caplog.text
        assert secret not in observed
