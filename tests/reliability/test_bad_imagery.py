"""Bad scene files and bad seasons (catalogue group ``imagery``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from eval.reliability_cases import Case, cases


@pytest.mark.parametrize("case", cases("imagery"), ids=lambda c: c.name)
def test_imagery_case(case: Case, check: Callable[[Case], str]) -> None:
    check(case)
