"""SentinelHubSource against the loopback Sentinel Hub (tests/geo/loopback.py).

The reference for every read is the band files read directly with rasterio
(fixtures_imagery.read_reference). Also here: plan_batches and the shared retry helpers.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fixtures_imagery import ImagerySet, build_imagery, read_reference, sub_bounds
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import ROUTE_CATALOG, ROUTE_PROCESS, ROUTE_TOKEN, LoopbackServer

from geo.errors import ImageryError, ParcelGeometryError, SourceUnavailableError
from geo.sources.base import Bounds, SceneRef, TileSource
from geo.sources.retry import (
    RetryableError,
    RetryPolicy,
    parse_retry_after,
    redact_urls,
    retry_call,
    safe_url,
)
from geo.sources.sentinelhub import (
    CDSE_BASE_URL,
    CDSE_TOKEN_URL,
    MAX_REQUEST_PX,
    SentinelHubSettings,
    SentinelHubSource,
    plan_batches,
)

APRIL = (dt.date(2026, 4, 1), dt.date(2026, 4, 30))


@pytest.fixture(scope="module")
def imagery(tmp_path_factory: pytest.TempPathFactory) -> ImagerySet:
    return build_imagery(tmp_path_factory.mktemp("sh-imagery"))


@pytest.fixture
def server(imagery: ImagerySet) -> Iterator[LoopbackServer]:
    with LoopbackServer(imagery) as srv:
        yield srv


@pytest.fixture
def source(server: LoopbackServer, tmp_path: Path) -> SentinelHubSource:
    return SentinelHubSource(server.sh_config(), cache_dir=tmp_path / "cache", max_cloud_cover=50)


def _ref(source: SentinelHubSource, imagery: ImagerySet, day: int) -> SceneRef:
    refs = source.search(imagery.bounds, *APRIL)
    return next(r for r in refs if r.date.day == day)


# -- search --------------------------------------------------------------------------
@pytest.mark.network
def test_search_lists_one_ref_per_day_under_the_cloud_limit(
    source: SentinelHubSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    assert isinstance(source, TileSource)
    refs = source.search(imagery.bounds, *APRIL)
    # 5 Apr (two tiles, one ref) and 25 Apr; 15 Apr is 62 % cloudy (> 50).
    assert [r.date for r in refs] == [dt.date(2026, 4, 5), dt.date(2026, 4, 25)]
    assert [r.scene_id for r in refs] == ["S2L2A_20260405", "S2L2A_20260425"]
    assert refs[0].cloud_cover == 5.0 and refs[1].cloud_cover == 18.0
    assert refs[0].href.startswith(f"{server.url}/api/v1/catalog/1.0.0/collections/")
    (payload,) = server.bodies(ROUTE_CATALOG)
    assert payload["collections"] == ["sentinel-2-l2a"]
    assert payload["filter"] == "eo:cloud_cover <= 50"
    assert payload["datetime"].startswith("2026-04-01T00:00:00")
    np.testing.assert_allclose(payload["bbox"], imagery.lonlat_bounds, atol=1e-4)
    assert server.count(ROUTE_TOKEN) == 1


@pytest.mark.network
def test_empty_catalogue_gives_an_empty_list(
    source: SentinelHubSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    assert source.search(imagery.bounds, dt.date(2025, 1, 1), dt.date(2025, 1, 31)) == []
    server.inject(ROUTE_CATALOG, "empty")
    assert source.search(imagery.bounds, dt.date(2026, 3, 1), *APRIL[1:]) == []
    assert source.search(imagery.bounds, dt.date(2026, 4, 30), dt.date(2026, 4, 1)) == []


# -- read ----------------------------------------------------------------------------
@pytest.mark.network
@pytest.mark.parametrize("window", [(0, 0, 64, 64), (3, 5, 21, 17), (50, 40, 30, 30)])
def test_read_matches_the_source_files(
    source: SentinelHubSource, server: LoopbackServer, imagery: ImagerySet, window: tuple
) -> None:
    bounds = sub_bounds(*window)
    for ref in source.search(imagery.bounds, *APRIL):
        scene = source.read(ref, bounds)
        dn, scl = read_reference(imagery.by_date(ref.date), bounds)
        assert scene.dn.dtype == np.uint16 and scene.scl.dtype == np.uint8
        assert scene.dn.shape == (10, window[3], window[2])
        np.testing.assert_array_equal(scene.dn, dn)
        np.testing.assert_array_equal(scene.scl, scl)
        assert scene.transform.c == bounds.left and scene.transform.f == bounds.top
        assert scene.transform.a == 10.0 and scene.crs == "EPSG:32631"
        assert (scene.scene_id, scene.date) == (ref.scene_id, ref.date)
    # The junk the service leaves where dataMask == 0 was zeroed.
    full = source.read(_ref(source, imagery, 5), imagery.bounds)
    assert not full.dn[:, :6, :6].any() and not full.scl[:6, :6].any()
    assert source.processing_units == pytest.approx(server.units_served)
    assert source.processing_units > 0


@pytest.mark.network
def test_process_request_asks_for_one_day_on_the_utm_grid(
    source: SentinelHubSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    source.read(_ref(source, imagery, 25), sub_bounds(8, 8, 16, 16))
    (payload,) = server.bodies(ROUTE_PROCESS)
    data = payload["input"]["data"][0]
    assert data["type"] == "sentinel-2-l2a"
    assert data["dataFilter"]["timeRange"] == {
        "from": "2026-04-25T00:00:00Z",
        "to": "2026-04-26T00:00:00Z",
    }
    assert data["dataFilter"]["mosaickingOrder"] == "leastCC"
    assert data["dataFilter"]["maxCloudCoverage"] == 50
    assert payload["input"]["bounds"]["properties"]["crs"].endswith("/EPSG/0/32631")
    assert payload["output"]["resx"] == 10 and payload["output"]["resy"] == 10
    assert payload["output"]["responses"][0]["format"]["type"] == "image/tiff"


@pytest.mark.network
def test_second_run_is_served_from_the_cache(
    server: LoopbackServer, imagery: ImagerySet, tmp_path: Path
) -> None:
    bounds = sub_bounds(4, 4, 40, 40)

    def run() -> list[tuple[np.ndarray, np.ndarray]]:
        src = SentinelHubSource(server.sh_config(), cache_dir=tmp_path / "c", max_cloud_cover=50)
        return [
            (s.dn, s.scl) for s in map(lambda r: src.read(r, bounds), src.search(bounds, *APRIL))
        ]

    first = run()
    assert server.count() > 0
    server.reset_counts()
    second = run()
    assert server.count() == 0  # no token, no catalogue, no process request
    for (dn1, scl1), (dn2, scl2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(dn1, dn2)
        np.testing.assert_array_equal(scl1, scl2)


@pytest.mark.network
def test_corrupt_cache_entry_is_refetched(
    source: SentinelHubSource,
    server: LoopbackServer,
    imagery: ImagerySet,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ref = _ref(source, imagery, 5)
    bounds = sub_bounds(0, 0, 32, 32)
    source.read(ref, bounds)
    entries = [p for p in (tmp_path / "cache").rglob("*.bin") if p.stat().st_size > 1000]
    assert len(entries) == 1
    raw = bytearray(entries[0].read_bytes())
    raw[-50:] = b"\xff" * 50
    entries[0].write_bytes(bytes(raw))
    server.reset_counts()
    with caplog.at_level(logging.WARNING):
        scene = source.read(ref, bounds)
    assert "corrupt" in caplog.text
    assert server.count(ROUTE_PROCESS) == 1
    np.testing.assert_array_equal(scene.dn, read_reference(imagery.by_date(ref.date), bounds)[0])


@pytest.mark.network
def test_read_batch_sends_one_request_per_batch(
    source: SentinelHubSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    ref = _ref(source, imagery, 25)
    parcels = [sub_bounds(2, 3, 5, 4), sub_bounds(9, 3, 6, 6), sub_bounds(50, 55, 10, 7)]
    # A parcel whose edges fall inside pixels is widened to whole pixels.
    parcels.append(Bounds(600_301.0, 5_399_700.5, 600_349.0, 5_399_740.0, "EPSG:32631"))
    server.reset_counts()
    scenes = source.read_batch(ref, parcels)
    assert server.count(ROUTE_PROCESS) == 1
    assert len(scenes) == len(parcels)
    snapped = [*parcels[:3], sub_bounds(30, 26, 5, 4)]
    for scene, bounds in zip(scenes, snapped, strict=True):
        dn, scl = read_reference(imagery.by_date(ref.date), bounds)
        np.testing.assert_array_equal(scene.dn, dn)
        np.testing.assert_array_equal(scene.scl, scl)
        assert (scene.transform.c, scene.transform.f) == (bounds.left, bounds.top)


def test_read_refuses_areas_larger_than_one_request(tmp_path: Path) -> None:
    source = SentinelHubSource(SentinelHubSettings(client_id="x"), cache_dir=tmp_path)
    ref = SceneRef("S2L2A_20260405", dt.date(2026, 4, 5), "unused")
    huge = Bounds(600_000, 5_300_000, 600_000 + 10 * (MAX_REQUEST_PX + 1), 5_300_100, "EPSG:32631")
    with pytest.raises(ImageryError, match="plan_batches"):
        source.read(ref, huge)


# -- faults --------------------------------------------------------------------------
@pytest.mark.network
def test_429_waits_for_retry_after_then_succeeds(
    source: SentinelHubSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    ref = _ref(source, imagery, 5)
    server.inject(ROUTE_PROCESS, "429", retry_after="1000")  # Sentinel Hub: milliseconds
    scene = source.read(ref, sub_bounds(0, 0, 16, 16))
    assert scene.dn.shape == (10, 16, 16)
    first, second = [r for r in server.requests if r.path == ROUTE_PROCESS]
    assert second.at - first.at >= 1.0


@pytest.mark.network
def test_500_is_retried_then_succeeds(
    source: SentinelHubSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    server.inject(ROUTE_CATALOG, "500")
    refs = source.search(imagery.bounds, *APRIL)
    assert len(refs) == 2
    server.inject(ROUTE_PROCESS, "500", times=2)
    source.read(refs[0], sub_bounds(0, 0, 8, 8))
    assert server.count(ROUTE_CATALOG) == 2
    assert server.count(ROUTE_PROCESS) == 3


@pytest.mark.network
def test_timeout_ends_in_source_unavailable_after_the_last_try(
    server: LoopbackServer, imagery: ImagerySet, tmp_path: Path
) -> None:
    config = server.sh_config(max_download_attempts=2, download_timeout_seconds=0.5)
    source = SentinelHubSource(config, cache_dir=tmp_path, max_cloud_cover=50)
    ref = _ref(source, imagery, 5)
    server.inject(ROUTE_PROCESS, "timeout", times=5, sleep_s=1.5)
    started = time.monotonic()
    with pytest.raises(SourceUnavailableError) as info:
        source.read(ref, sub_bounds(0, 0, 8, 8))
    assert time.monotonic() - started < 3.0
    message = str(info.value)
    assert "after 2 attempt(s)" in message and "timeout" in message
    assert f"{server.url}/api/v1/process" in message
    assert server.count(ROUTE_PROCESS) == 2


@pytest.mark.network
def test_malformed_tiff_is_an_imagery_error_naming_the_scene(
    source: SentinelHubSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    ref = _ref(source, imagery, 25)
    server.inject(ROUTE_PROCESS, "malformed")
    with pytest.raises(ImageryError, match="S2L2A_20260425") as info:
        source.read(ref, sub_bounds(0, 0, 8, 8))
    assert not isinstance(info.value, SourceUnavailableError)
    assert "not a readable GeoTIFF" in str(info.value)
    # The bad answer was not cached: the next read asks again and gets good data.
    scene = source.read(ref, sub_bounds(0, 0, 8, 8))
    assert scene.dn[:, 6:, 6:].all()
    assert server.count(ROUTE_PROCESS) == 2


@pytest.mark.network
def test_expired_token_is_renewed_once(
    source: SentinelHubSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    ref = _ref(source, imagery, 5)
    assert server.count(ROUTE_TOKEN) == 1
    server.expire_tokens()
    source.read(ref, sub_bounds(0, 0, 8, 8))
    server.inject(ROUTE_CATALOG, "expire_token")
    source.search(imagery.bounds, dt.date(2026, 4, 2), dt.date(2026, 4, 29))
    assert server.count(ROUTE_TOKEN) == 3
    assert server.count(ROUTE_PROCESS) == 2  # one 401, one success


# -- credentials and secrets ---------------------------------------------------------
@pytest.mark.network
def test_client_secret_never_reaches_logs_errors_or_repr(
    server: LoopbackServer,
    imagery: ImagerySet,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = server.client_secret
    source = SentinelHubSource(server.sh_config(), cache_dir=tmp_path / "a", max_cloud_cover=50)
    refs = source.search(imagery.bounds, *APRIL)
    source.read(refs[0], sub_bounds(0, 0, 8, 8))
    server.inject(ROUTE_PROCESS, "500", times=10)
    with pytest.raises(SourceUnavailableError) as unavailable:
        source.read(refs[1], sub_bounds(0, 0, 8, 8))
    wrong = "wrong-" + secret
    bad = SentinelHubSource(
        server.sh_config(sh_client_secret=wrong), cache_dir=tmp_path / "b", max_cloud_cover=50
    )
    with pytest.raises(ImageryError, match="refused the OAuth client") as refused:
        bad.search(imagery.bounds, *APRIL)
    texts = [caplog.text, repr(source), str(source), repr(bad)]
    for exc in (unavailable.value, refused.value):
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    for text in texts:
        assert secret not in text and wrong not in text
        for token in server.tokens_issued:
            assert token not in text


@pytest.mark.network
def test_credentials_from_the_environment(
    server: LoopbackServer,
    imagery: ImagerySet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SH_CLIENT_ID", server.client_id)
    monkeypatch.setenv("SH_CLIENT_SECRET", server.client_secret)
    source = SentinelHubSource.from_settings(
        base_url=server.url, token_url=server.token_url, cache_dir=tmp_path / "c"
    )
    assert source.base_url == server.url
    assert [r.day for r in (ref.date for ref in source.search(imagery.bounds, *APRIL))] == [
        5,
        15,
        25,
    ]
    assert not (tmp_path / "home" / ".config").exists()  # no sentinelhub config.toml written


@pytest.mark.network
def test_missing_credentials_say_how_to_set_them(
    server: LoopbackServer, imagery: ImagerySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SH_CLIENT_ID", raising=False)
    monkeypatch.delenv("SH_CLIENT_SECRET", raising=False)
    source = SentinelHubSource(SentinelHubSettings(base_url=server.url))
    with pytest.raises(ImageryError, match="SH_CLIENT_ID and SH_CLIENT_SECRET"):
        source.search(imagery.bounds, *APRIL)
    assert server.count() == 0


def test_cdse_base_url_implies_its_token_url() -> None:
    config = SentinelHubSettings(base_url=CDSE_BASE_URL, client_id="id").to_shconfig()
    assert config.sh_token_url == CDSE_TOKEN_URL
    settings = SentinelHubSettings(max_attempts=2, backoff_s=0.5, timeout_s=9)
    source = SentinelHubSource(settings)
    assert (source.retry.max_attempts, source.retry.backoff_s, source.retry.timeout_s) == (
        2,
        0.5,
        9.0,
    )
    assert source.retry.retry_after_unit == "ms"
    hidden = SentinelHubSettings(client_id="id", client_secret="s3cr3t-value")
    assert "s3cr3t-value" not in repr(hidden) and "s3cr3t-value" not in str(hidden)
    assert hidden.to_shconfig().sh_client_secret == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(SentinelHubSource(hidden))
    with pytest.raises(ValueError, match="extra"):
        SentinelHubSettings(client="x")  # type: ignore[call-arg]


# -- plan_batches --------------------------------------------------------------------
def _box(x: float, y: float, w: float = 50, h: float = 50) -> Bounds:
    return Bounds(x, y, x + w, y + h, "EPSG:32631")


def test_plan_batches_groups_neighbours_and_separates_distant_villages() -> None:
    village_a = [_box(600_000 + 300 * i, 5_400_000 + 170 * (i % 3)) for i in range(20)]
    village_b = [_box(680_000 + 220 * i, 5_300_000) for i in range(5)]
    batches = plan_batches(village_a + village_b)
    assert len(batches) == 2
    for parcel in village_a + village_b:
        assert sum(_contains(b, parcel) for b in batches) >= 1
    assert plan_batches([]) == []


def test_plan_batches_caps_each_box_at_max_px() -> None:
    parcels = [_box(600_000 + 400 * i, 5_400_000 + 400 * j) for i in range(8) for j in range(8)]
    batches = plan_batches(parcels, max_px=100, resolution=10)
    assert len(batches) >= 9
    for box in batches:
        assert box.right - box.left <= 1000 and box.top - box.bottom <= 1000
    with pytest.raises(ParcelGeometryError, match="more than one"):
        plan_batches([_box(600_000, 5_400_000, w=30_000)])
    with pytest.raises(ParcelGeometryError, match="several CRSs"):
        plan_batches([_box(0, 0), Bounds(0, 0, 1, 1, "EPSG:32632")])


def _contains(outer: Bounds, inner: Bounds, tol: float = 1e-3) -> bool:
    """``inner`` inside ``outer``, up to ``tol`` metres (snapping ignores sub-mm overhangs)."""
    return (
        outer.left <= inner.left + tol
        and outer.bottom <= inner.bottom + tol
        and outer.right >= inner.right - tol
        and outer.top >= inner.top - tol
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 20_000),
            st.floats(0, 20_000),
            st.floats(1, 800),
            st.floats(1, 800),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(90, 400),
)
def test_plan_batches_covers_every_parcel_within_the_cap(
    boxes: list[tuple[float, float, float, float]], max_px: int
) -> None:
    parcels = [_box(600_000 + x, 5_300_000 + y, w, h) for x, y, w, h in boxes]
    batches = plan_batches(parcels, max_px=max_px, resolution=10.0)
    for box in batches:
        assert round((box.right - box.left) / 10) <= max_px
        assert round((box.top - box.bottom) / 10) <= max_px
        assert box.left % 10 == 0 and box.top % 10 == 0
    for parcel in parcels:
        assert any(_contains(b, parcel) for b in batches)


# -- retry helpers -------------------------------------------------------------------
def test_retry_after_is_read_in_the_services_unit() -> None:
    assert parse_retry_after("2", "s") == 2.0
    assert parse_retry_after("1500", "ms") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date: now


def test_retry_call_backs_off_with_jitter_and_gives_up_clearly() -> None:
    sleeps: list[float] = []
    calls = iter([RetryableError("HTTP 503"), RetryableError("HTTP 502"), "ok"])

    def flaky() -> str:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    policy = RetryPolicy(max_attempts=3, backoff_s=1.0, backoff_factor=2.0, jitter=0.25)
    assert retry_call(flaky, policy=policy, what="GET x", sleep=sleeps.append) == "ok"
    assert 0.75 <= sleeps[0] <= 1.25 and 1.5 <= sleeps[1] <= 2.5

    def always() -> str:
        raise RetryableError("HTTP 500", retry_after_s=None)

    with pytest.raises(SourceUnavailableError, match="GET x failed after 3 attempt"):
        retry_call(always, policy=policy, what="GET x", sleep=lambda s: None)

    def rate_limited() -> str:
        raise RetryableError("HTTP 429", retry_after_s=3600)

    with pytest.raises(SourceUnavailableError, match="asks to wait 3600 s"):
        retry_call(rate_limited, policy=policy, what="GET x", sleep=lambda s: None)


def test_urls_lose_their_query_strings_in_messages() -> None:
    signed = "https://user:pw@acct.blob.core.windows.net/c/B04.tif?sv=1&sig=SECRET"
    assert safe_url(signed) == "https://acct.blob.core.windows.net/c/B04.tif?<redacted>"
    text = redact_urls(f"HTTP error code: 503 - {signed}. Retrying")
    assert "SECRET" not in text and "B04.tif?<redacted>" in text
