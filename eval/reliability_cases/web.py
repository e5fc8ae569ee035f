"""The review app and the static report under attack (group ``secrets``; issue #17, 6-8).

A page on another port of the same host cannot make an officer's browser record an override
(the cookie is SameSite=Strict, but another port is the same *site*): state-changing requests
need the app's own origin and the session's CSRF token, and JSON on the API. A parcel or
farmer id holding HTML is shown as text on every page, and the report pages carry a
Content-Security-Policy. An override's reason and body are bounded, unknown fields are
refused, and the core-banking export says who set a limit and why.

The cases run the app in-process (Starlette's test client speaks ASGI to the real app, with the
headers a browser would send); ``tests/flows/test_review_forgery.py`` replays the same attacks
from a real Chromium against uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import importlib
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from eval.reliability_cases.base import REPO, CaseSkipped, Context, case, expect
from eval.reliability_cases.leaks import OFFICER_TOKEN, VIEWER_TOKEN

FLOWS_TESTS = REPO / "tests" / "flows"
TOKENS = {OFFICER_TOKEN: "A. Martin:officer", VIEWER_TOKEN: "Audit:viewer"}
#: What a lender's file could hold in an id: it would set the page title if it ran.
PAYLOAD = "<img src=x onerror=\"document.title='pwned'\">"


def _review_fixtures() -> ModuleType:
    """``tests/flows/review_fixtures.py`` (the tiny hand-made season run)."""
    if not (FLOWS_TESTS / "review_fixtures.py").is_file():
        raise CaseSkipped(f"{FLOWS_TESTS}/review_fixtures.py is not here (tests not installed)")
    if str(FLOWS_TESTS) not in sys.path:
        sys.path.insert(0, str(FLOWS_TESTS))
    return importlib.import_module("review_fixtures")


@contextmanager
def _app(out: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from flows.review import create_app

    with TestClient(create_app(out, tokens=TOKENS), base_url="http://127.0.0.1:8000") as c:
        yield c


def _n_overrides(url: str) -> int:
    from scoring.ledger import Ledger

    return len(Ledger(url).overrides(2026))


@case(
    "secrets",
    "forged override from another port",
    "with the officer's cookie, a text/plain or form POST from http://127.0.0.1:8001 is "
    "refused (403/415), JSON without the session's CSRF token is refused (403); "
    "the ledger is unchanged",
)
def forged_override(ctx: Context) -> str:
    run = _review_fixtures().write_tiny_run(ctx.tmp / "run")
    before = _n_overrides(run.ledger_url)
    seen: list[str] = []
    with _app(run.out) as c:
        login = c.post("/login", data={"token": OFFICER_TOKEN}, follow_redirects=False)
        expect(login.status_code == 303, f"login answered {login.status_code}")
        evil = {"Origin": "http://127.0.0.1:8001", "Sec-Fetch-Site": "same-site"}
        body = '{"limit_eur": 150000, "reason": "forged"}'
        attacks: list[tuple[str, dict[str, str], str]] = [
            ("text/plain fetch", {**evil, "Content-Type": "text/plain"}, body),
            (
                "form POST",
                {**evil, "Content-Type": "application/x-www-form-urlencoded"},
                "limit_eur=150000&reason=forged",
            ),
            ("JSON, other origin", {**evil, "Content-Type": "application/json"}, body),
            ("JSON, no CSRF token", {"Content-Type": "application/json"}, body),
        ]
        for name, headers, content in attacks:
            r = c.post("/api/farmers/F-002/override", headers=headers, content=content)
            seen.append(f"{name} {r.status_code}")
            expect(r.status_code in (403, 415), f"{name}: answered {r.status_code} {r.text[:80]}")
        plain = c.post(
            "/api/farmers/F-002/override",
            headers={"Authorization": f"Bearer {OFFICER_TOKEN}", "Content-Type": "text/plain"},
            content=body,
        )
        seen.append(f"Bearer text/plain {plain.status_code}")
        expect(plain.status_code == 415, f"text/plain with a Bearer token: {plain.status_code}")
    after = _n_overrides(run.ledger_url)
    expect(after == before, f"{after - before} forged override(s) recorded ({', '.join(seen)})")
    return f"{', '.join(seen)}; ledger unchanged"


@case(
    "secrets",
    "HTML in parcel and farmer ids",
    "report/map.html and index.html show a parcel_id / farmer_id holding <img onerror> as text "
    "and carry a Content-Security-Policy without inline script allowances",
)
def html_in_ids(ctx: Context) -> str:
    fixtures = _review_fixtures()
    make = getattr(fixtures, "write_report_with_ids", None)
    if make is None:
        raise CaseSkipped("tests/flows/review_fixtures.py has no write_report_with_ids")
    pages = make(ctx.tmp / "report-run", parcel_id=f"P-1{PAYLOAD}", farmer_id=f"F-1{PAYLOAD}")
    found = []
    for name in ("map.html", "index.html"):
        text = (pages["report"].parent / name).read_text(encoding="utf-8")
        # raw in the HTML, or in folium's JSON data (``<`` written as \u003c), which its
        # tooltip inserts as HTML
        raw = text.count("<img src=x") + text.count("\\u003cimg src=x")
        csp = 'http-equiv="Content-Security-Policy"' in text
        expect(raw == 0, f"{name}: the id's <img> tag is written raw {raw} time(s)")
        expect(csp, f"{name}: no Content-Security-Policy meta tag")
        found.append(f"{name}: 0 raw tags, CSP meta")
    return "; ".join(found)


@case(
    "secrets",
    "oversized or unknown override fields",
    "a 5 MB body is refused (413), a 2,001-character reason and an unknown JSON field are "
    "refused (422), nothing recorded",
)
def override_bounds(ctx: Context) -> str:
    run = _review_fixtures().write_tiny_run(ctx.tmp / "run")
    before = _n_overrides(run.ledger_url)
    auth = {"Authorization": f"Bearer {OFFICER_TOKEN}"}
    url = "/api/farmers/F-003/override"
    seen = []
    with _app(run.out) as c:
        huge = c.post(url, headers=auth, json={"limit_eur": 1000, "reason": "x" * 5_000_000})
        seen.append(f"5 MB {huge.status_code}")
        expect(huge.status_code == 413, f"a 5 MB reason answered {huge.status_code}")
        long = c.post(url, headers=auth, json={"limit_eur": 1000, "reason": "y" * 2001})
        seen.append(f"2,001 chars {long.status_code}")
        expect(long.status_code == 422, f"a 2,001-character reason answered {long.status_code}")
        extra = c.post(
            url, headers=auth, json={"limit_eur": 1000, "reason": "visit", "officer": "someone"}
        )
        seen.append(f"unknown field {extra.status_code}")
        expect(extra.status_code == 422, f"an unknown field answered {extra.status_code}")
        expect("officer" in extra.text, f"the refusal does not name the field: {extra.text}")
    after = _n_overrides(run.ledger_url)
    expect(after == before, f"{after - before} override(s) recorded ({', '.join(seen)})")
    return ", ".join(seen) + "; nothing recorded"


@case(
    "secrets",
    "override in the core-banking export",
    "after an officer's override, /api/limits.csv and .parquet give the override's limit, "
    "set_by, override_reason, overridden_at, action 'override' and needs_review False",
)
def override_exported(ctx: Context) -> str:
    run = _review_fixtures().write_tiny_run(ctx.tmp / "run")
    auth = {"Authorization": f"Bearer {OFFICER_TOKEN}"}
    with _app(run.out) as c:
        r = c.post(
            "/api/farmers/F-001/override",
            headers=auth,
            json={"limit_eur": 30_000, "reason": "P-02 is a cover crop (visit 2 June)"},
        )
        expect(r.status_code == 201, f"the override answered {r.status_code}: {r.text[:80]}")
        csv = pd.read_csv(io.StringIO(c.get("/api/limits.csv", headers=auth).text))
        parquet = pd.read_parquet(io.BytesIO(c.get("/api/limits.parquet", headers=auth).content))
    for name, table in (("csv", csv), ("parquet", parquet)):
        missing = {"set_by", "override_reason", "overridden_at"} - set(table.columns)
        expect(not missing, f"limits.{name} lacks {sorted(missing)}")
        row = table.set_index("farmer_id").loc["F-001"]
        expect(float(row["limit_eur"]) == 30_000, f"limits.{name}: limit {row['limit_eur']}")
        expect(row["set_by"] == "A. Martin", f"limits.{name}: set_by {row['set_by']!r}")
        expect("cover crop" in str(row["override_reason"]), f"limits.{name}: no reason")
        expect(row["action"] == "override", f"limits.{name}: action {row['action']!r}")
        expect(not bool(row["needs_review"]), f"limits.{name}: still needs_review")
    return "csv and parquet: limit 30,000 set_by A. Martin with the reason, needs_review False"
