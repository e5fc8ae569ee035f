"""StacSource against the loopback STAC API and COG server (tests/geo/loopback.py).

The reference for every read is the band files read directly with rasterio
(fixtures_imagery.read_reference). Also here: the disk cache (geo.sources.cache).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fixtures_imagery import (
    EARTH_SEARCH_ASSETS,
    ImagerySet,
    build_imagery,
    read_reference,
    sub_bounds,
)
from loopback import ROUTE_COGS, ROUTE_SAS, ROUTE_STAC, ROUTE_STAC_SEARCH, LoopbackServer

from geo.errors import ImageryError, SourceUnavailableError
from geo.sources.base import SceneData, SceneRef, TileSource
from geo.sources.cache import DiskCache, canonical_json, request_key
from geo.sources.retry import RetryPolicy
from geo.sources.sentinelhub import SentinelHubSource
from geo.sources.stac import PLANETARY_COMPUTER_URL, PlanetaryComputerSigner, StacSource

APRIL = (dt.date(2026, 4, 1), dt.date(2026, 4, 30))
FAST = RetryPolicy(max_attempts=3, timeout_s=1.0, backoff_s=0.05, max_backoff_s=0.2)


@pytest.fixture(scope="module")
def imagery(tmp_path_factory: pytest.TempPathFactory) -> ImagerySet:
    return build_imagery(tmp_path_factory.mktemp("stac-imagery"))


@pytest.fixture
def server(imagery: ImagerySet) -> Iterator[LoopbackServer]:
    with LoopbackServer(imagery) as srv:
        yield srv


def _source(server: LoopbackServer, cache: Path | None, **kwargs: object) -> StacSource:
    options: dict = {"max_cloud_cover": 50, "retry": FAST, **kwargs}
    return StacSource(server.stac_url, cache_dir=cache, **options)


@pytest.fixture
def source(server: LoopbackServer, tmp_path: Path) -> StacSource:
    return _source(server, tmp_path / "cache")


def _ref(source: StacSource, imagery: ImagerySet, day: int) -> SceneRef:
    return next(r for r in source.search(imagery.bounds, *APRIL) if r.date.day == day)


def _assert_same(scene: SceneData, dn: np.ndarray, scl: np.ndarray) -> None:
    assert scene.dn.dtype == np.uint16 and scene.scl.dtype == np.uint8
    np.testing.assert_array_equal(scene.dn, dn)
    np.testing.assert_array_equal(scene.scl, scl)


# -- search --------------------------------------------------------------------------
@pytest.mark.network
def test_search_filters_clouds_and_follows_pages(
    source: StacSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    assert isinstance(source, TileSource)
    refs = source.search(imagery.bounds, *APRIL)
    # Two tiles on 5 Apr and one on 25 Apr; 15 Apr (62 %) is over the 50 % limit.
    assert [(r.date.day, r.scene_id) for r in refs] == [
        (5, "S2B_31UDQ_20260405_0_L2A"),
        (5, "S2B_31UEQ_20260405_0_L2A"),
        (25, "S2B_31UDQ_20260425_0_L2A"),
    ]
    assert [r.cloud_cover for r in refs] == [5.0, 5.0, 18.0]
    assert refs[0].href == f"{server.stac_url}/collections/sentinel-2-l2a/items/{refs[0].scene_id}"
    assert server.count(ROUTE_STAC_SEARCH) == 2  # pages of 2 items
    first = next(server.bodies(ROUTE_STAC_SEARCH))
    assert first["collections"] == ["sentinel-2-l2a"]
    assert first["query"] == {"eo:cloud_cover": {"lte": 50.0}}
    assert first["datetime"] == "2026-04-01T00:00:00Z/2026-04-30T23:59:59Z"
    np.testing.assert_allclose(first["bbox"], imagery.lonlat_bounds, atol=1e-6)


@pytest.mark.network
def test_empty_catalogue_gives_an_empty_list(
    source: StacSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    assert source.search(imagery.bounds, dt.date(2025, 6, 1), dt.date(2025, 6, 30)) == []
    server.inject(ROUTE_STAC_SEARCH, "empty")
    assert source.search(imagery.bounds, dt.date(2026, 3, 1), dt.date(2026, 5, 1)) == []


# -- read ----------------------------------------------------------------------------
@pytest.mark.network
@pytest.mark.parametrize("window", [(0, 0, 64, 64), (3, 5, 21, 17), (50, 40, 30, 30)])
def test_read_matches_the_source_files(
    source: StacSource, server: LoopbackServer, imagery: ImagerySet, window: tuple
) -> None:
    bounds = sub_bounds(*window)
    for ref in source.search(imagery.bounds, *APRIL):
        scene = source.read(ref, bounds)
        _assert_same(scene, *read_reference(imagery.by_item(ref.scene_id), bounds))
        assert scene.dn.shape == (10, window[3], window[2])
        assert (scene.transform.c, scene.transform.f, scene.transform.a) == (
            bounds.left,
            bounds.top,
            10.0,
        )
        assert scene.crs == "EPSG:32631" and scene.date == ref.date
    # 25 Apr is baseline 05.11: its files carry +1000, the source removed it.
    late = source.read(_ref(source, imagery, 25), bounds)
    assert late.meta["boa_offset"] == "1000"
    cog_gets = [r for r in server.requests if r.path.startswith(ROUTE_COGS) and r.method == "GET"]
    assert cog_gets and all(r.range and r.range.startswith("bytes=") for r in cog_gets)


@pytest.mark.network
def test_stac_and_sentinelhub_give_the_same_scene(
    source: StacSource, server: LoopbackServer, imagery: ImagerySet, tmp_path: Path
) -> None:
    hub = SentinelHubSource(server.sh_config(), cache_dir=tmp_path / "sh", max_cloud_cover=50)
    bounds = sub_bounds(7, 9, 45, 33)
    for day in (5, 25):
        stac_scene = source.read(_ref(source, imagery, day), bounds)
        hub_ref = next(r for r in hub.search(bounds, *APRIL) if r.date.day == day)
        hub_scene = hub.read(hub_ref, bounds)
        _assert_same(stac_scene, hub_scene.dn, hub_scene.scl)
        assert stac_scene.transform == hub_scene.transform


@pytest.mark.network
def test_local_archive_copy_reads_back_the_same(
    source: StacSource, imagery: ImagerySet, tmp_path: Path
) -> None:
    local = pytest.importorskip("geo.sources.local")
    ref = _ref(source, imagery, 25)
    full = source.read(ref, imagery.bounds)
    local.write_scene(tmp_path / "archive" / "scenes" / "S2L2A_20260425.tif", full)
    archive = local.LocalArchiveSource(tmp_path / "archive")
    (local_ref,) = archive.search(imagery.bounds, *APRIL)
    bounds = sub_bounds(11, 2, 20, 30)
    from_local = archive.read(local_ref, bounds)
    _assert_same(source.read(ref, bounds), from_local.dn, from_local.scl)


@pytest.mark.network
def test_harmonize_false_keeps_the_raw_digital_numbers(
    server: LoopbackServer, imagery: ImagerySet
) -> None:
    raw = _source(server, None, harmonize=False)
    ref = _ref(raw, imagery, 25)
    bounds = sub_bounds(0, 0, 16, 16)
    dn, _ = read_reference(imagery.by_item(ref.scene_id), bounds)
    expected = np.where(dn > 0, dn.astype(np.int32) + 1000, 0).astype(np.uint16)
    np.testing.assert_array_equal(raw.read(ref, bounds).dn, expected)


@pytest.mark.network
def test_item_is_fetched_when_the_ref_comes_from_elsewhere(
    server: LoopbackServer, imagery: ImagerySet
) -> None:
    ref = _ref(_source(server, None), imagery, 5)
    fresh = _source(server, None)
    server.reset_counts()
    scene = fresh.read(ref, sub_bounds(0, 0, 8, 8))
    assert server.count(f"{ROUTE_STAC}/collections/sentinel-2-l2a/items/") == 1
    assert scene.dn.shape == (10, 8, 8)


@pytest.mark.network
def test_second_run_is_served_from_the_cache(
    server: LoopbackServer, imagery: ImagerySet, tmp_path: Path
) -> None:
    bounds = sub_bounds(2, 2, 30, 30)

    def run() -> list[SceneData]:
        src = _source(server, tmp_path / "c")
        return [src.read(r, bounds) for r in src.search(bounds, *APRIL)]

    first = run()
    assert server.count(ROUTE_COGS) > 0
    server.reset_counts()
    second = run()
    assert server.count() == 0  # no landing page, no search, no item, no COG request
    for a, b in zip(first, second, strict=True):
        _assert_same(a, b.dn, b.scl)


@pytest.mark.network
def test_missing_asset_names_the_scene_and_the_fix(
    server: LoopbackServer, imagery: ImagerySet
) -> None:
    wrong = {**EARTH_SEARCH_ASSETS, "B02": "B02"}
    source = _source(server, None, band_assets=wrong)
    with pytest.raises(ImageryError, match="no asset 'B02' for band B02.*band_assets"):
        source.read(_ref(source, imagery, 5), sub_bounds(0, 0, 8, 8))
    with pytest.raises(ValueError, match="band_assets lacks SCL"):
        _source(server, None, band_assets={b: b for b in EARTH_SEARCH_ASSETS if b != "SCL"})


# -- faults --------------------------------------------------------------------------
@pytest.mark.network
def test_429_on_search_waits_for_retry_after(
    source: StacSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    server.inject(ROUTE_STAC_SEARCH, "429", retry_after="1")  # seconds, per RFC 9110
    assert len(source.search(imagery.bounds, *APRIL)) == 3
    first, second = [r for r in server.requests if r.path == ROUTE_STAC_SEARCH][:2]
    assert second.at - first.at >= 1.0


@pytest.mark.network
def test_500_then_success_on_search_and_on_a_cog(
    source: StacSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    server.inject(ROUTE_STAC_SEARCH, "500")
    ref = _ref(source, imagery, 5)
    red = f"{ROUTE_COGS}S2L2A_20260405/red.tif"
    server.inject(red, "500")
    bounds = sub_bounds(0, 0, 20, 20)
    _assert_same(source.read(ref, bounds), *read_reference(imagery.by_date(ref.date), bounds))
    assert server.count(ROUTE_STAC_SEARCH) == 3  # 500, then the two pages
    assert server.count(red) == server.count(f"{ROUTE_COGS}S2L2A_20260405/green.tif") + 1


@pytest.mark.network
def test_timeout_on_search_ends_in_source_unavailable(
    server: LoopbackServer, imagery: ImagerySet
) -> None:
    source = _source(server, None, retry=RetryPolicy(max_attempts=2, timeout_s=0.5, backoff_s=0))
    server.inject(ROUTE_STAC_SEARCH, "timeout", times=5, sleep_s=1.5)
    with pytest.raises(SourceUnavailableError, match="after 2 attempt.*timeout") as info:
        source.search(imagery.bounds, *APRIL)
    assert f"{server.stac_url}/search" in str(info.value)
    assert server.count(ROUTE_STAC_SEARCH) == 2


@pytest.mark.network
def test_timeout_on_a_cog_ends_in_source_unavailable(
    server: LoopbackServer, imagery: ImagerySet
) -> None:
    source = _source(server, None, retry=RetryPolicy(max_attempts=2, timeout_s=1, backoff_s=0.05))
    ref = _ref(source, imagery, 5)
    nir = f"{ROUTE_COGS}S2L2A_20260405/nir.tif"
    server.inject(nir, "timeout", times=10, sleep_s=2.0)
    started = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="band B08") as info:
        source.read(ref, sub_bounds(0, 0, 8, 8))
    assert time.monotonic() - started < 6
    assert ref.scene_id in str(info.value) and "nir.tif" in str(info.value)
    assert server.count(nir) == 2


@pytest.mark.network
def test_persistent_500_on_a_cog_ends_in_source_unavailable(
    source: StacSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    ref = _ref(source, imagery, 25)
    swir = f"{ROUTE_COGS}S2L2A_20260425/swir16.tif"
    server.inject(swir, "500", times=50)
    with pytest.raises(SourceUnavailableError, match="band B11.*HTTP 500"):
        source.read(ref, sub_bounds(0, 0, 8, 8))
    assert server.count(swir) == FAST.max_attempts


@pytest.mark.network
def test_malformed_cog_is_an_imagery_error_then_recovers(
    source: StacSource, server: LoopbackServer, imagery: ImagerySet
) -> None:
    ref = _ref(source, imagery, 5)
    scl = f"{ROUTE_COGS}S2L2A_20260405/scl.tif"
    server.inject(scl, "malformed", times=100)
    with pytest.raises(ImageryError, match="S2B_31UDQ_20260405_0_L2A.*band SCL") as info:
        source.read(ref, sub_bounds(0, 0, 8, 8))
    assert not isinstance(info.value, SourceUnavailableError)
    assert "not a readable GeoTIFF" in str(info.value)
    # Once the file is fixed, GDAL's memory of the bad bytes is dropped and the read works.
    server.clear_faults()
    scene = source.read(ref, sub_bounds(0, 0, 8, 8))
    assert scene.scl[6:, 6:].all()


# -- signing -------------------------------------------------------------------------
@pytest.mark.network
def test_signing_hook_is_applied_at_read_time_and_never_logged(
    server: LoopbackServer,
    imagery: ImagerySet,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "sv=2026&sig=FAKE-SAS-SIGNATURE-42"
    signed: list[str] = []

    def signer(href: str) -> str:
        signed.append(href)
        return f"{href}?{token}"

    source = _source(server, tmp_path / "c", sign=signer)
    ref = _ref(source, imagery, 5)
    assert not signed  # nothing signed at search time
    bounds = sub_bounds(0, 0, 12, 12)
    source.read(ref, bounds)
    assert len(signed) == 11
    cogs = [r for r in server.requests if r.path.startswith(ROUTE_COGS)]
    assert cogs and all(r.query == token for r in cogs)
    server.inject(f"{ROUTE_COGS}S2L2A_20260425/blue.tif", "500", times=50)
    with pytest.raises(SourceUnavailableError) as info:
        source.read(_ref(source, imagery, 25), bounds)
    texts = [caplog.text, str(info.value), "".join(traceback.format_exception(info.value))]
    assert all("FAKE-SAS-SIGNATURE" not in text for text in texts)
    # Signatures are not part of the cache key: another signer reuses the cached window.
    server.reset_counts()
    other = _source(server, tmp_path / "c", sign=lambda href: href + "?sig=OTHER")
    other.search(imagery.bounds, *APRIL)
    other.read(ref, bounds)
    assert server.count() == 0


@pytest.mark.network
def test_planetary_computer_signer_caches_its_sas_token(server: LoopbackServer) -> None:
    signer = PlanetaryComputerSigner(f"{server.url}/pc/sas", retry=FAST)
    href = "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/31/U/DQ/B04_10m.tif"
    first = signer(href)
    assert first.startswith(href + "?st=") and server.sas_signature in first
    assert signer(href.replace("B04", "B08")).endswith(server.sas_signature)
    assert server.count(ROUTE_SAS) == 1
    assert server.requests[0].path == f"{ROUTE_SAS}sentinel2l2a01/sentinel2-l2"
    assert signer("https://example.com/a.tif") == "https://example.com/a.tif"
    source = StacSource(server.stac_url, sign="planetary-computer")
    assert source.band_assets["B8A"] == "B8A"
    assert "PlanetaryComputerSigner" in repr(StacSource(PLANETARY_COMPUTER_URL))  # implied
    with pytest.raises(ValueError, match="sign="):
        StacSource(server.stac_url, sign="aws")  # type: ignore[arg-type]


# -- disk cache ----------------------------------------------------------------------
def test_cache_key_is_the_sha256_of_canonical_json() -> None:
    a = {"url": "http://x", "payload": {"b": 1, "a": [1, 2]}, "day": dt.date(2026, 4, 5)}
    b = {"day": dt.date(2026, 4, 5), "payload": {"a": [1, 2], "b": 1}, "url": "http://x"}
    assert request_key(a) == request_key(b)
    assert canonical_json(a) == '{"day":"2026-04-05","payload":{"a":[1,2],"b":1},"url":"http://x"}'
    assert request_key(a) != request_key({**a, "url": "http://y"})
    assert len(request_key(a)) == 64


def test_cache_detects_corrupt_entries_and_writes_atomically(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DiskCache(tmp_path)
    key = request_key({"k": 1})
    cache.put(key, b"payload" * 100)
    assert cache.get(key) == b"payload" * 100
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{key}.bin"]  # no temp
    path = cache.path_for(key)
    path.write_bytes(path.read_bytes()[:-10])  # truncated, as by a crash mid-write elsewhere
    with caplog.at_level(logging.WARNING):
        assert cache.get(key) is None
    assert "corrupt" in caplog.text and not path.exists()
    cache.put_arrays(key, {"dn": np.arange(6, dtype=np.uint16).reshape(2, 3)})
    np.testing.assert_array_equal(cache.get_arrays(key)["dn"], [[0, 1, 2], [3, 4, 5]])
    cache.put_json(key, {"a": 1})
    os.utime(path, (time.time() - 100, time.time() - 100))
    assert cache.get_json(key) == {"a": 1}
    assert cache.get_json(key, max_age_s=50) is None
    disabled = DiskCache(None)
    disabled.put(key, b"x")
    assert disabled.get(key) is None and not disabled.enabled
