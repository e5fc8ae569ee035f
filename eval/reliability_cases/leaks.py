"""Secrets: the Sentinel Hub client secret, a database password and officers' tokens never
appear in logs (DEBUG included), exception messages, ``repr`` or files written; tokens are
compared in constant time.
"""

from __future__ import annotations

import ast
import logging
import traceback
from functools import partial
from typing import Any

from eval.reliability_cases.base import (
    REPO,
    CaseSkipped,
    Context,
    capture_logs,
    case,
    expect,
    expect_error,
    files_containing,
)
from eval.reliability_cases.faults import APRIL, ROUTE_CATALOG, ROUTE_PROCESS, decisions_frame
from geo.errors import ImageryError, LedgerError, SourceUnavailableError
from geo.sources.sentinelhub import SentinelHubSettings, SentinelHubSource
from scoring.ledger import Ledger

SH_SECRET = "sh-secret-Xq7-reliability-2b9f"
WRONG_SECRET = "sh-wrong-secret-K2m-0c4a"
DB_PASSWORD = "db-Pw-7Hq2-reliability"
OFFICER_TOKEN = "officer-token-Zr8-5d1e6f0a9b"
VIEWER_TOKEN = "viewer-token-Lp4-7e2c1b9d3f"


def _leaks(secrets: list[str], logs: list[str], texts: list[str]) -> list[str]:
    """Which secrets (by index) appear in which log line or text."""
    found = []
    for i, secret in enumerate(secrets):
        found += [f"secret #{i} in log: {line[:120]}" for line in logs if secret in line]
        found += [f"secret #{i} in text: {text[:120]}" for text in texts if secret in text]
    return found


def _error_texts(exc: BaseException) -> list[str]:
    """The message, repr and full traceback text of ``exc`` and its chain."""
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


@case(
    "secrets",
    "Sentinel Hub client secret",
    "never in DEBUG logs, errors, repr or the "
    "cache files, through faults, a 401 renewal and a refused secret",
    network=True,
)
def sh_secret(ctx: Context) -> str:
    texts: list[str] = []
    cache = ctx.tmp / "cache"
    with (
        capture_logs(logging.DEBUG) as logs,
        ctx.loopback(client_secret=SH_SECRET) as (
            server,
            imagery,
        ),
    ):
        settings = SentinelHubSettings(
            client_id=server.client_id,
            client_secret=SH_SECRET,
            base_url=server.url,
            token_url=server.token_url,
            max_attempts=2,
            backoff_s=0.01,
            timeout_s=1.0,
        )
        source = SentinelHubSource(settings, cache_dir=cache, max_cloud_cover=50)
        texts += [repr(source), repr(settings), str(settings), settings.model_dump_json()]
        server.inject(ROUTE_CATALOG, "expire_token")
        refs = source.search(imagery.bounds, *APRIL)
        source.read(refs[0], imagery.bounds)
        server.inject(ROUTE_PROCESS, "500", times=5)
        exc = expect_error(SourceUnavailableError, lambda: source.read(refs[1], imagery.bounds))
        texts += _error_texts(exc)
        wrong_settings = SentinelHubSettings(
            client_id=server.client_id,
            client_secret=WRONG_SECRET,
            base_url=server.url,
            token_url=server.token_url,
        )
        wrong = SentinelHubSource(wrong_settings, cache_dir=ctx.tmp / "cache-wrong")
        texts.append(repr(wrong))
        refused = expect_error(
            ImageryError, lambda: wrong.search(imagery.bounds, *APRIL), "refused the OAuth client"
        )
        texts += _error_texts(refused)
        tokens = list(server.tokens_issued)
    expect(len(tokens) >= 2, f"{len(tokens)} tokens issued: the 401 renewal did not happen")
    secrets = [SH_SECRET, WRONG_SECRET, *tokens]
    leaks = _leaks(secrets, logs, texts) + files_containing(ctx.tmp, *secrets)
    expect(not leaks, f"leaked: {leaks[:3]}")
    n_files = sum(1 for p in cache.rglob("*") if p.is_file())
    return f"{len(logs)} DEBUG lines, {len(texts)} texts, {n_files} cache files: no secret"


def _open_and_create(url: str) -> None:
    """Open a ledger and create its tables: the driver or the connection fails."""
    Ledger(url).create()


