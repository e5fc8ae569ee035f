"""The review app and the static report against forged requests and stored script (issue #17,
items 6-8): same-origin and CSRF checks, JSON only, bounded bodies and reasons, HTML in a
lender's ids, and officers' overrides in the core-banking export.

API checks use Starlette's test client against the real app; the browser checks drive
Chromium against uvicorn on 127.0.0.1, with the forging page served from another port.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from review_fixtures import (
    SEASON,
    LiveServer,
    TinyRun,
    free_port,
    write_report,
    write_report_with_ids,
    write_tiny_run,
)

from flows.report import LIMITS_COLUMNS, with_csp
from flows.review import create_app
from flows.review.guard import MAX_BODY_BYTES, cross_origin, origin_of
from scoring.ledger import Ledger

OFFICER = "officer-token-7d2b9e4c1a6f"
OFFICER_2 = "officer-token-3c8e1f5a0b9d"
VIEWER = "viewer-token-5a1f3c9e7b2d"
TOKENS = {OFFICER: "Ada Officer:officer", OFFICER_2: "Bo Officer:officer", VIEWER: "Val:viewer"}
BASE = "http://127.0.0.1:8000"
OVERRIDE = "/api/farmers/F-002/override"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
#: A lender's id that would set the page title and a global if it ran as HTML.
PAYLOAD = "<img src=x onerror=\"window.__pwned=1;document.title='pwned'\">"


#: Hover every parcel of a Leaflet map in turn; the text of each tooltip shown, joined.
TOOLTIPS_JS = """
const seen = [];
document.querySelectorAll('path.leaflet-interactive').forEach(p => {
  const at = {bubbles: true, clientX: 300, clientY: 300};
  p.dispatchEvent(new MouseEvent('mouseover', at));
  document.querySelectorAll('.leaflet-tooltip').forEach(t => seen.push(t.textContent));
  p.dispatchEvent(new MouseEvent('mouseout', at));
});
return seen.join(' | ').replace(/\\s+/g, ' ');
"""


def _bearer(token: str = OFFICER) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _n_overrides(run: TinyRun) -> int:
    return len(Ledger(run.ledger_url).overrides(SEASON))


@pytest.fixture
def run(tmp_path: Path) -> TinyRun:
    return write_tiny_run(tmp_path / "run")


@pytest.fixture
def client(run: TinyRun) -> Iterator[TestClient]:
    with TestClient(create_app(run.out, tokens=TOKENS), base_url=BASE) as c:
        yield c


def _session(client: TestClient, token: str = OFFICER) -> str:
    """Log in with the cookie; the CSRF token of the farmer page."""
    assert client.post("/login", data={"token": token}, follow_redirects=False).status_code == 303
    page = client.get("/farmers/F-002").text
    found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page)
    assert found, "the farmer page carries no CSRF token"
    return found.group(1)


# -- the pure checks ---------------------------------------------------------------------------
def test_origins_compare_scheme_host_and_port() -> None:
    assert origin_of("http://127.0.0.1:8000") == ("http", "127.0.0.1", 8000)
    assert origin_of("HTTP://LocalHost/farmers/F-1?x=1") == ("http", "localhost", 80)
    assert origin_of("https://review.bank.example") == ("https", "review.bank.example", 443)
    assert origin_of("null") is None and origin_of("/farmers") is None
    own = "http://127.0.0.1:8000"
    assert cross_origin({"origin": own}, own) is None
    assert cross_origin({"referer": f"{own}/farmers/F-002"}, own) is None
    assert cross_origin({}, own) is None  # a script without a browser: the token decides
    assert cross_origin({"origin": "http://127.0.0.1:8001"}, own, method="GET") is None
    for headers in (
        {"origin": "http://127.0.0.1:8001"},
        {"origin": "https://127.0.0.1:8000"},
        {"origin": "null"},
        {"referer": "http://127.0.0.1:8001/evil.html"},
        {"sec-fetch-site": "same-site", "origin": own},
        {"sec-fetch-site": "cross-site"},
    ):
        why = cross_origin(headers, own)
        assert why is not None and own in why, headers
    proxy = "https://review.bank.example"
    assert cross_origin({"origin": proxy}, own, [proxy]) is None


# -- API: forged requests change nothing ----------------------------------------------------------
@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("text/plain", '{"limit_eur": 150000, "reason": "forged"}'),
        ("application/x-www-form-urlencoded", "limit_eur=150000&reason=forged"),
        ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="a"'),
        ("", '{"limit_eur": 150000, "reason": "forged"}'),
    ],
)
def test_the_api_takes_json_only(client: TestClient, run: TinyRun, ctype: str, body: str) -> None:
    headers = {**_bearer(), "Content-Type": ctype} if ctype else _bearer()
    r = client.post(OVERRIDE, headers=headers, content=body)
    assert r.status_code == 415, r.text
    assert "application/json" in r.json()["detail"]
    assert _n_overrides(run) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://127.0.0.1:8001"},
        {"Origin": "null"},
        {"Referer": "http://127.0.0.1:8001/evil.html"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": BASE},
    ],
    ids=["other-port", "null-origin", "other-referer", "same-site", "cross-site"],
)
def test_requests_from_another_origin_are_refused(
    client: TestClient, run: TinyRun, headers: dict[str, str]
) -> None:
    r = client.post(
        OVERRIDE, headers={**_bearer(), **headers}, json={"limit_eur": 150_000, "reason": "x"}
    )
    assert r.status_code == 403 and "not from this app" in r.json()["detail"], r.text
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    login = client.post("/login", data={"token": OFFICER}, headers=headers)
    assert login.status_code == 403 and "set-cookie" not in login.headers
    assert _n_overrides(run) == 0


def test_own_origin_and_a_listed_proxy_pass(run: TinyRun) -> None:
    body = {"limit_eur": 20_000, "reason": "visit"}
    with TestClient(create_app(run.out, tokens=TOKENS), base_url=BASE) as c:
        r = c.post(OVERRIDE, headers={**_bearer(), "Origin": BASE}, json=body)
        assert r.status_code == 201, r.text
        proxied = {**_bearer(), "Origin": "https://review.bank.example"}
        assert c.post(OVERRIDE, headers=proxied, json=body).status_code == 403
    app = create_app(run.out, tokens=TOKENS, origins=["https://review.bank.example"])
    with TestClient(app, base_url=BASE) as c:
        assert c.post(OVERRIDE, headers=proxied, json=body).status_code == 201
    assert _n_overrides(run) == 2


def test_a_cookie_session_needs_its_csrf_token(client: TestClient, run: TinyRun) -> None:
    token = _session(client)
    body = {"limit_eur": 21_000, "reason": "checked on site"}
    r = client.post(OVERRIDE, json=body)
    assert r.status_code == 403 and "no CSRF token" in r.json()["detail"]
    r = client.post(OVERRIDE, json=body, headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code == 403 and "wrong CSRF token" in r.json()["detail"]
    r = client.post(OVERRIDE, json=body, headers={"Authorization": "Bearer "})  # no token in it
    assert r.status_code == 403 and "no CSRF token" in r.json()["detail"]
    assert _n_overrides(run) == 0
    with TestClient(create_app(run.out, tokens=TOKENS), base_url=BASE) as other:
        theirs = _session(other, OFFICER_2)
        assert theirs != token  # bound to the session
        restarted = other.post(OVERRIDE, json=body, headers={"X-CSRF-Token": token})
        assert restarted.status_code == 403  # another app instance, another key
    r = client.post(OVERRIDE, json=body, headers={"X-CSRF-Token": token, "Origin": BASE})
    assert r.status_code == 201 and r.json()["officer"] == "Ada Officer"
    assert _n_overrides(run) == 1
    form = client.post("/farmers/F-002/override", data={"limit_eur": "22000", "reason": "again"})
    assert form.status_code == 403 and _n_overrides(run) == 1


# -- API: bounded bodies, reasons and fields ------------------------------------------------------
def test_request_bodies_are_capped(client: TestClient, run: TinyRun) -> None:
    big = {"limit_eur": 1_000, "reason": "x" * 5_000_000}
    r = client.post(OVERRIDE, headers=_bearer(), json=big)
    assert r.status_code == 413 and f"{MAX_BODY_BYTES:,} bytes" in r.json()["detail"]
    assert r.headers["content-security-policy"].startswith("default-src 'self'")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as read
        yield b'{"limit_eur": 1000, "reason": "'
        for _ in range(100):
            yield b"y" * 4096
        yield b'"}'

    headers = {**_bearer(), "Content-Type": "application/json"}
    r = client.post(OVERRIDE, headers=headers, content=chunks())
    assert r.status_code == 413, r.text
    assert client.post("/login", content=b"token=" + b"z" * 100_000).status_code == 413
    assert _n_overrides(run) == 0
    assert client.get("/healthz").status_code == 200


def test_reasons_are_capped_and_unknown_fields_refused(client: TestClient, run: TinyRun) -> None:
    r = client.post(OVERRIDE, headers=_bearer(), json={"limit_eur": 1_000, "reason": "r" * 2001})
    assert r.status_code == 422 and "2,001 characters" in r.json()["detail"]
    r = client.post(
        OVERRIDE,
        headers=_bearer(),
        json={"limit_eur": 1_000, "reason": "visit", "officer": "Someone Else"},
    )
    assert r.status_code == 422 and "'officer'" in r.json()["detail"]
    assert _n_overrides(run) == 0
    r = client.post(OVERRIDE, headers=_bearer(), json={"limit_eur": 1_000, "reason": "r" * 2000})
    assert r.status_code == 201 and len(r.json()["reason"]) == 2000
    rec = Ledger(run.ledger_url).overrides(SEASON).iloc[-1]
    assert rec["officer"] == "Ada Officer" and len(rec["reason"]) == 2000
    page = client.get("/farmers/F-002", headers=_bearer()).text
    assert 'maxlength="2000"' in page and "r" * 2000 in page


# -- the export says who set a limit and why -----------------------------------------------------
def test_an_override_reaches_every_export(client: TestClient, run: TinyRun) -> None:
    before = client.get("/api/farmers/F-001", headers=_bearer(VIEWER)).json()["farmer"]
    assert before["needs_review"] and before["set_by"] == "policy"
    r = client.post(
        "/api/farmers/F-001/override",
        headers=_bearer(),
        json={"limit_eur": 30_000, "reason": "P-02 is a cover crop (visit 2 June)"},
    )
    assert r.status_code == 201, r.text
    csv = pd.read_csv(io.StringIO(client.get("/api/limits.csv", headers=_bearer(VIEWER)).text))
    parquet = pd.read_parquet(
        io.BytesIO(client.get("/api/limits.parquet", headers=_bearer(VIEWER)).content)
    )
    for table in (csv, parquet):
        assert list(table.columns) == list(LIMITS_COLUMNS)
        rows = table.set_index("farmer_id")
        f1 = rows.loc["F-001"]
        assert f1["limit_eur"] == 30_000 and f1["source"] == "override"
        assert f1["set_by"] == "Ada Officer" and f1["action"] == "override"
        assert f1["override_reason"] == f1["reasons"] == "P-02 is a cover crop (visit 2 June)"
        when = pd.Timestamp(f1["overridden_at"])
        assert f1["overridden_at"].endswith("+00:00")
        assert abs(pd.Timestamp.now(tz="UTC") - when) < pd.Timedelta(minutes=10)
        assert not bool(f1["needs_review"])
        assert f1["policy_action"] == "hold" and f1["policy_limit_eur"] == 42_000
        assert "funding need" in f1["policy_reasons"]
        f3 = rows.loc["F-003"]
        assert f3["set_by"] == "policy" and f3["action"] == "cut" and pd.isna(f3["overridden_at"])
        assert f3["reasons"] == f3["policy_reasons"]
    farmer = client.get("/api/farmers/F-001", headers=_bearer(VIEWER)).json()["farmer"]
    assert farmer["set_by"] == "Ada Officer" and not farmer["needs_review"]
    assert farmer["override_reason"] == "P-02 is a cover crop (visit 2 June)"
    assert farmer["overridden_at"] == f1["overridden_at"]


def test_rewriting_the_report_keeps_the_override(run: TinyRun) -> None:
    Ledger(run.ledger_url).record_override(SEASON, "F-003", 12_500, "replanted, seen", "Ada")
    written = write_report(run)
    limits = pd.read_csv(run.out / "limits.csv").set_index("farmer_id")
    assert limits.loc["F-003", "limit_eur"] == 12_500 and limits.loc["F-003", "set_by"] == "Ada"
    assert limits.loc["F-003", "override_reason"] == "replanted, seen"
    assert pd.read_parquet(run.out / "limits.parquet").set_index("farmer_id").loc[
        "F-003", "set_by"
    ] == ("Ada")
    index = written["report"].read_text(encoding="utf-8")
    assert "Current limits total EUR 119,500" in index  # 42,000 + 65,000 + the override
    assert '<meta http-equiv="Content-Security-Policy"' in index


# -- HTML in a lender's ids ------------------------------------------------------------------------
def test_with_csp_allows_the_page_own_inline_scripts_by_hash() -> None:
    page = (
        '<html><head><script src="static/leaflet/leaflet.js"></script></head><body>'
        '<script>var a = 1;</script><script type="text/javascript">\nmap();\n</script>'
        "</body></html>"
    )
    out = with_csp(page)
    policy = re.search(r'content="([^"]+)"', out)
    assert policy and out.index("Content-Security-Policy") < out.index("<script")
    hashes = re.findall(r"sha256-([A-Za-z0-9+/=]+)", policy.group(1))
    expected = [
        base64.b64encode(hashlib.sha256(t.encode()).digest()).decode()
        for t in ("var a = 1;", "\nmap();\n")
    ]
    assert hashes == expected
    with pytest.raises(ValueError, match="no <head>"):
        with_csp("<p>no head</p>")


def test_html_in_ids_is_text_in_the_app_pages(tmp_path: Path) -> None:
    run = write_tiny_run(tmp_path / "run", {"P-01": f"P-1{PAYLOAD}", "F-001": f"F-1{PAYLOAD}"})
    with TestClient(create_app(run.out, tokens=TOKENS), base_url=BASE) as c:
        portfolio = c.get("/", headers=_bearer(VIEWER)).text
        farmer = c.get("/farmers/F-1" + PAYLOAD, headers=_bearer(VIEWER)).text
    for page in (portfolio, farmer):
        assert "<img src=x" not in page and "&lt;img src=x" in page


@pytest.fixture(scope="module")
def html_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_report_with_ids(
        tmp_path_factory.mktemp("html-ids"), parcel_id=f"P-1{PAYLOAD}", farmer_id=f"F-1{PAYLOAD}"
    )


def test_html_in_ids_is_escaped_in_the_report_files(html_report: dict[str, Path]) -> None:
    for path in (html_report["report"], html_report["map"]):
        text = path.read_text(encoding="utf-8")
        assert text.count("<img src=x") == 0 and text.count("\\u003cimg src=x") == 0, path.name
        csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', text)
        assert csp and text.index(csp.group(0)) < text.find("</head>"), path.name
        assert "<script" not in text[: text.index(csp.group(0))], path.name
        policy = csp.group(1).replace("&#x27;", "'")
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style")[0]
    assert "&amp;lt;img" in html_report["map"].read_text(encoding="utf-8") or (
        "\\u0026lt;img" in html_report["map"].read_text(encoding="utf-8")
    )


@pytest.mark.browser
def test_html_in_ids_does_not_run_in_the_report_in_chromium(
    html_report: dict[str, Path], chrome: Any
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ARTIFACTS.mkdir(exist_ok=True)
    chrome.get(html_report["map"].resolve().as_uri())
    _wait(chrome, "return document.querySelectorAll('path.leaflet-interactive').length === 6")
    _wait(
        chrome,
        "return Array.from(document.querySelectorAll('img.leaflet-image-layer'))"
        ".some(i => i.complete && i.naturalWidth > 0)",
    )
    # hover every parcel: folium builds each tooltip's HTML then
    shown = chrome.execute_script(TOOLTIPS_JS)
    assert "P-1<img src=x" in shown and "F-1<img src=x" in shown, shown[:2000]
    assert chrome.execute_script("return window.__pwned") is None
    assert chrome.title != "pwned"
    assert chrome.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    paths = chrome.find_elements("css selector", "path.leaflet-interactive")
    ActionChains(chrome).move_to_element(paths[0]).perform()
    chrome.save_screenshot(str(ARTIFACTS / "report_map_csp.png"))

    chrome.get(html_report["report"].resolve().as_uri())
    _wait(chrome, "return document.readyState === 'complete'")
    chrome.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    text = chrome.execute_script("return document.body.innerText")
    assert "F-1<img src=x" in text and "P-1<img src=x" in text
    assert chrome.execute_script("return window.__pwned") is None and chrome.title != "pwned"
    frame = chrome.find_element("css selector", "iframe")
    chrome.switch_to.frame(frame)
    try:
        _wait(chrome, "return document.querySelectorAll('path.leaflet-interactive').length === 6")
        assert chrome.execute_script("return window.__pwned") is None
    finally:
        chrome.switch_to.default_content()
    chrome.save_screenshot(str(ARTIFACTS / "report_index_csp.png"))


# -- the forged override from another port, in a real browser -------------------------------------
FORGER = """<!doctype html><html><head><title>cat pictures</title></head><body>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe>
<form id="plain" method="post" enctype="text/plain" target="sink1"
      action="{app}/api/farmers/F-002/override">
