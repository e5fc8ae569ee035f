"""Faults: flaky imagery services (the loopback server of ``tests/geo``), a locked or vanished
ledger database, and a half-written disk cache.

Transient faults are retried and the result is the same as without them; persistent ones end
in one clear error. A decision is never lost nor written twice.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eval.reliability_cases.base import (
    Context,
    capture_logs,
    case,
    expect,
    expect_error,
    geo_test_module,
)
from geo.errors import ImageryError, LedgerError, SourceUnavailableError
from geo.sources.retry import RetryPolicy
from geo.sources.sentinelhub import SentinelHubSource
from geo.sources.stac import StacSource
from scoring.ledger import Ledger

APRIL = (dt.date(2026, 4, 1), dt.date(2026, 4, 30))
ROUTE_TOKEN = "/oauth/token"
ROUTE_CATALOG = "/api/v1/catalog/1.0.0/search"
ROUTE_PROCESS = "/api/v1/process"
ROUTE_STAC_SEARCH = "/stac/search"
ROUTE_COGS = "/cogs/"


def _sh(server: Any, ctx: Context, **kwargs: Any) -> SentinelHubSource:
    """A Sentinel Hub source on the loopback: 3 attempts, 0.05 s backoff, 1 s timeout."""
    return SentinelHubSource(server.sh_config(), max_cloud_cover=50, **kwargs)


def _stac(server: Any, ctx: Context, attempts: int = 3) -> StacSource:
    retry = RetryPolicy(max_attempts=attempts, backoff_s=0.05, timeout_s=1.0)
    return StacSource(server.stac_url, max_cloud_cover=50, retry=retry)


def _same_as_reference(scene: Any, imagery: Any) -> None:
    dn, scl = geo_test_module("fixtures_imagery").read_reference(
        imagery.by_date(scene.date), imagery.bounds
    )
    expect(
        np.array_equal(scene.dn, dn) and np.array_equal(scene.scl, scl),
        f"{scene.scene_id}: pixels differ from the source files after the fault",
    )


@case(
    "faults", "Sentinel Hub 429", "waits the Retry-After (ms), retries, same pixels", network=True
)
def sh_429(ctx: Context) -> str:
    with ctx.loopback() as (server, imagery):
        source = _sh(server, ctx)
        ref = source.search(imagery.bounds, *APRIL)[0]
        server.inject(ROUTE_PROCESS, "429", retry_after="300")
        started = time.perf_counter()
        scene = source.read(ref, imagery.bounds)
        waited = time.perf_counter() - started
        _same_as_reference(scene, imagery)
        expect(server.count(ROUTE_PROCESS) == 2, f"{server.count(ROUTE_PROCESS)} requests")
        expect(waited >= 0.3, f"did not wait the Retry-After: {waited:.2f} s")
    return f"2 requests, waited {waited:.2f} s, pixels identical"


@case("faults", "Sentinel Hub 500", "retried with backoff; search and read succeed", network=True)
def sh_500(ctx: Context) -> str:
    with ctx.loopback() as (server, imagery):
        source = _sh(server, ctx)
        server.inject(ROUTE_CATALOG, "500", times=2)
        refs = source.search(imagery.bounds, *APRIL)
        server.inject(ROUTE_PROCESS, "500")
        _same_as_reference(source.read(refs[0], imagery.bounds), imagery)
        n_cat, n_proc = server.count(ROUTE_CATALOG), server.count(ROUTE_PROCESS)
        expect(len(refs) == 2 and n_cat == 3 and n_proc == 2, f"{len(refs)} {n_cat} {n_proc}")
    return f"catalog 3 requests, process 2; {len(refs)} scenes, pixels identical"


@case(
    "faults",
    "Sentinel Hub timeout",
    "a request past the 1 s timeout is retried and succeeds",
    network=True,
)
def sh_timeout(ctx: Context) -> str:
    with ctx.loopback() as (server, imagery):
        source = _sh(server, ctx)
        ref = source.search(imagery.bounds, *APRIL)[0]
        server.inject(ROUTE_PROCESS, "timeout", sleep_s=1.3)
        with capture_logs() as logs:
            _same_as_reference(source.read(ref, imagery.bounds), imagery)
        expect(any("timeout" in line for line in logs), "the retry was not logged")
    return "timed out once, retried, pixels identical"


@case(
    "faults",
    "Sentinel Hub dropped connection",
    "socket closed mid-response: retried, same "
    "pixels; every attempt dropped: SourceUnavailableError",
    network=True,
)
def sh_drop(ctx: Context) -> str:
    with ctx.loopback() as (server, imagery):
        source = _sh(server, ctx)
        server.inject(ROUTE_CATALOG, "drop")
        refs = source.search(imagery.bounds, *APRIL)
        server.inject(ROUTE_PROCESS, "drop")
        _same_as_reference(source.read(refs[0], imagery.bounds), imagery)
        server.inject(ROUTE_PROCESS, "drop", times=3)
        exc = expect_error(
            SourceUnavailableError,
            lambda: source.read(refs[1], imagery.bounds),
            "failed after 3 attempt(s)",
            "connection failed",
            "re-run",
        )
    return f"one drop recovered; persistent: {exc}"


@case(
    "faults",
    "Sentinel Hub gives up: error names the scene",
    "the final SourceUnavailableError names the scene, its date and the request's bbox, and "
    "the fix (re-run later, or more attempts)",
    network=True,
)
def sh_gives_up_names_scene(ctx: Context) -> str:
    with ctx.loopback() as (server, imagery):
        source = _sh(server, ctx)
        ref = source.search(imagery.bounds, *APRIL)[0]
        server.inject(ROUTE_PROCESS, "500", times=3)
        exc = expect_error(
            SourceUnavailableError,
            lambda: source.read(ref, imagery.bounds),
            "failed after 3 attempt(s)",
            "re-run later",
        )
        text = str(exc)
        b = imagery.bounds
        box = f"({b.left:.0f}, {b.bottom:.0f}, {b.right:.0f}, {b.top:.0f})"
        expect(ref.scene_id in text and ref.date.isoformat() in text, f"no scene named: {text}")
        expect(box in text, f"the request's bbox {box} is not named: {text}")
    return text


@case(
    "faults",
    "STAC search 429, 500, dropped connection",
    "each retried (429 after its Retry-After in seconds); the search succeeds",
    network=True,
)
def stac_search(ctx: Context) -> str:
    with ctx.loopback() as (server, imagery):
        server.inject(ROUTE_STAC_SEARCH, "429", retry_after="0.2")
        server.inject(ROUTE_STAC_SEARCH, "500")
        server.inject(ROUTE_STAC_SEARCH, "drop")
        started = time.perf_counter()
        refs = _stac(server, ctx, attempts=4).search(imagery.bounds, *APRIL)
        waited = time.perf_counter() - started
        expect(len(refs) == 3, f"{len(refs)} items")
        expect(server.count(ROUTE_STAC_SEARCH) >= 4, "the faults were not all hit")
        expect(waited >= 0.2, f"did not wait the Retry-After: {waited:.2f} s")
    return f"{len(refs)} items after a 429, a 500 and a drop ({waited:.2f} s)"


@case(
    "faults",
    "STAC COG: server hangs up",
    "every attempt hung up: SourceUnavailableError naming scene and band; the next read recovers",
    network=True,
)
def stac_cog_hangup(ctx: Context) -> str:
    with ctx.loopback() as (server, imagery):
        source = _stac(server, ctx)
        ref = source.search(imagery.bounds, *APRIL)[-1]
        nir = f"{ROUTE_COGS}{imagery.scenes[-1].scene_id}/nir.tif"
        server.inject(nir, "hangup", times=3)
        exc = expect_error(
            SourceUnavailableError,
            lambda: source.read(ref, imagery.bounds),
            ref.scene_id,
            "band B08",
            "try again later",
        )
        expect(server.count(nir) == 3, f"{server.count(nir)} requests for 3 attempts")
        server.clear_faults()
        _same_as_reference(source.read(ref, imagery.bounds), imagery)
    return str(exc)


@case(
    "faults",
    "STAC COG: connection dropped mid-body",
    "retried like any dropped connection (same pixels); every attempt dropped: "
    "SourceUnavailableError naming the asset URL, never 'malformed'",
    network=True,
)
def stac_cog_drop(ctx: Context) -> str:
    with ctx.loopback() as (server, imagery):
        source = _stac(server, ctx)
        ref = source.search(imagery.bounds, *APRIL)[-1]
        nir = f"{ROUTE_COGS}{imagery.scenes[-1].scene_id}/nir.tif"
        server.inject(nir, "drop", method="GET")
        try:
            scene = source.read(ref, imagery.bounds)
        except ImageryError as exc:
            expect(False, f"one dropped connection was not retried: {exc}")
        _same_as_reference(scene, imagery)
        expect(server.count(nir, "GET") == 2, f"{server.count(nir, 'GET')} GETs for one drop")
        # every attempt dropped: a network error naming the asset, never "malformed"
        url = f"{server.url}{nir}"
        server.inject(nir, "drop", times=3, method="GET")
        text = ""
        try:
            source.read(ref, imagery.bounds)
        except SourceUnavailableError as exc:
            text = str(exc)
        except ImageryError as exc:
            expect(False, f"a dropped connection reported as bad data: {exc}")
        expect(bool(text), "three dropped connections in a row went unnoticed")
        expect(url in text and "dropped" in text, f"the message lacks the asset URL: {text}")
        expect("malformed" not in text and "try again later" in text, text)
    return f"one drop retried, pixels identical; 3 drops: {text}"


# --------------------------------------------------------------------------------------
# The ledger
# --------------------------------------------------------------------------------------
def decisions_frame(farmers: list[str], stage: str = "sowing") -> pd.DataFrame:
    """Minimal decisions (DESIGN.md "Decisions" contract) for ``farmers`` at ``stage``."""
    return pd.DataFrame(
        [
            {
                "farmer_id": f,
                "stage": stage,
                "limit_eur": 10_000.0 + i,
                "previous_limit_eur": float("nan"),
                "drawn_eur": 0.0,
                "action": "set",
                "pd": 0.02,
                "pd_band": "A",
                "reasons": ["reliability case"],
                "flags": [],
                "counterfactual": "",
                "needs_review": False,
                "evidence": {"case": True},
            }
            for i, f in enumerate(farmers)
        ]
    )


def record(ledger: Ledger, run_id: str, frame: pd.DataFrame) -> int:
    return ledger.record_decisions(
        run_id, 2026, frame, model_version="m-test", policy_version="p-test", config={}
    )


def _one_per_key(ledger: Ledger, farmers: list[str]) -> pd.DataFrame:
    rows = ledger.decisions(2026)
    counts = rows.groupby(["farmer_id", "stage"]).size()
    expect(bool((counts == 1).all()), f"a decision is doubled: {counts[counts > 1].to_dict()}")
    expect(sorted(rows["farmer_id"]) == sorted(farmers), f"farmers {sorted(rows['farmer_id'])}")
    return rows


class ExclusiveLock:
    """A second sqlite3 connection holding an EXCLUSIVE lock on ``db`` (``release`` ends it)."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()