@case(
    "secrets",
    "database password",
    "never in repr, logs, errors or the ledger file (a config holding the URL is stored masked)",
)
def db_password(ctx: Context) -> str:
    texts: list[str] = []
    with capture_logs(logging.DEBUG) as logs:
        for url in (
            f"postgresql+psycopg://lender:{DB_PASSWORD}@127.0.0.1:1/ledger",  # nobody listens
            f"postgresql+asyncpg://lender:{DB_PASSWORD}@127.0.0.1:1/ledger",  # async driver
            f"mysql+pymysql://lender:{DB_PASSWORD}@127.0.0.1:1/ledger",
        ):
            exc = expect_error(LedgerError, partial(_open_and_create, url), "***")
            texts += _error_texts(exc)
        db = ctx.tmp / "ledger.sqlite"
        ledger = Ledger(f"sqlite:///{db}")
        ledger.create()
        url = f"postgresql+psycopg://lender:{DB_PASSWORD}@db.example/ledger"
        params = {"ledger_url": url, "nested": [{"dsn": url}]}
        ledger.start_run("run-1", "season", params)
        ledger.record_decisions(
            "run-1",
            2026,
            decisions_frame(["F-1"]),
            model_version="m",
            policy_version="p",
            config=params,
        )
        texts += [repr(ledger), ledger.safe_url, str(ledger.url), repr(ledger.engine)]
        stored = ledger.decisions(2026)["config"].iloc[0]
        run_params = ledger.runs()["params"].iloc[0]
    expect(
        stored["ledger_url"] == "postgresql+psycopg://lender:***@db.example/ledger",
        f"stored config: {stored}",
    )
    expect(run_params["nested"][0]["dsn"].endswith(":***@db.example/ledger"), f"{run_params}")
    leaks = _leaks([DB_PASSWORD], logs, texts) + files_containing(ctx.tmp, DB_PASSWORD)
    expect(not leaks, f"leaked: {leaks[:3]}")
    return "3 URLs refused with the password masked; stored config masked; ledger file clean"


def _lookup_uses_compare_digest(source: str) -> tuple[bool, bool]:
    """(TokenStore.lookup calls hmac.compare_digest, it compares a token with ==/!=)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "TokenStore":
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "lookup":
                    calls = {ast.unparse(n.func) for n in ast.walk(fn) if isinstance(n, ast.Call)}
                    compares = [
                        n
                        for n in ast.walk(fn)
                        if isinstance(n, ast.Compare)
                        and any(isinstance(op, ast.Eq | ast.NotEq) for op in n.ops)
                    ]
                    return "hmac.compare_digest" in calls, bool(compares)
    raise CaseSkipped("flows/review/auth.py has no TokenStore.lookup")


@case(
    "secrets",
    "officer tokens",
    "compared with hmac.compare_digest; a wrong token is refused "
    "(401), a viewer cannot override (403); no token in logs or messages",
)
def officer_tokens(ctx: Context) -> str:
    path = REPO / "flows" / "review" / "auth.py"
    if not path.is_file():
        raise CaseSkipped("flows/review/auth.py does not exist yet (the review app)")
    digest, equality = _lookup_uses_compare_digest(path.read_text(encoding="utf-8"))
    expect(digest, "TokenStore.lookup does not call hmac.compare_digest")
    expect(not equality, "TokenStore.lookup compares tokens with == / != (not constant time)")
    from flows.review.auth import AuthError, TokenStore, authenticate

    texts: list[str] = []
    wrong = "officer-token-Zr8-5d1e6f0a9c"  # one character off
    with capture_logs(logging.DEBUG) as logs:
        store = TokenStore({OFFICER_TOKEN: "A. Martin:officer", VIEWER_TOKEN: "Audit:viewer"})
        texts.append(repr(store))
        ok = authenticate(store, f"Bearer {OFFICER_TOKEN}", None, "officer")
        expect(ok.name == "A. Martin", f"the right token maps to {ok}")
        attempts: list[tuple[str | None, str | None, Any, int]] = [
            (f"Bearer {wrong}", None, "viewer", 401),
            (None, wrong, "viewer", 401),
            (None, None, "viewer", 401),
            (f"Bearer {VIEWER_TOKEN}", None, "officer", 403),
        ]
        for header, cookie, need, status in attempts:
            exc = expect_error(AuthError, partial(authenticate, store, header, cookie, need))
            status_seen: Any = getattr(exc, "status", None)
            expect(status_seen == status, f"{header or cookie}: status {status_seen} != {status}")
            texts += _error_texts(exc)
    leaks = _leaks([OFFICER_TOKEN, VIEWER_TOKEN, wrong], logs, texts)
    expect(not leaks, f"leaked: {leaks[:3]}")
    return "lookup uses hmac.compare_digest, no ==; wrong 401, viewer 403, nothing leaked"
