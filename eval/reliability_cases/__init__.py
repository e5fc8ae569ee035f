"""The reliability catalogue: bad input, faults and secrets, one case each.

Importing the package registers every case (:data:`CASES`, in catalogue order); each case
module covers one group. ``tests/reliability`` runs them as tests and ``python -m
eval.reliability`` prints them as a table.
"""

from eval.reliability_cases import (  # noqa: F401  (one module a line: parallel work merges)
    cluster,
    faults,
    imagery,
    leaks,
    onboarding,
    parcels,
    tables,
    web,
)
from eval.reliability_cases.base import (
    CASES,
    FIXTURES,
    GROUPS,
    Case,
    CaseFailed,
    CaseSkipped,
    Context,
    Outcome,
    Shared,
    cases,
    run_case,
)

__all__ = [
    "CASES",
    "FIXTURES",
    "GROUPS",
    "Case",
    "CaseFailed",
    "CaseSkipped",
    "Context",
    "Outcome",
    "Shared",
    "cases",
    "run_case",
]