def _ledger(ctx: Context, query: str = "") -> tuple[Ledger, Path]:
    db = ctx.tmp / "ledger" / "ledger.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(f"sqlite:///{db}{query}")
    ledger.create()
    return ledger, db


@case(
    "faults",
    "ledger locked, then released",
    "record_decisions waits for the lock and completes: one decision per farmer and stage",
)
def ledger_lock_wait(ctx: Context) -> str:
    ledger, db = _ledger(ctx, "?timeout=10")
    lock = ExclusiveLock(db)
    timer = threading.Timer(0.5, lock.release)
    timer.start()
    started = time.perf_counter()
    try:
        written = record(ledger, "run-1", decisions_frame(["F-1", "F-2", "F-3"]))
    finally:
        timer.join()
    waited = time.perf_counter() - started
    expect(written == 3 and waited >= 0.4, f"wrote {written} after {waited:.2f} s")
    _one_per_key(ledger, ["F-1", "F-2", "F-3"])
    return f"waited {waited:.2f} s for the lock, wrote 3"


@case(
    "faults",
    "ledger locked for good",
    "LedgerError after the timeout (nothing written, "
    "re-run the same run id); the re-run writes each decision exactly once",
)
def ledger_lock_error(ctx: Context) -> str:
    ledger, db = _ledger(ctx, "?timeout=0.3")
    record(ledger, "run-1", decisions_frame(["F-1"]))
    lock = ExclusiveLock(db)
    started = time.perf_counter()
    try:
        exc = expect_error(
            LedgerError,
            lambda: record(ledger, "run-2", decisions_frame(["F-1", "F-2", "F-3"])),
            "database is locked",
            "nothing was written",
            "re-run the same run id",
        )
    finally:
        lock.release()
    waited = time.perf_counter() - started
    expect(waited < 5, f"the URL asked for a 0.3 s lock timeout but it waited {waited:.1f} s")
    expect(record(ledger, "run-2", decisions_frame(["F-1", "F-2", "F-3"])) == 2, "retry")
    expect(record(ledger, "run-2", decisions_frame(["F-1", "F-2", "F-3"])) == 0, "re-run")
    _one_per_key(ledger, ["F-1", "F-2", "F-3"])
    return f"{exc}; retry wrote 2, a second retry 0"


