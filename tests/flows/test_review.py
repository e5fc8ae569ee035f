"""The loan officers' review app: tokens, API refusals, exports, map images and the browser.

Most tests run against a tiny hand-made season run (``review_fixtures.write_tiny_run``); one
module-scoped real run through ``flows.season.season`` checks the app on real outputs.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from review_fixtures import SEASON, LiveServer, TinyRun, write_tiny_run

from flows.review import create_app
from flows.review.auth import TokenStore, load_tokens
from geo.errors import TableError
from geo.types import STAGES, GrowthStage
from scoring.ledger import Ledger

OFFICER = "officer-token-4f8a1c2e9b7d"
VIEWER = "viewer-token-0c3e5a7b9d1f"
TOKENS = {OFFICER: "Ada Officer:officer", VIEWER: "Val Viewer:viewer"}
ARTIFACTS = Path(__file__).parents[1] / "artifacts"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return write_tiny_run(tmp_path_factory.mktemp("review-run"))


@pytest.fixture(scope="module")
def client(tiny: TinyRun) -> Iterator[TestClient]:
    with TestClient(create_app(tiny.out, tokens=TOKENS)) as c:
        yield c


def _n_overrides(tiny: TinyRun) -> int:
    return len(Ledger(tiny.ledger_url).overrides(SEASON))


# -- tokens -------------------------------------------------------------------------------------
def test_tokens_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    env = {"CROPCREDIT_TOKENS": json.dumps(TOKENS)}
    assert load_tokens(env) == TOKENS
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(TOKENS))
    assert load_tokens({"CROPCREDIT_TOKENS_FILE": str(path)}) == TOKENS
    store = TokenStore(load_tokens(env))
    officer = store.lookup(OFFICER)
    assert officer is not None and officer.name == "Ada Officer" and officer.can_override
    assert store.lookup(VIEWER).role == "viewer"  # type: ignore[union-attr]
    assert store.lookup(OFFICER + "x") is None and store.lookup("") is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "no review tokens configured"),
        ({"CROPCREDIT_TOKENS": "{not json"}, "not valid JSON"),
        ({"CROPCREDIT_TOKENS": '["a"]'}, "expected a JSON object"),
        ({"CROPCREDIT_TOKENS": '{"secret-token-value-1": "Bob:admin"}'}, "role 'admin'"),
        ({"CROPCREDIT_TOKENS": '{"secret-token-value-1": "officer"}'}, "name:role"),
        ({"CROPCREDIT_TOKENS_FILE": "/nonexistent/tokens.json"}, "cannot read it"),
    ],
)
def test_bad_token_configuration_is_refused_without_echoing_secrets(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(TableError, match=message) as err:
        TokenStore(load_tokens(environ))
    assert "secret-token-value-1" not in str(err.value)


# -- API: refusals change nothing -------------------------------------------------------------
def test_api_without_or_with_a_wrong_token_is_refused(client: TestClient, tiny: TinyRun) -> None:
    before = _n_overrides(tiny)
    r = client.get("/api/farmers")
    assert r.status_code == 401 and "no token" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.get("/api/farmers", headers=_auth("not-a-token"))
    assert r.status_code == 401 and "token not recognised" in r.json()["detail"]
    r = client.post(
        "/api/farmers/F-001/override",
        headers=_auth("not-a-token"),
        json={"limit_eur": 1000, "reason": "x"},
    )
    assert r.status_code == 401
    assert _n_overrides(tiny) == before


def test_viewer_may_read_but_not_override(client: TestClient, tiny: TinyRun) -> None:
    before = _n_overrides(tiny)
    assert client.get("/api/farmers", headers=_auth(VIEWER)).status_code == 200
    r = client.post(
        "/api/farmers/F-002/override",
        headers=_auth(VIEWER),
        json={"limit_eur": 1000, "reason": "visited the farm"},
    )
    assert r.status_code == 403
    assert "role 'viewer'" in r.json()["detail"] and "officer" in r.json()["detail"]
    assert _n_overrides(tiny) == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"limit_eur": 20_000}, "a reason is required"),
        ({"limit_eur": 20_000, "reason": "   "}, "a reason is required"),
        ({"limit_eur": 150_010, "reason": "good harvest"}, "above the policy cap of EUR 150,000"),
        ({"limit_eur": -10, "reason": "bad harvest"}, "negative limit"),
        ({"limit_eur": "lots", "reason": "bad harvest"}, "not a number"),
        ({"reason": "no limit given"}, "not a number"),
    ],
)
def test_bad_overrides_are_refused_and_change_nothing(
    client: TestClient, tiny: TinyRun, body: dict[str, Any], message: str
) -> None:
    before = _n_overrides(tiny)
    limit_before = client.get("/api/farmers/F-002", headers=_auth(VIEWER)).json()["farmer"]
    r = client.post("/api/farmers/F-002/override", headers=_auth(OFFICER), json=body)
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]
    assert _n_overrides(tiny) == before
    after = client.get("/api/farmers/F-002", headers=_auth(VIEWER)).json()["farmer"]
    assert after["limit_eur"] == limit_before["limit_eur"]


def test_override_of_an_unknown_farmer_is_404(client: TestClient, tiny: TinyRun) -> None:
    before = _n_overrides(tiny)
    r = client.post(
        "/api/farmers/F-999/override", headers=_auth(OFFICER), json={"limit_eur": 1, "reason": "x"}
    )
    assert r.status_code == 404 and "F-999" in r.json()["detail"]
    assert _n_overrides(tiny) == before


def test_officer_override_is_recorded_with_who_and_why(client: TestClient, tiny: TinyRun) -> None:
    r = client.post(
        "/api/farmers/F-003/override",
        headers=_auth(OFFICER),
        json={"limit_eur": 12_000, "reason": "field visit: potatoes replanted"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["officer"] == "Ada Officer" and body["current_limit_eur"] == 12_000
    rec = Ledger(tiny.ledger_url).overrides(SEASON, "F-003").iloc[-1]
    assert rec["officer"] == "Ada Officer" and rec["reason"] == "field visit: potatoes replanted"
    detail = client.get("/api/farmers/F-003", headers=_auth(VIEWER)).json()
    assert detail["farmer"]["limit_eur"] == 12_000 and detail["farmer"]["source"] == "override"
    last = detail["history"][-1]
    assert last["kind"] == "override" and last["officer"] == "Ada Officer"
    assert [h["stage"] for h in detail["history"] if h["kind"] == "decision"] == [
        "pre_sowing",
        "sowing",
        "vegetative",
    ]
    csv = pd.read_csv(io.StringIO(client.get("/api/limits.csv", headers=_auth(VIEWER)).text))
    assert csv.set_index("farmer_id").loc["F-003", "limit_eur"] == 12_000


def test_portfolio_filters(client: TestClient) -> None:
    def ids(**params: Any) -> set[str]:
        r = client.get("/api/farmers", headers=_auth(VIEWER), params=params)
        assert r.status_code == 200
        return {f["farmer_id"] for f in r.json()}

    assert ids() == {"F-001", "F-002", "F-003"}
    assert ids(region="south") == {"F-003"}
    assert ids(crop="rapeseed") == {"F-002"}
    assert ids(crop="grassland") == {"F-001"}  # detected, not declared
    assert ids(flagged=1) == {"F-001", "F-003"}
    assert ids(review=1) == {"F-001"}
    page = client.get("/?region=south", headers=_auth(VIEWER))
    assert page.status_code == 200 and 'data-farmer="F-003"' in page.text
    assert 'data-farmer="F-001"' not in page.text


def test_portfolio_lists_every_onboarding_reject_escaped(client: TestClient, tiny: TinyRun) -> None:
    summary = tiny.out / "stages" / STAGES[2].value / "summary.json"
    assert not summary.exists()
    rejects = [
        {"parcel_id": "P-77", "farmer_id": "F-009", "file": "p.gpkg", "error": "unknown crop"},
        {"parcel_id": "<b>P-78</b>", "farmer_id": None, "file": "p.gpkg", "error": "giant"},
    ]
    summary.write_text(json.dumps({"rejects": rejects}), encoding="utf-8")
    try:
        page = client.get("/", headers=_auth(VIEWER)).text
        assert 'id="rejects"' in page and "P-77" in page and "unknown crop" in page
        assert "&lt;b&gt;P-78&lt;/b&gt;" in page and "<b>P-78" not in page
    finally:
        summary.unlink()
    assert 'id="rejects"' not in client.get("/", headers=_auth(VIEWER)).text


def test_exports_for_core_banking(client: TestClient) -> None:
    r = client.get("/api/limits.parquet", headers=_auth(VIEWER))
    assert r.status_code == 200
    limits = pd.read_parquet(io.BytesIO(r.content))
    assert {"farmer_id", "limit_eur", "stage", "source", "region"} <= set(limits.columns)
    assert len(limits) == 3 and (limits["limit_eur"] >= 0).all()
    assert client.get("/api/limits.csv").status_code == 401


def test_ndvi_image_of_a_dekad_is_clipped_to_the_farmer(client: TestClient) -> None:
    r = client.get("/farmers/F-001/ndvi.png?dekad=2026-05-11", headers=_auth(VIEWER))
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    (s, w), (n, e) = json.loads(r.headers["x-bounds"])
    whole = client.get("/layers/true_colour.png", headers=_auth(VIEWER))
    (ws, ww), (wn, we) = json.loads(whole.headers["x-bounds"])
    assert ws <= s < n <= wn and ww <= w < e <= we and (n - s) < (wn - ws)
    bad = client.get("/farmers/F-001/ndvi.png?dekad=2026-09-01", headers=_auth(VIEWER))
    assert bad.status_code == 422 and "not in the composite" in bad.json()["detail"]
    assert client.get("/farmers/F-001/ndvi.png?dekad=2026-05-11").status_code == 401


def test_pages_ask_for_login_and_load_nothing_from_the_network(
    tiny: TinyRun, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(tiny.out, tokens=TOKENS)) as browser:
        r = browser.get("/farmers/F-001")
        assert r.status_code == 401 and 'name="token"' in r.text and "no token" in r.text
        with caplog.at_level(logging.DEBUG):
            bad = browser.post("/login", data={"token": "guess", "next": "/farmers/F-001"})
            assert bad.status_code == 401 and "token not recognised" in bad.text
            ok = browser.post(
                "/login",
                data={"token": OFFICER, "next": "https://evil.example/"},
                follow_redirects=False,
            )
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert OFFICER not in caplog.text
        page = browser.get("/farmers/F-001")
        assert page.status_code == 200 and 'id="override-form"' in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        for marker in ('src="http', "src='http", 'href="http', "@import", "cdn"):
            assert marker not in page.text.lower()
        browser.get("/logout")
        assert browser.get("/").status_code == 401
    with TestClient(create_app(tiny.out, tokens=TOKENS)) as viewer:
        viewer.post("/login", data={"token": VIEWER})
        page = viewer.get("/farmers/F-001")
        assert page.status_code == 200 and 'id="override-form"' not in page.text
    assert "/api/farmers/{farmer_id}/override" in json.dumps(
        TestClient(create_app(tiny.out, tokens=TOKENS)).get("/openapi.json").json()
    )


def test_the_farmer_page_form_works_without_javascript(tiny: TinyRun) -> None:
    before = _n_overrides(tiny)
    with TestClient(create_app(tiny.out, tokens=TOKENS)) as browser:
        browser.post("/login", data={"token": OFFICER})
        form = browser.get("/farmers/F-001").text
        action = re.search(r'<form method="post" action="([^"]+)" id="override-form"', form)
        token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', form)
        assert action and action.group(1) == "/farmers/F-001/override" and token
        r = browser.post(
            action.group(1),
            data={
                "limit_eur": "40,000",
                "reason": "wrong crop on P-02 explained: cover crop",
                "csrf_token": token.group(1),
            },
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/farmers/F-001#history"
        page = browser.get("/farmers/F-001")
        assert "cover crop" in page.text and "Ada Officer" in page.text
        refused = browser.post(
            action.group(1), data={"limit_eur": "40000", "csrf_token": token.group(1)}
        )
        assert refused.status_code == 422 and 'id="override-form"' in refused.text
        assert re.search(r'id="override-msg"[^>]*>a reason is required', refused.text)
    assert _n_overrides(tiny) == before + 1
    assert Ledger(tiny.ledger_url).overrides(SEASON, "F-001").iloc[-1]["limit_eur"] == 40_000


def test_a_run_without_cached_imagery_still_shows_parcels_and_history(
    tiny: TinyRun, tmp_path: Path
) -> None:
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(tiny.out, bare, ignore=shutil.ignore_patterns("cache"))
    with TestClient(create_app(bare, tokens=TOKENS)) as c:
        page = c.get("/farmers/F-001", headers=_auth(VIEWER))
        assert page.status_code == 200 and "no composite cached" in page.text
        assert 'id="history-table"' in page.text
        layer = c.get("/layers/true_colour.png", headers=_auth(VIEWER))
        assert layer.status_code == 404 and "no composite cached" in layer.json()["detail"]


# -- the browser --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live(tiny: TinyRun) -> Iterator[LiveServer]:
    with LiveServer(tiny.out, TOKENS) as server:
        yield server


def _wait(chrome: Any, script: str, timeout: float = 15.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(chrome, timeout).until(lambda d: d.execute_script(script))


def _login(chrome: Any, base: str, token: str, then: str) -> None:
    from selenium.webdriver.common.by import By

    chrome.delete_all_cookies()
    chrome.get(f"{base}/login?next={then}")
    chrome.find_element(By.ID, "token").send_keys(token)
    chrome.find_element(By.CSS_SELECTOR, "#login-form button").click()
    _wait(chrome, f"return location.pathname === '{then.split('?')[0]}'")


def _click_parcel(chrome: Any, index: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    paths = chrome.find_elements("css selector", "path.leaflet-interactive")
    ActionChains(chrome).move_to_element(paths[index]).click().perform()


@pytest.mark.browser
def test_officer_reviews_a_farmer_in_chromium(live: LiveServer, tiny: TinyRun, chrome: Any) -> None:
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(exist_ok=True)
    _login(chrome, live.url, OFFICER, "/")
    _wait(chrome, "return document.querySelectorAll('#portfolio tbody tr').length === 3")
    chrome.save_screenshot(str(ARTIFACTS / "review_portfolio.png"))

    chrome.get(f"{live.url}/farmers/F-002")
    n_parcels = int((tiny.parcels["farmer_id"] == "F-002").sum())
    _wait(
        chrome,
        f"return document.querySelectorAll('path.leaflet-interactive').length === {n_parcels}",
    )
    _wait(
        chrome,
        "return Array.from(document.querySelectorAll('img.leaflet-image-layer'))"
        ".some(i => i.complete && i.naturalWidth > 0)",
    )
    # the parcel P-04 (rapeseed) is the second of F-002's parcels
    _click_parcel(chrome, 1)
    _wait(chrome, "return document.getElementById('parcel-panel').dataset.parcel === 'P-04'")
    panel = chrome.find_element(By.ID, "parcel-panel")
    assert "rapeseed" in panel.find_element(By.CSS_SELECTOR, ".declared-crop").text
    assert "rapeseed" in panel.find_element(By.CSS_SELECTOR, ".detected-crop").text
    planted = panel.find_element(By.CSS_SELECTOR, ".planted-area").text
    assert re.fullmatch(r"[\d.]+ ha \(likely [\d.]+\u2013[\d.]+ ha\)", planted), planted
    other = panel.find_element(By.CSS_SELECTOR, ".other-z").text
    tables = [pd.read_parquet(f) for f in (tiny.out / "stages").glob("*/assessment.parquet")]
    latest = max(tables, key=lambda t: t["as_of"].max())
    p04 = latest.set_index("parcel_id").loc["P-04"]
    assert other == f"NDRE z {p04.ndre_z:.2f} \u00b7 NDMI z {p04.ndmi_z:.2f}", other
    assert len(panel.find_elements(By.CSS_SELECTOR, "svg.curve polyline.obs")) == 1
    # the per-pixel NDVI of a chosen dekad
    dekad = chrome.execute_script(
        "const s = document.getElementById('dekad'); s.value = s.options[s.length - 1].value;"
        "s.dispatchEvent(new Event('change')); return s.value;"
    )
    assert dekad == "2026-05-21"  # the last clear dekad before the assessment date
    _wait(
        chrome,
        "const i = document.querySelector('img.ndvi-dekad');"
        "return i && i.complete && i.naturalWidth > 0",
    )
    chrome.save_screenshot(str(ARTIFACTS / "review_farmer.png"))

    # an override through the form
    before = _n_overrides(tiny)
    chrome.find_element(By.ID, "limit_eur").send_keys("61000")
    chrome.find_element(By.ID, "reason").send_keys("rapeseed confirmed on site, 12 May")
    chrome.find_element(By.CSS_SELECTOR, "#override-form button").click()
    _wait(chrome, "return document.querySelectorAll('tr.override-row').length >= 1")
    rows = Ledger(tiny.ledger_url).overrides(SEASON, "F-002")
    assert _n_overrides(tiny) == before + 1
    assert rows.iloc[-1]["limit_eur"] == 61_000 and rows.iloc[-1]["officer"] == "Ada Officer"
    history = chrome.find_element(By.ID, "history-table").text
    assert "rapeseed confirmed on site, 12 May" in history and "Ada Officer" in history
    assert "61,000" in chrome.find_element(By.ID, "limit-now").text
    chrome.execute_script("document.getElementById('history').scrollIntoView()")
    chrome.save_screenshot(str(ARTIFACTS / "review_history.png"))

    # a refused override shows its reason in the form and records nothing
    chrome.find_element(By.ID, "limit_eur").send_keys("61000")
    chrome.find_element(By.ID, "reason").send_keys(" ")
    chrome.execute_script("document.getElementById('reason').removeAttribute('required')")
    chrome.find_element(By.CSS_SELECTOR, "#override-form button").click()
    _wait(chrome, "return document.getElementById('override-msg').textContent.length > 0")
    assert "a reason is required" in chrome.find_element(By.ID, "override-msg").text
    assert _n_overrides(tiny) == before + 1


# -- a real (small) season run through the Prefect flows -----------------------------------------
@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A small generated season (3 stages) through ``flows.season.season``.

    Uses the shipped U-Net when present, else a freshly initialised one: the app is checked
    against the pipeline's real output formats, not the model's accuracy.
    """
    from geo.errors import ModelError
    from vision.model import SegmenterConfig, build_model, load_segmenter, save_segmenter

    segmenter: Path | None = None
    try:
        load_segmenter()
    except ModelError as exc:
        logging.getLogger(__name__).warning("%s; using an untrained U-Net", exc)
        segmenter = tmp_path_factory.mktemp("review-model") / "segmenter.pt"
        save_segmenter(segmenter, build_model(SegmenterConfig()), SegmenterConfig())
    request.getfixturevalue("prefect_harness")
    from flows.season import season
    from flows.settings import SeasonParams
    from geo.synth import SynthConfig, write_archive

    root = tmp_path_factory.mktemp("review-archive")
    write_archive(root, SynthConfig(seed=11, size_px=64, n_farmers=6, revisit_days=15))
    out = tmp_path_factory.mktemp("review-real")
    season(
        SeasonParams(
            out=out,
            imagery={"source": "local", "archive": root},
            run_id="review-real",
            segmenter=segmenter,
            stages=(GrowthStage.PRE_SOWING, GrowthStage.VEGETATIVE, GrowthStage.HARVEST),
        )
    )
    return out


