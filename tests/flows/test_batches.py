"""Robust batches: a bad farmer is isolated, a killed run resumes exactly once, Dask agrees."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from flows.settings import SeasonParams
from geo.types import GrowthStage, Season

SEASON = Season(2026)


def _copy_archive(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("cache"))
    return dst


def test_a_bad_farmer_fails_alone_and_the_stage_goes_on(
    small_archive: Path, tmp_path: Path, prefect_harness: None
) -> None:
    from flows.season import set_limits
    from scoring.ledger import Ledger

    archive = _copy_archive(small_archive, tmp_path / "archive")
    farmers = pd.read_csv(archive / "farmers.csv", dtype={"farmer_id": str})
    dropped = farmers["farmer_id"].iloc[3]
    farmers[farmers["farmer_id"] != dropped].to_csv(archive / "farmers.csv", index=False)
    params = SeasonParams(
        out=tmp_path / "out",
        imagery={"source": "local", "archive": archive},
        batch_size=10,
        simulate_draws=False,
    )
    outcome = set_limits(params, "bad-farmer")
    decided = set(Ledger(params.ledger()).decisions(SEASON)["farmer_id"])
    pledged = set(pd.read_parquet(archive / "parcels.parquet")["farmer_id"])
    assert decided == pledged - {dropped}
    assert [f["farmer_id"] for f in outcome.failed] == [dropped]
    summary = (params.out / "stages" / "pre_sowing" / "summary.json").read_text()
    assert dropped in summary and "failed" in summary


def _decisions_for(db: Path, stage: str) -> pd.DataFrame:
    with sqlite3.connect(db) as conn:
        return pd.read_sql(
            "select farmer_id, run_id from decisions where stage = ?", conn, params=(stage,)
        )


def test_killed_mid_batch_then_rerun_decides_each_farmer_exactly_once(
    small_archive: Path, tmp_path: Path, prefect_harness: None
) -> None:
    from prefect.settings import PREFECT_API_URL

    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "flows.cli", "season", "--source", "local",
        "--archive", str(small_archive), "--out", str(out), "--run-id", "crash-test",
        "--stage", "pre_sowing", "--batch-size", "5",
    ]  # fmt: skip
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    db = out / "ledger.sqlite"
    n_farmers = pd.read_parquet(small_archive / "parcels.parquet")["farmer_id"].nunique()
    proc = subprocess.Popen(
        [*cmd, "--throttle", "0.4"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seen = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                seen = len(_decisions_for(db, "pre_sowing"))
            except (sqlite3.OperationalError, pd.errors.DatabaseError):
                seen = 0
            if 5 <= seen < n_farmers:
                break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr}"
    os.kill(proc.pid, signal.SIGKILL)  # a real crash: no cleanup, no finally blocks
    proc.wait(timeout=30)
    partial = len(_decisions_for(db, "pre_sowing"))
    assert 5 <= partial < n_farmers, "the kill did not land mid-batch"
    assert partial % 5 == 0, "a batch was committed partly: batches must be atomic"

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    final = _decisions_for(db, "pre_sowing")
    assert len(final) == n_farmers
    assert final["farmer_id"].is_unique
    assert set(final["run_id"]) == {"crash-test"}


def test_dask_cluster_gives_the_same_decisions_as_threads(
    small_archive: Path, tmp_path: Path, prefect_harness: None
) -> None:
    from flows.season import set_limits

    common = {"imagery": {"source": "local", "archive": small_archive}, "batch_size": 15}
    local = set_limits(SeasonParams(out=tmp_path / "threads", **common), "threads")
    dask = set_limits(
        SeasonParams(out=tmp_path / "dask", task_runner="dask", dask_workers=2, **common), "dask"
    )
    cols = ["farmer_id", "limit_eur", "action", "pd"]
    a = local.decisions[cols].sort_values("farmer_id").reset_index(drop=True)
    b = dask.decisions[cols].sort_values("farmer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == pd.read_parquet(small_archive / "parcels.parquet")["farmer_id"].nunique()
    assert GrowthStage.PRE_SOWING == local.stage == dask.stage


def test_run_manifest_never_holds_the_ledger_password(tmp_path: Path) -> None:
    from flows.versions import public_params

    params = SeasonParams(
        out=tmp_path, ledger_url="postgresql+psycopg://credit:s3cr3t-pw@db.internal/ledger"
    )
    dumped = str(public_params(params))
    assert "s3cr3t-pw" not in dumped
    assert "db.internal/ledger" in dumped


def test_onboarding_a_fresh_generated_source_writes_its_archive_first(
    tmp_path: Path, prefect_harness: None
) -> None:
    from flows.season import onboard

    archive = tmp_path / "fresh"
    params = SeasonParams(
        out=tmp_path / "out",
        imagery={"source": "generated", "archive": archive, "size_px": 64, "seed": 3},
    )
    board = onboard(params)
    assert (archive / "parcels.parquet").exists()
    assert len(board.parcels) > 0 and board.rejects.empty
