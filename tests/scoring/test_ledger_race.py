"""Two processes record the same stage into one ledger at once: both finish, each farmer is
decided exactly once (issue #17 item 10), on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from ledger_race import SEASON, race

from scoring.ledger import Ledger


def test_two_processes_record_the_same_stage_at_once(ledger_url: str, tmp_path: Path) -> None:
    Ledger(ledger_url).create()
    # overlapping farmers: 0..299 and 100..399, both read "nothing yet" before inserting
    results = race(ledger_url, tmp_path / "meet", [(0, 300), (100, 400)])
    for r in results:
        assert r["rc"] == 0, f"a writer failed: {r.get('error')} {r['stderr']}"
    written = sorted(r["written"] for r in results)
    assert written == [100, 300], written  # the first commit writes 300, the other the rest
    rows = Ledger(ledger_url).decisions(SEASON)
    assert len(rows) == 400
    assert rows.groupby(["farmer_id", "stage"]).size().max() == 1
    assert sorted(rows["farmer_id"]) == [f"F-{i:05d}" for i in range(400)]
    assert set(rows["run_id"]) == {"race-0", "race-1"}
    # the first commit wins every shared farmer: one run holds all of F-100..F-299
    shared = rows[rows["farmer_id"].between("F-00100", "F-00299")]
    assert shared["run_id"].nunique() == 1