@case(
    "faults",
    "ledger file deleted mid-run",
    "LedgerError naming the file: restore it; never a silent write to a fresh empty ledger",
)
def ledger_deleted(ctx: Context) -> str:
    ledger, db = _ledger(ctx)
    record(ledger, "run-1", decisions_frame(["F-1"]))
    db.unlink()
    exc = expect_error(
        LedgerError,
        lambda: record(ledger, "run-1", decisions_frame(["F-1", "F-2"], "vegetative")),
        str(db),
        "restore it from a backup",
    )
    expect(not db.exists(), "the write recreated an empty ledger file")
    return str(exc)


@case("faults", "ledger read-only", "LedgerError (nothing written); decisions intact after")
def ledger_read_only(ctx: Context) -> str:
    ledger, db = _ledger(ctx)
    record(ledger, "run-1", decisions_frame(["F-1"]))
    seen = []
    # A read-only database (as a read-only mount gives): works even as root.
    read_only = Ledger(f"sqlite:///file:{db}?mode=ro&uri=true")
    exc = expect_error(
        LedgerError, lambda: record(read_only, "run-2", decisions_frame(["F-2"])), "readonly"
    )
    seen.append("mode=ro")
    if os.geteuid() != 0:  # root ignores directory permissions
        folder = db.parent
        mode = folder.stat().st_mode
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            expect_error(LedgerError, lambda: record(ledger, "run-2", decisions_frame(["F-2"])))
        finally:
            folder.chmod(mode)
        seen.append("read-only directory")
    _one_per_key(ledger, ["F-1"])
    return f"{' and '.join(seen)}: {exc}"