def test_app_over_a_real_season_run(real_run: Path) -> None:
    import geopandas as gpd

    ledger = Ledger(f"sqlite:///{real_run / 'ledger.sqlite'}")
    current = ledger.current_limits(SEASON)
    run = json.loads((real_run / "run.json").read_text())
    parcels = gpd.read_parquet(Path(run["params"]["imagery"]["archive"]) / "parcels.parquet")
    with TestClient(create_app(real_run, tokens=TOKENS)) as c:
        farmers = c.get("/api/farmers", headers=_auth(VIEWER)).json()
        assert {f["farmer_id"] for f in farmers} == set(current["farmer_id"])
        fid = max(farmers, key=lambda f: f["parcels"])["farmer_id"]
        detail = c.get(f"/api/farmers/{fid}", headers=_auth(VIEWER)).json()
        own = set(parcels.loc[parcels["farmer_id"] == fid, "parcel_id"])
        assert {f["properties"]["parcel_id"] for f in detail["parcels"]["features"]} == own
        assert set(detail["curves"]) <= own and detail["curves"]
        stages = [h["stage"] for h in detail["history"] if h["kind"] == "decision"]
        assert stages == sorted(set(stages), key=[s.value for s in STAGES].index)
        page = c.get(f"/farmers/{fid}", headers=_auth(VIEWER))
        assert page.status_code == 200
        dekads = re.findall(r'<option value="(\d{4}-\d\d-\d\d)">', page.text)
        assert dekads, "no dekad to map"
        png = c.get(f"/farmers/{fid}/ndvi.png?dekad={dekads[-1]}", headers=_auth(VIEWER))
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        for kind in ("true_colour", "ndvi"):
            assert c.get(f"/layers/{kind}.png", headers=_auth(VIEWER)).status_code == 200
        limits = pd.read_csv(io.StringIO(c.get("/api/limits.csv", headers=_auth(VIEWER)).text))
        merged = limits.merge(current, on="farmer_id", suffixes=("", "_ledger"))
        assert len(merged) == len(current)
        assert (merged["limit_eur"] == merged["limit_eur_ledger"]).all()
        r = c.post(
            f"/api/farmers/{fid}/override",
            headers=_auth(OFFICER),
            json={"limit_eur": 1_000, "reason": "real-run check"},
        )
        assert r.status_code == 201 and r.json()["current_limit_eur"] == 1_000


