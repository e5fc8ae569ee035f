"""A season stage on a real Dask cluster: ``dask scheduler`` and two ``dask worker`` processes
on 127.0.0.1, started and stopped here (issue #16 item 5).

The stage runs with ``dask_address`` (the CLI's ``--dask-address``) as on an existing cluster:
the workers import the project from this checkout (``PYTHONPATH``) and report to the test's
Prefect API (``PREFECT_API_URL``). Its decisions must equal the thread runner's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from flows.settings import SeasonParams
from geo.types import GrowthStage

REPO = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what it started
            proc.wait(timeout=10)


def _wait_for_workers(address: str, n: int, procs: list[subprocess.Popen[bytes]]) -> None:
    from distributed import Client

    deadline = time.monotonic() + 90
    with Client(address, timeout=30) as client:
        while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
            dead = [p.args for p in procs if p.poll() is not None]
            assert not dead, f"a dask process exited: {dead}"
            assert time.monotonic() < deadline, "the dask workers did not connect in 90 s"
            time.sleep(0.2)


@pytest.fixture()
def dask_cluster(tmp_path: Path, prefect_harness: None) -> Iterator[str]:
    """``tcp://127.0.0.1:<port>`` of a scheduler with two single-thread worker processes."""
    if not DASK.is_file() and shutil.which("dask") is None:
        pytest.skip("the dask CLI is not installed (pip install distributed)")
    from prefect.settings import PREFECT_API_URL

    dask = str(DASK) if DASK.is_file() else "dask"
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    log = (tmp_path / "dask.log").open("wb")
    common = {"cwd": REPO, "env": env, "stdout": log, "stderr": log, "start_new_session": True}
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            **common,  # type: ignore[call-overload]
        )
    ]
    try:
        for i in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        dask,
                        "worker",
                        address,
                        "--name",
                        f"w{i}",
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--local-directory",
                        str(tmp_path / f"w{i}"),
                    ],  # fmt: skip
                    **common,  # type: ignore[call-overload]
                )
            )
        _wait_for_workers(address, 2, procs)
        yield address
    finally:
        started = time.monotonic()
        _stop(procs[1:])  # the workers first: they leave the scheduler cleanly
        _stop(procs[:1])
        log.close()
        sys.stderr.write(f"dask cluster stopped in {time.monotonic() - started:.1f} s\n")
    assert all(p.poll() is not None for p in procs), "a dask process is still running"


def test_a_stage_on_an_existing_dask_cluster_decides_as_threads(
    small_archive: Path, tmp_path: Path, dask_cluster: str
) -> None:
    from distributed import Client

    from flows.season import set_limits

    common = {"imagery": {"source": "local", "archive": small_archive}, "batch_size": 10}
    local = set_limits(SeasonParams(out=tmp_path / "threads", **common), "threads")
    on_cluster = set_limits(
        # the address alone (the CLI's --dask-address) sends the batches to that cluster
        SeasonParams(out=tmp_path / "cluster", dask_address=dask_cluster, **common),
        "cluster",
    )
    cols = ["farmer_id", "limit_eur", "action", "pd", "pd_band"]
    a = local.decisions[cols].sort_values("farmer_id").reset_index(drop=True)
    b = on_cluster.decisions[cols].sort_values("farmer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == pd.read_parquet(small_archive / "parcels.parquet")["farmer_id"].nunique()
    assert not on_cluster.failed
    assert on_cluster.stage == GrowthStage.PRE_SOWING
    # the batches ran on the two worker processes, not in this one
    with Client(dask_cluster, timeout=30) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2
    assert sum(executed.values()) >= -(-len(a) // 10), executed
