"""No secret survives a whole season run: grep every trace the run leaves (issue #7).

Two runs of the real ``season`` flow on a small generated archive:

1. Imagery from Sentinel Hub, played by the loopback server (tests/geo/loopback.py) over the
   archive's scenes, as a lender sets it up: the OAuth client in ``SH_CLIENT_ID`` /
   ``SH_CLIENT_SECRET``, the token URL in a ``sentinelhub`` profile under a temporary
   ``XDG_CONFIG_HOME``. Stages pre-sowing and sowing.
2. The same parcels from the local archive with a ledger URL holding a database password
   (``postgresql://...`` on a closed port, whose driver is not installed): the run must stop
   with a clear :class:`LedgerError` that masks the password.

After each, the secret (raw, URL-encoded, base64, and base64 of ``client:secret`` as in a
Basic header) is looked for in: every file under the run's out dir (run manifest, limits
CSV/Parquet, report, cache, the SQLite ledger), every log record (root logger at DEBUG, the
``prefect`` loggers lowered to DEBUG), the exception's text, and the Prefect server: its run
logs, flow-run parameters and state messages, artifacts, and the bytes of its SQLite file.

Prefect stores the ``season`` flow's parameters as JSON: ``SeasonParams`` masks the ledger
URL's password there (and in run.json), keeping it only on the live object.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import numpy as np
import pytest
import rasterio
from fixtures_imagery import BuiltScene, ImagerySet, SceneSpec
from loopback import ROUTE_PROCESS, ROUTE_TOKEN, LoopbackServer

from flows.settings import SeasonParams
from geo.errors import LedgerError
from geo.sources.base import SCENE_BANDS
from geo.types import BANDS, GrowthStage

pytestmark = pytest.mark.network

SH_SECRET = "sh-Secret+run=Zq9/leak-7c41"  # '+', '=', '/' change under URL encoding
DB_PASSWORD = "db-Pw-run-4Kx8-leak"
CLIENT_ID = "secrets-run-client"
PROFILE = "secrets-run"
LAST_SCENE = dt.date(2026, 4, 20)  # the sowing decision (poitou-nord, the later region)
STAGES = (GrowthStage.PRE_SOWING, GrowthStage.SOWING)


def _forms(secret: str, user: str | None = None) -> dict[str, str]:
    """The ways ``secret`` could be written down: raw, URL-encoded, base64 (and base64 of
    ``user:secret``, a Basic authorization header)."""
    forms = {
        "raw": secret,
        "url-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64url": base64.urlsafe_b64encode(secret.encode()).decode(),
    }
    if user is not None:
        forms["basic-auth"] = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return forms


def _leaks(forms: dict[str, str], where: str, text: str | bytes) -> list[str]:
    blob = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [f"{kind} form in {where}" for kind, form in forms.items() if form.encode() in blob]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


class _Records(logging.Handler):
    """Every record reaching the root logger, kept whole."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        """Each record as its message, raw arguments and traceback."""
        texts = []
        for r in self.records:
            try:
                message = r.getMessage()
            except Exception:  # a broken format string must not hide the raw parts
                message = ""
            extra = "".join(traceback.format_exception(*r.exc_info)) if r.exc_info else ""
            texts.append(f"{r.name} {r.levelname} {message} {r.msg!r} {r.args!r} {extra}")
        return texts


@contextmanager
def _debug_logs() -> Iterator[_Records]:
    """Capture every record at DEBUG: the root logger's, and Prefect's (WARNING by default
    here, so its run loggers also send INFO and DEBUG lines to the server)."""
    handler = _Records()
    root, prefect = logging.getLogger(), logging.getLogger("prefect")
    levels = root.level, prefect.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    prefect.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        prefect.setLevel(levels[1])


@dataclass
class Run:
    """What one season run left behind."""

    out: Path
    logs: list[str]
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, text)


def _prefect_texts(run_id: str) -> list[tuple[str, str | bytes]]:
    """What the Prefect server keeps: run logs, flow-run parameters and states, artifacts,
    and the bytes of its SQLite database (what a server admin could read).

    Waits (up to 30 s) for the season flow run ``run_id``'s final log line: logs reach the
    server in batches.
    """
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    out: list[tuple[str, str | bytes]] = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=200)
        top = [
            r.id
            for r in runs
            if r.parameters.get("params", {}).get("run_id") == run_id
            and r.parent_task_run_id is None
        ]
        assert top, f"no flow run of {run_id} on the Prefect server"
        deadline = time.monotonic() + 30
        while True:
            APILogHandler().flush()
            logs, offset = [], 0
            while batch := client.read_logs(limit=200, offset=offset):
                logs += batch
                offset += len(batch)
            if any(log.flow_run_id in top and "Finished in state" in log.message for log in logs):
                break
            assert time.monotonic() < deadline, f"no final log line of {run_id} in Prefect"
            time.sleep(0.5)
        out += [(f"Prefect log {log.name}", log.message) for log in logs]
        for run in client.read_flow_runs(limit=200):
            state = run.state.message if run.state else ""
            out.append((f"flow run {run.name} parameters / state", f"{run.parameters} {state}"))
        for artifact in client.read_artifacts():
            out.append((f"artifact {artifact.key}", f"{artifact.data} {artifact.description}"))
    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value() or "")
    if url.startswith("sqlite"):
        db = Path(url.split(":///", 1)[1])
        for path in db.parent.glob(db.name + "*"):  # the database, its -wal and -shm
            out.append((f"Prefect database {path.name}", path.read_bytes()))
    return out


def _assert_clean(forms: dict[str, str], places: list[tuple[str, str | bytes]]) -> None:
    """Fail listing every place a form of the secret appears."""
    found = [hit for where, text in places for hit in _leaks(forms, where, text)]
    assert not found, "secret leaked:\n" + "\n".join(found[:20])


def _run_traces(run: Run) -> list[tuple[str, str | bytes]]:
    """Every file under the out dir, every log record and the texts the run kept."""
    files: list[tuple[str, str | bytes]] = [
        (str(p.relative_to(run.out)), p.read_bytes()) for p in _files(run.out)
    ]
    logs: list[tuple[str, str | bytes]] = [
        (f"log record #{i}: {text[:100]}", text) for i, text in enumerate(run.logs)
    ]
    return [*files, *logs, *run.texts]


# -- imagery and services ------------------------------------------------------------------
@pytest.fixture(scope="module")
def prefect_api() -> Iterator[None]:
    """The Prefect API the flows report to: a session harness already running (tests/flows),
    else a temporary one for this module."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        yield
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small generated season of tests/flows (``small_archive``), written once."""
    from geo.synth import SynthConfig, write_archive

    root = tmp_path_factory.mktemp("archive")
    return write_archive(root, SynthConfig(seed=11, size_px=200, n_farmers=60))


@pytest.fixture(scope="module")
def server(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    """Sentinel Hub on 127.0.0.1 serving the archive's scenes up to ``LAST_SCENE``, with
    ``SH_SECRET`` as the only client secret it accepts."""
    root = tmp_path_factory.mktemp("loopback")
    scenes: list[BuiltScene] = []
    transform, crs, width, height = None, "", 0, 0
    for path in sorted((archive / "scenes").glob("S2L2A_*.tif")):
        with rasterio.open(path) as src:
            date = dt.date.fromisoformat(src.tags()["ACQUISITION_DATE"])
            if date > LAST_SCENE:
                continue
            stack = src.read()
            profile = dict(src.profile, count=1, driver="GTiff")
            transform, crs, width, height = (
                src.transform,
                src.crs.to_string(),
                src.width,
                src.height,
            )
            cloud = 100.0 * float(src.tags()["CLOUD_COVER"])  # the archive keeps a 0-1 fraction
        # the loopback catalogue puts the scene index in the item's seconds: keep it under 60
        assert len(scenes) < 60, "too many scenes for the loopback catalogue"
        scene = BuiltScene(
            index=len(scenes),
            spec=SceneSpec(date, cloud, tiles=("31TCJ",)),
            dn=stack[: len(BANDS)],
            scl=stack[-1].astype(np.uint8),
        )
        for i, band in enumerate(SCENE_BANDS):
            band_file = root / scene.scene_id / f"{band}.tif"
            band_file.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(band_file, "w", **profile) as dst:
                dst.write(stack[i], 1)
            scene.band_files[band] = band_file
        scenes.append(scene)
    assert transform is not None and scenes
    imagery = ImagerySet(root, scenes, crs=crs, transform=transform, width=width, height=height)
    with LoopbackServer(imagery, client_id=CLIENT_ID, client_secret=SH_SECRET, page_size=20) as srv:
        yield srv


@pytest.fixture(scope="module")
def sh_run(
    server: LoopbackServer,
    archive: Path,
    prefect_api: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    """Pre-sowing and sowing from Sentinel Hub, as a lender sets it up: the OAuth client in
    the environment, the token URL in a sentinelhub profile."""
    from flows.season import season

    root = tmp_path_factory.mktemp("sh-run")
    home = root / "xdg"
    (home / "sentinelhub").mkdir(parents=True)
    (home / "sentinelhub" / "config.toml").write_text(
        f'[{PROFILE}]\nsh_base_url = "{server.url}"\nsh_token_url = "{server.token_url}"\n'
        "max_download_attempts = 3\ndownload_sleep_time = 0.05\n"
        "download_timeout_seconds = 10.0\n"
    )
    out = root / "out"
    params = SeasonParams(
        out=out,
        parcels=archive / "parcels.parquet",
        farmers=archive / "farmers.csv",
        imagery={"source": "sentinelhub", "archive": archive, "sh_profile": PROFILE},
        run_id="secrets-run-sentinelhub",
        stages=STAGES,
        simulate_draws=False,
    )
    server.reset_counts()
    with pytest.MonkeyPatch.context() as mp, _debug_logs() as logs:
        mp.setenv("XDG_CONFIG_HOME", str(home))
        mp.setenv("SH_CLIENT_ID", CLIENT_ID)
        mp.setenv("SH_CLIENT_SECRET", SH_SECRET)
        outcomes = season(params)
    assert [o.stage for o in outcomes] == list(STAGES)
    assert all(len(o.decisions) > 0 for o in outcomes)
    assert server.count(ROUTE_TOKEN) >= 1 and server.count(ROUTE_PROCESS) > 0
    yield Run(out, logs.texts(), [("outcomes", repr(outcomes))])


@pytest.fixture(scope="module")
def sh_secrets(sh_run: Run, server: LoopbackServer) -> dict[str, str]:
    """The client secret in every form, and the bearer tokens the server issued."""
    secrets = _forms(SH_SECRET, CLIENT_ID)
    for token in server.tokens_issued:
        secrets[f"token {token[:8]}"] = token
    return secrets


@pytest.fixture(scope="module")
def db_run(
    archive: Path, prefect_api: None, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Run, LedgerError]:
    """Pre-sowing from the local archive, the ledger a PostgreSQL URL with a password (its
    driver is not installed and the port is closed): the run must stop."""
    from flows.season import season

    out = tmp_path_factory.mktemp("db-run") / "out"
    params = SeasonParams(
        out=out,
        imagery={"source": "local", "archive": archive},
        ledger_url=f"postgresql://lender:{DB_PASSWORD}@127.0.0.1:9/ledger",
        run_id="secrets-run-database",
        stages=(GrowthStage.PRE_SOWING,),
        simulate_draws=False,
    )
    with _debug_logs() as logs, pytest.raises(LedgerError) as failed:
        season(params)
    exc = failed.value
    texts = [
        ("exception message", str(exc)),
        ("exception repr", repr(exc)),
        ("traceback", "".join(traceback.format_exception(exc))),
    ]
    return Run(out, logs.texts(), texts), exc


# -- the checks ----------------------------------------------------------------------------
def test_a_sentinelhub_season_writes_its_outputs(sh_run: Run) -> None:
    for name in ("run.json", "limits.csv", "limits.parquet", "report/index.html"):
        assert (sh_run.out / name).is_file(), f"{name} not written"
    assert (sh_run.out / "ledger.sqlite").stat().st_size > 0
    assert any((sh_run.out / "cache").rglob("*")), "nothing cached"
    assert len(sh_run.logs) > 100, "the DEBUG capture saw too little"


def test_the_sentinelhub_secret_is_in_no_output_or_log(
    sh_run: Run, sh_secrets: dict[str, str]
) -> None:
    _assert_clean(sh_secrets, _run_traces(sh_run))


def test_the_sentinelhub_secret_is_not_on_the_prefect_server(
    sh_run: Run, sh_secrets: dict[str, str]
) -> None:
    _assert_clean(sh_secrets, _prefect_texts("secrets-run-sentinelhub"))


def test_a_ledger_password_stops_the_run_with_a_masked_message(
    db_run: tuple[Run, LedgerError],
) -> None:
    run, exc = db_run
    message = str(exc)
    assert "cannot open the database" in message, message
    assert "postgresql://lender:***@127.0.0.1:9/ledger" in message, message
    assert "install its driver" in message, message
    # run.json is written before the ledger is opened: its copy of the URL is masked
    assert "lender:***@127.0.0.1:9" in (run.out / "run.json").read_text()


def test_the_ledger_password_is_in_no_output_log_or_error(
    db_run: tuple[Run, LedgerError],
) -> None:
    _assert_clean(_forms(DB_PASSWORD, "lender"), _run_traces(db_run[0]))


def test_the_ledger_password_is_not_on_the_prefect_server(
    db_run: tuple[Run, LedgerError],
) -> None:
    _assert_clean(_forms(DB_PASSWORD, "lender"), _prefect_texts("secrets-run-database"))


def test_a_masked_ledger_password_is_left_to_the_driver() -> None:
    params = SeasonParams(ledger_url=f"postgresql://lender:{DB_PASSWORD}@db.example/ledger")
    stored = json.loads(params.model_dump_json())  # what a deployment keeps on the server
    assert DB_PASSWORD not in json.dumps(stored)
    assert stored["ledger_url"] == "postgresql://lender:***@db.example/ledger"
    assert params.ledger() == f"postgresql://lender:{DB_PASSWORD}@db.example/ledger"
    # a scheduled run gets the masked URL back: the password then comes from PGPASSWORD
    assert SeasonParams.model_validate(stored).ledger() == "postgresql://lender@db.example/ledger"
