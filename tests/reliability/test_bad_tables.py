"""Bad reference tables, loan files and config keys (catalogue group ``tables``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from eval.reliability_cases import Case, cases


@pytest.mark.parametrize("case", cases("tables"), ids=lambda c: c.name)
def test_table_case(case: Case, check: Callable[[Case], str]) -> None:
    check(case)