# --------------------------------------------------------------------------------------
# The disk cache
# --------------------------------------------------------------------------------------
@case(
    "faults",
    "disk cache half-written or corrupt",
    "detected (checksum), discarded with a warning and refetched; a stray temp file is ignored",
    network=True,
)
def cache_corrupt(ctx: Context) -> str:
    with ctx.loopback() as (server, imagery):
        cache = ctx.tmp / "cache"
        source = _sh(server, ctx, cache_dir=cache)
        ref = source.search(imagery.bounds, *APRIL)[0]
        source.read(ref, imagery.bounds)
        entries = sorted(cache.rglob("*.bin"), key=lambda p: p.stat().st_size)
        tiff = entries[-1]  # the Process API answer is the largest entry
        (tiff.parent / f".{tiff.stem[:16]}.crash.tmp").write_bytes(b"half a write")
        blob = tiff.read_bytes()
        tiff.write_bytes(blob[: len(blob) // 2])  # half-written
        before = server.count(ROUTE_PROCESS)
        with capture_logs() as logs:
            _same_as_reference(source.read(ref, imagery.bounds), imagery)
        expect(server.count(ROUTE_PROCESS) == before + 1, "the truncated entry was not refetched")
        expect(any("corrupt" in line and str(tiff) in line for line in logs), "no warning")
        flipped = bytearray(tiff.read_bytes())
        flipped[-100] ^= 0xFF  # same length, one byte changed
        tiff.write_bytes(bytes(flipped))
        _same_as_reference(source.read(ref, imagery.bounds), imagery)
        expect(server.count(ROUTE_PROCESS) == before + 2, "the flipped entry was not refetched")
        source.read(ref, imagery.bounds)
        expect(server.count(ROUTE_PROCESS) == before + 2, "the refetched entry is not reused")
    return "truncated and bit-flipped entries refetched (1 request each), then served from cache"


# --------------------------------------------------------------------------------------
# The process killed mid-batch
# --------------------------------------------------------------------------------------
#: A re-limit batch (the ``relimit`` flow at the vegetative stage) in a process of its own.
_RELIMIT = """
import sys
from pathlib import Path

from flows.season import relimit
from flows.settings import SeasonParams
from geo.types import GrowthStage

archive, out, run_id, throttle = sys.argv[1:5]
params = SeasonParams(
    out=Path(out),
    imagery={"source": "local", "archive": Path(archive)},
    batch_size=2,
    throttle_s=float(throttle),
    simulate_draws=False,
)
relimit(params, GrowthStage.VEGETATIVE, run_id)
"""


def _decided(db: Path) -> pd.DataFrame:
    """(farmer_id, stage, run_id) of every decision in the SQLite ledger ``db``."""
    with sqlite3.connect(db, timeout=10) as conn:
        return pd.read_sql("select farmer_id, stage, run_id from decisions", conn)


@contextmanager
def _prefect_api() -> Iterator[str]:
    """The Prefect API the batch processes report to: ``PREFECT_API_URL`` when set (a
    server, or the test harness), else one local server shared by both runs (each process
    starting its own ephemeral one would cost ~20 s more)."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        yield str(PREFECT_API_URL.value())
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=120)
    try:
        yield server.api_url
    finally:
        server.stop()


@case(
    "faults",
    "process killed mid-batch",
    "SIGKILL of a re-limit batch process after some batches committed: whole batches only; "
    "the re-run with the same run id completes, exactly one decision per farmer and stage",
    slow=True,
)
def killed_mid_batch(ctx: Context) -> str:
    import signal
    import subprocess
    import sys

    from geo.synth import SynthConfig, write_archive

    archive = write_archive(
        ctx.tmp / "archive", SynthConfig(seed=11, size_px=48, n_farmers=8, revisit_days=10)
    )
    farmers = set(pd.read_parquet(archive / "parcels.parquet")["farmer_id"])
    out, run_id = ctx.tmp / "out", "killed-mid-batch"
    db = out / "ledger.sqlite"
    cmd = [sys.executable, "-c", _RELIMIT, str(archive), str(out), run_id]
    with _prefect_api() as api:
        env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_LOGGING_LEVEL": "WARNING"}
        proc = subprocess.Popen(
            [*cmd, "1.5"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        seen, deadline = 0, time.monotonic() + 240
        try:
            while time.monotonic() < deadline and proc.poll() is None and not seen:
                if db.exists():
                    try:
                        seen = len(_decided(db))
                    except (sqlite3.Error, pd.errors.DatabaseError):
                        seen = 0  # the schema is being created
                time.sleep(0.05)
            alive = proc.poll() is None
            os.kill(proc.pid, signal.SIGKILL)  # a real crash: no cleanup, no finally blocks
        finally:
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate(timeout=30)
        expect(alive, f"the batch ended before it could be killed: {err.decode()[-500:]}")
        partial = len(_decided(db))
        expect(0 < partial < len(farmers), f"killed with {partial} of {len(farmers)} decided")
        expect(partial % 2 == 0, f"{partial} decisions: a batch of 2 was committed partly")
        rerun = subprocess.run([*cmd, "0"], env=env, capture_output=True, timeout=300)
    expect(rerun.returncode == 0, f"the re-run failed: {rerun.stderr.decode()[-800:]}")
    final = _decided(db)
    counts = final.groupby(["farmer_id", "stage"]).size()
    expect(bool((counts == 1).all()), f"doubled: {counts[counts > 1].to_dict()}")
    expect(set(final["farmer_id"]) == farmers, f"decided {sorted(final['farmer_id'])}")
    expect(set(final["run_id"]) == {run_id}, f"run ids {set(final['run_id'])}")
    return (
        f"killed with {partial} of {len(farmers)} decided (whole batches of 2); "
        f"re-run: {len(final)} decisions, one per farmer and stage"
    )