@pytest.mark.browser
def test_real_farmer_page_in_chromium(real_run: Path, chrome: Any) -> None:
    import geopandas as gpd

    run = json.loads((real_run / "run.json").read_text())
    parcels = gpd.read_parquet(Path(run["params"]["imagery"]["archive"]) / "parcels.parquet")
    current = Ledger(f"sqlite:///{real_run / 'ledger.sqlite'}").current_limits(SEASON)
    counts = parcels[parcels["farmer_id"].isin(current["farmer_id"])].groupby("farmer_id").size()
    fid = str(counts.idxmax())
    with LiveServer(real_run, TOKENS) as server:
        _login(chrome, server.url, VIEWER, f"/farmers/{fid}")
        _wait(
            chrome,
            "return document.querySelectorAll('path.leaflet-interactive').length"
            f" === {int(counts[fid])}",
        )
        _wait(
            chrome,
            "return Array.from(document.querySelectorAll('img.leaflet-image-layer'))"
            ".some(i => i.complete && i.naturalWidth > 0)",
        )
        _click_parcel(chrome, 0)
        _wait(chrome, "return !!document.getElementById('parcel-panel').dataset.parcel")
        chrome.execute_script(
            "const s = document.getElementById('dekad'); s.value = s.options[s.length - 1].value;"
            "s.dispatchEvent(new Event('change'));"
        )
        _wait(
            chrome,
            "const i = document.querySelector('img.ndvi-dekad');"
            "return i && i.complete && i.naturalWidth > 0",
        )
        ARTIFACTS.mkdir(exist_ok=True)
        chrome.save_screenshot(str(ARTIFACTS / "review_farmer_real.png"))
        assert chrome.find_elements("id", "override-form") == []  # a viewer cannot override
