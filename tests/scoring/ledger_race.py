"""One of two processes recording the same stage into one ledger at once (issue #17 item 10).

Run as a script (``python ledger_race.py URL RUN_ID FIRST LAST MEET_DIR PEERS``) by
``tests/scoring/test_ledger_race.py`` and the reliability case ``faults: two runs record the
same stage at once``. It starts run ``RUN_ID`` and records stage ``pre_sowing`` of season 2026
for farmers ``F-<FIRST>`` .. ``F-<LAST - 1>``. To make the race certain rather than likely,
each process waits, just before its first INSERT into ``decisions`` (after it has read what is
already recorded), until ``PEERS`` processes have got there (a file each in ``MEET_DIR``;
10 s at most). It prints ``{"written": n}`` and exits 0, or prints the error and exits 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

STAGE = "pre_sowing"
SEASON = 2026
REPO = Path(__file__).resolve().parents[2]


def frame(first: int, last: int) -> pd.DataFrame:
    """Decisions for farmers F-first .. F-(last-1) at :data:`STAGE`."""
    ids = [f"F-{i:05d}" for i in range(first, last)]
    n = len(ids)
    return pd.DataFrame(
        {
            "farmer_id": ids,
            "stage": [STAGE] * n,
            "limit_eur": [10_000.0 + i for i in range(first, last)],
            "previous_limit_eur": [float("nan")] * n,
            "drawn_eur": [0.0] * n,
            "action": ["set"] * n,
            "pd": [0.02] * n,
            "pd_band": ["A"] * n,
            "reasons": [["two writers"]] * n,
            "flags": [[]] * n,
            "counterfactual": [""] * n,
            "needs_review": [False] * n,
            "evidence": [{"race": True}] * n,
        }
    )


def main(argv: list[str]) -> int:
    from geo.errors import CropCreditError
    from scoring.ledger import Ledger

    url, run_id, first, last, meet_dir, peers = argv
    meet = Path(meet_dir)
    ledger = Ledger(url)
    met = False

    def _meet(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        nonlocal met
        if met or not statement.lstrip().upper().startswith("INSERT INTO DECISIONS"):
            return
        met = True
        (meet / f"{run_id}.ready").touch()
        deadline = time.monotonic() + 10
        while len(list(meet.glob("*.ready"))) < int(peers) and time.monotonic() < deadline:
            time.sleep(0.01)

    sa.event.listen(ledger.engine, "before_cursor_execute", _meet)
    ledger.start_run(run_id, "season", {"case": "two writers"})
    try:
        written = ledger.record_decisions(
            run_id,
            SEASON,
            frame(int(first), int(last)),
            model_version="m-race",
            policy_version="p-race",
            config={},
        )
    except CropCreditError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps({"written": written}))
    return 0


def race(url: str, meet_dir: Path, ranges: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Record ``ranges`` of farmers into the (created) ledger at ``url`` from one process
    each, all at once (run ids ``race-0``, ``race-1``, ...); returns each one's exit code,
    output and stderr tail."""
    meet_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, url, f"race-{i}", str(a), str(b), str(meet_dir)]
            + [str(len(ranges))],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, (a, b) in enumerate(ranges)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        last = out.strip().splitlines()[-1] if out.strip() else "{}"
        results.append({"rc": proc.returncode, **json.loads(last), "stderr": err[-2000:]})
    return results


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