<input name='{{"limit_eur": 150000, "reason": "forged", "x": "' value='"}}'></form>
<form id="urlenc" method="post" target="sink2" action="{app}/farmers/F-002/override">
<input name="limit_eur" value="150000"><input name="reason" value="forged form"></form>
<script>
window.results = [];
const url = "{app}/api/farmers/F-002/override";
const body = JSON.stringify({{limit_eur: 150000, reason: "forged fetch"}});
const done = p => p.then(r => results.push("fetch " + r.type + " " + r.status),
                         e => results.push("fetch error " + e));
let loaded = 0;
for (const f of document.querySelectorAll("iframe")) f.onload = () => {{ loaded += 1; }};
document.getElementById("plain").submit();
document.getElementById("urlenc").submit();
Promise.all([
  done(fetch(url, {{method: "POST", mode: "no-cors", credentials: "include",
                   headers: {{"Content-Type": "text/plain"}}, body: body}})),
  done(fetch(url, {{method: "POST", credentials: "include",
                   headers: {{"Content-Type": "application/json"}}, body: body}})),
]).then(() => {{ window.fetched = true; }});
window.allDone = () => window.fetched && loaded >= 2;
</script></body></html>"""


class _Forger:
    """A page on another port of 127.0.0.1 that tries to override F-002 through the app."""

    def __init__(self, app_url: str) -> None:
        page = FORGER.format(app=app_url).encode("utf-8")

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Forger:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait(chrome: Any, script: str, timeout: float = 15.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(chrome, timeout).until(lambda d: d.execute_script(script))


@pytest.mark.browser
def test_a_page_on_another_port_cannot_override_in_chromium(
    run: TinyRun, chrome: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from selenium.webdriver.common.by import By

    with LiveServer(run.out, TOKENS) as app, _Forger(app.url) as forger:
        chrome.delete_all_cookies()
        chrome.get(f"{app.url}/login?next=/farmers/F-002")
        chrome.find_element(By.ID, "token").send_keys(OFFICER)
        chrome.find_element(By.CSS_SELECTOR, "#login-form button").click()
        _wait(chrome, "return location.pathname === '/farmers/F-002'")
        limit_before = chrome.find_element(By.ID, "limit-now").text
        with caplog.at_level(logging.WARNING, logger="flows.review"):
            chrome.get(forger.url)
            _wait(chrome, "return window.allDone && window.allDone()")
        results = chrome.execute_script("return window.results")
        ARTIFACTS.mkdir(exist_ok=True)
        chrome.save_screenshot(str(ARTIFACTS / "review_forged.png"))
        assert _n_overrides(run) == 0, results
        refused = [r for r in caplog.records if r.getMessage().startswith("refused POST")]
        # the two forms and the no-cors fetch reached the app and were refused there; the JSON
        # fetch stopped at the browser's CORS preflight (the app grants none)
        assert len(refused) >= 3, [r.getMessage() for r in caplog.records]
        assert any("fetch error" in r for r in results), results
        # the officer's own page still works, with its token
        chrome.get(f"{app.url}/farmers/F-002")
        assert chrome.find_element(By.ID, "limit-now").text == limit_before
        chrome.find_element(By.ID, "limit_eur").send_keys("60000")
        chrome.find_element(By.ID, "reason").send_keys("the officer's own override")
        chrome.find_element(By.CSS_SELECTOR, "#override-form button").click()
        _wait(chrome, "return document.querySelectorAll('tr.override-row').length === 1")
    rows = Ledger(run.ledger_url).overrides(SEASON)
    assert len(rows) == 1 and rows.iloc[0]["limit_eur"] == 60_000


@pytest.mark.browser
def test_html_in_ids_is_text_in_the_farmer_page_in_chromium(tmp_path: Path, chrome: Any) -> None:
    from urllib.parse import quote

    from selenium.webdriver.common.by import By

    run = write_tiny_run(tmp_path / "run", {"P-01": f"P-1{PAYLOAD}", "F-001": f"F-1{PAYLOAD}"})
    farmer = quote(f"F-1{PAYLOAD}", safe="")
    with LiveServer(run.out, TOKENS) as app:
        chrome.delete_all_cookies()
        chrome.get(f"{app.url}/login")
        chrome.find_element(By.ID, "token").send_keys(VIEWER)
        chrome.find_element(By.CSS_SELECTOR, "#login-form button").click()
        _wait(chrome, "return location.pathname === '/'")
        chrome.get(f"{app.url}/farmers/{farmer}")
        _wait(chrome, "return document.querySelectorAll('path.leaflet-interactive').length === 2")
        shown = chrome.execute_script(TOOLTIPS_JS)
        assert "P-1<img src=x" in shown, shown
        assert (
            chrome.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
        )
        assert chrome.execute_script("return window.__pwned") is None and chrome.title != "pwned"
        assert "F-1<img src=x" in chrome.find_element(By.TAG_NAME, "h1").text
