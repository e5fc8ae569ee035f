"""Reliability catalogue: bad input, faults and secrets (``python -m eval.reliability``).

Runs every case of :mod:`eval.reliability_cases` (the same functions ``tests/reliability``
runs) and prints one table: group, case, expected behaviour, what was observed and the result
(PASS; FAIL; KNOWN: a known issue outside the catalogue's files, still failing; SKIP), with the
totals and the list of known issues. Network cases talk to a loopback server on 127.0.0.1
only. ``python -m eval.reliability parcels faults`` runs some groups.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from eval.reliability_cases import GROUPS, Context, Outcome, Shared, cases, run_case

log = logging.getLogger(__name__)

WIDTHS = {"group": 8, "case": 30, "expected": 44, "observed": 58, "result": 6}


def run_catalogue(groups: Sequence[str] = ()) -> list[Outcome]:
    """Run the cases of ``groups`` (all when empty), each in a fresh temporary directory."""
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown group(s) {unknown}; expected some of {', '.join(GROUPS)}")
    chosen = [c for c in cases() if not groups or c.group in groups]
    root = logging.getLogger()
    quiet = logging.NullHandler() if not root.handlers else None
    if quiet is not None:  # the cases log warnings on purpose; keep them off the table
        root.addHandler(quiet)
    try:
        with tempfile.TemporaryDirectory(prefix="cropcredit-reliability-") as tmp:
            shared = Shared(Path(tmp) / "shared")
            outcomes = []
            for i, c in enumerate(chosen):
                folder = Path(tmp) / f"case-{i:02d}"
                folder.mkdir(parents=True)
                outcome = run_case(c, Context(tmp=folder, shared=shared))
                log.info("%s %s (%.1f s)", outcome.status, c.id, outcome.seconds)
                outcomes.append(outcome)
    finally:
        if quiet is not None:
            root.removeHandler(quiet)
    return outcomes


def _cells(values: dict[str, str]) -> list[str]:
    wrapped = {
        k: textwrap.wrap(v, WIDTHS[k], break_long_words=True, break_on_hyphens=False) or [""]
        for k, v in values.items()
    }
    height = max(len(w) for w in wrapped.values())
    return [
        "  ".join(
            f"{(wrapped[k][i] if i < len(wrapped[k]) else ''):<{WIDTHS[k]}}" for k in WIDTHS
        ).rstrip()
        for i in range(height)
    ]


def format_table(outcomes: Sequence[Outcome], seconds: float | None = None) -> str:
    """The catalogue table with totals and the known issues."""
    header = "  ".join(f"{k:<{w}}" for k, w in WIDTHS.items()).rstrip()
    rule = "-" * len(header)
    lines = [header, rule]
    for o in outcomes:
        lines += _cells(
            {
                "group": o.case.group,
                "case": o.case.name,
                "expected": o.case.expected,
                "observed": o.observed,
                "result": o.status,
            }
        )
        lines.append("")
    counts = Counter(o.status for o in outcomes)
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    lines.append(rule)
    lines.append(
        f"{len(outcomes)} cases{took}: {counts['PASS']} PASS, {counts['FAIL']} FAIL, "
        f"{counts['KNOWN']} KNOWN, {counts['SKIP']} SKIP"
    )
    by_group = ", ".join(
        f"{g} {sum(o.status == 'PASS' for o in outcomes if o.case.group == g)}/"
        f"{sum(o.case.group == g for o in outcomes)}"
        for g in GROUPS
        if any(o.case.group == g for o in outcomes)
    )
    lines.append(f"passing by group: {by_group}")
    known = [o for o in outcomes if o.case.known_issue]
    if known:
        lines.append("known issues (outside the catalogue's files):")
        for o in known:
            text = f"- {o.case.name} [{o.status}]: {o.case.known_issue}"
            lines += textwrap.wrap(text, 150, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(lines)


def run(groups: Sequence[str] = ()) -> str:
    """Run the catalogue; the table as text."""
    started = time.perf_counter()
    outcomes = run_catalogue(groups)
    return format_table(outcomes, time.perf_counter() - started)


if __name__ == "__main__":
    print(run(sys.argv[1:]))
