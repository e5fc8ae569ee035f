"""Cluster faults: several processes writing one ledger (issue #17 item 10).

Two runs record the same stage at once: each process reads "nothing recorded yet", then both
insert. Recording is insert-or-ignore at the database, so both finish and each farmer is
decided once. The writers are real processes (``tests/scoring/ledger_race.py``); SQLite always,
PostgreSQL too where ``tests/scoring/pg.py`` can start Debian's server.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from eval.reliability_cases.base import REPO, CaseSkipped, Context, case, expect
from scoring.ledger import Ledger

SCORING_TESTS = REPO / "tests" / "scoring"


def _scoring_test_module(name: str) -> ModuleType:
    """Import ``tests/scoring/<name>.py`` (the race writer, the PostgreSQL fixture)."""
    path = SCORING_TESTS / f"{name}.py"
    if not path.is_file():
        raise CaseSkipped(f"{path} is not here (tests are not installed)")
    key = f"reliability_scoring_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        if spec is None or spec.loader is None:
            raise CaseSkipped(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def _race_once(ctx: Context, url: str, label: str) -> str:
    race = _scoring_test_module("ledger_race")
    Ledger(url).create()
    results = race.race(url, ctx.tmp / f"meet-{label}", [(0, 300), (100, 400)])
    failed = [r for r in results if r["rc"] != 0]
    expect(not failed, f"{label}: a writer failed: {failed[0].get('error') if failed else ''}")
    rows = Ledger(url).decisions(race.SEASON)
    counts = rows.groupby(["farmer_id", "stage"]).size()
    expect(len(rows) == 400, f"{label}: {len(rows)} decisions for 400 farmers")
    expect(bool((counts == 1).all()), f"{label}: doubled {counts[counts > 1].to_dict()}")
    written = sorted(int(r["written"]) for r in results)
    return f"{label} wrote {written[0]}+{written[1]}"


@case(
    "faults",
    "two runs record the same stage at once",
    "both processes finish; each farmer is decided once (insert-or-ignore on the decision key)",
)
def two_writers_one_stage(ctx: Context) -> str:
    seen = [_race_once(ctx, f"sqlite:///{ctx.tmp / 'race.sqlite'}", "sqlite")]
    server, reason = _scoring_test_module("pg").start_or_reason()
    if server is None:
        seen.append(f"postgresql skipped ({reason})")
    else:
        try:
            seen.append(_race_once(ctx, server.create_database(), "postgresql"))
        finally:
            server.stop()
    return "; ".join(seen)
