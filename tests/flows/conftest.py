"""Fixtures for flow tests: one Prefect test harness per session, headless Chromium."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect API (SQLite) for the whole session; ~30 s once."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def chrome():  # type: ignore[no-untyped-def]
    """Debian's headless Chromium through its ChromeDriver; skipped where they are absent."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium + chromedriver not installed (make browser)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-file-access-from-files",
        "--window-size=1280,900",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chrome-')}",
    ):
        opts.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=opts)
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated season (200 px, 60 farmers) written as a local archive, once."""
    from geo.synth import SynthConfig, write_archive

    root = tmp_path_factory.mktemp("archive")
    return write_archive(root, SynthConfig(seed=11, size_px=200, n_farmers=60))
