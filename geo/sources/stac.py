"""A STAC API (Earth Search, Planetary Computer...) as an imagery source.

``search`` runs a pystac-client item search: the bounds reprojected to a lon/lat bbox, the
date range (whole UTC days) and ``query={"eo:cloud_cover": {"lte": max_cloud_cover}}``
(percent; also checked on the client, for catalogues that ignore ``query``). One
:class:`~geo.sources.base.SceneRef` per item (an MGRS tile on a day), sorted by date.

``read`` opens each band's Cloud-Optimised GeoTIFF asset with rasterio through
:class:`~geo.sources.httpfile.HttpAsset` (HTTP range requests: only the blocks under the
window travel) and warps it onto the grid of the bounds (origin at their top-left corner,
``resolution`` metres, the bounds' CRS) with nearest-neighbour resampling: 20 m bands (B05
B06 B07 B8A B11 B12) and SCL are repeated, never interpolated, which is also what Sentinel
Hub's Process API does by default. Pixels outside the asset are 0 (nodata). Items of
processing baseline >= 04.00 whose COGs still carry the +1000 BOA offset
(``s2:processing_baseline`` >= 4 and no ``earthsearch:boa_offset_applied: true``) are
harmonised to the old scale (DN - 1000, at least 1 where there is data), so every source
returns the same DN; ``harmonize=False`` keeps raw DN.

Signing: ``sign="planetary-computer"`` appends a Planetary Computer SAS token to Azure blob
hrefs at read time (:class:`PlanetaryComputerSigner`); any ``Callable[[str], str]`` works as
a hook. Signed URLs never reach logs, errors or the cache key.

Retries (:mod:`geo.sources.retry`), the same for API calls and COG range requests: 429
honours ``Retry-After`` in seconds; 5xx, timeouts and dropped connections (a body cut short
included) back off with jitter; after the last attempt a :class:`SourceUnavailableError`
names the scene, the band and the asset URL. A COG the server delivers whole but GDAL cannot
decode is an :class:`ImageryError` (not a readable GeoTIFF); 401/403/404 are an
:class:`ImageryError` saying the asset moved or its signature expired.

Caching: the items of a search (for ``search_cache_ttl_s``) and every window read are cached
on disk keyed by the request (unsigned hrefs, grid), so a re-run sends no request at all.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
import pystac
import rasterio
import requests
from pystac_client import Client
from pystac_client.stac_api_io import StacApiIO
from pystac_client.warnings import DoesNotConformTo
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from geo.errors import ImageryError, SourceUnavailableError
from geo.sources.base import SCENE_BANDS, Bounds, Grid, SceneData, SceneRef
from geo.sources.cache import DiskCache, request_key
from geo.sources.httpfile import HttpAsset
from geo.sources.retry import RetryPolicy, redact_urls, safe_url, send
from geo.types import BANDS

__all__ = [
    "EARTH_SEARCH_ASSETS",
    "EARTH_SEARCH_URL",
    "PLANETARY_COMPUTER_ASSETS",
    "PLANETARY_COMPUTER_SAS_URL",
    "PLANETARY_COMPUTER_URL",
    "PlanetaryComputerSigner",
    "StacSource",
]

log = logging.getLogger(__name__)

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
PLANETARY_COMPUTER_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
PLANETARY_COMPUTER_SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
#: Asset key of each band in Earth Search v1 ``sentinel-2-l2a`` items.
EARTH_SEARCH_ASSETS: Mapping[str, str] = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}
#: Asset key of each band in Planetary Computer ``sentinel-2-l2a`` items.
PLANETARY_COMPUTER_ASSETS: Mapping[str, str] = {band: band for band in SCENE_BANDS}
_BOA_OFFSET = 1000
_REDACTED_LOGGERS = (
    "rasterio._env",
    "rasterio._base",
    "rasterio._io",
    "rasterio.env",
    "rasterio._filepath",
    "rasterio.vrt",
    "rasterio._warp",
    "urllib3.connectionpool",  # logs each request line, query string (signature) included
)
_PATH_QUERY = re.compile(r"(/[^\s'\"?#]*)\?(?!<redacted>)[^\s'\"]+")

Signer = Callable[[str], str]


class _RedactQueries(logging.Filter):
    """Removes query strings (SAS tokens) from URLs and request lines in rasterio's and
    urllib3's log records (urllib3 logs ``"GET /path?query HTTP/1.1"`` without the host)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            message = _PATH_QUERY.sub(r"\1?<redacted>", redact_urls(message))
            record.msg, record.args = message, None
        return True


_REDACT = _RedactQueries()


def _install_redaction() -> None:
    for name in _REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


class PlanetaryComputerSigner:
    """Signs Azure blob hrefs with a Planetary Computer SAS token (cached until near expiry).

    Hrefs on other hosts, or already carrying ``sig=``, are returned unchanged. The token
    comes from ``<token_url>/<storage account>/<container>``.
    """

    def __init__(
        self,
        token_url: str = PLANETARY_COMPUTER_SAS_URL,
        *,
        retry: RetryPolicy | None = None,
        blob_suffix: str = ".blob.core.windows.net",
    ) -> None:
        self.token_url = token_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.blob_suffix = blob_suffix
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        return f"PlanetaryComputerSigner({self.token_url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_lock": None, "_session": None, "_tokens": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __call__(self, href: str) -> str:
        parts = urlsplit(href)
        host = parts.hostname or ""
        if not host.endswith(self.blob_suffix) or "sig=" in parts.query:
            return href
        account, container = host.split(".")[0], parts.path.lstrip("/").split("/")[0]
        token = self._token(account, container)
        return f"{href}{'&' if parts.query else '?'}{token}"

    def _token(self, account: str, container: str) -> str:
        with self._lock:
            cached = self._tokens.get((account, container))
            if cached is not None and cached[1] - 300 > time.time():
                return cached[0]
            if self._session is None:
                self._session = requests.Session()
            url = f"{self.token_url}/{account}/{container}"
            response = send(
                self._session,
                "GET",
                url,
                policy=self.retry,
                what=f"Planetary Computer SAS token request {safe_url(url)}",
            )
            try:
                response.raise_for_status()
                body = response.json()
                token = str(body["token"])
                expiry = dt.datetime.fromisoformat(str(body["msft:expiry"]).replace("Z", "+00:00"))
            except (requests.HTTPError, ValueError, KeyError) as exc:
                raise ImageryError(
                    f"the Planetary Computer SAS endpoint {safe_url(url)} gave no token "
                    f"(HTTP {response.status_code}, {type(exc).__name__}); check token_url, or "
                    "sign hrefs with your own hook (StacSource(sign=callable))"
                ) from None
            self._tokens[(account, container)] = (token, expiry.timestamp())
            log.debug("obtained a SAS token for %s/%s", account, container)
            return token


class _RetryingStacIO(StacApiIO):
    """pystac-client's I/O with :mod:`geo.sources.retry` instead of urllib3 retries."""

    def __init__(self, policy: RetryPolicy) -> None:
        super().__init__(timeout=policy.timeout_s, max_retries=None)
        self._policy = policy

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        verb = (method or "GET").upper()
        with_body = verb in ("POST", "PUT", "PATCH")
        what = f"STAC {verb} {safe_url(href)}"
        response = send(
            self.session,
            verb,
            href,
            policy=self._policy,
            what=what,
            headers=headers,
            json=parameters if with_body else None,
            params=None if with_body else parameters,
        )
        if not 200 <= response.status_code < 300:
            detail = redact_urls(response.text[:300].strip())
            raise ImageryError(
                f"{what} answered HTTP {response.status_code}: {detail}; check the catalogue "
                "URL, the collection name and the search parameters"
            )
        return response.content.decode("utf-8")


def _corners(b: Bounds) -> tuple[float, float, float, float]:
    return (b.left, b.bottom, b.right, b.top)


def _boa_offset(item: Mapping[str, Any]) -> int:
    """DN to subtract so the item's bands match the pre-2022 (baseline < 04.00) scale."""
    props = item.get("properties", {})
    if props.get("earthsearch:boa_offset_applied") is True:
        return 0
    baseline = props.get("s2:processing_baseline") or props.get("sentinel:processing_baseline")
    try:
        return _BOA_OFFSET if float(baseline) >= 4.0 else 0
    except (TypeError, ValueError):
        return 0


class StacSource:
    """Sentinel-2 L2A items of a STAC API, read as COG windows. See the module docstring.

    Args:
        catalog_url: the STAC API root (Earth Search v1 by default).
        collection: the collection id to search.
        max_cloud_cover: largest ``eo:cloud_cover`` (percent, 0-100) of a listed item.
        cache_dir: directory of the on-disk request cache; None disables caching.
        sign: None, ``"planetary-computer"`` or a callable ``href -> signed href``; None
            with the Planetary Computer catalogue URL means ``"planetary-computer"``.
        band_assets: asset key of each band of ``SCENE_BANDS`` (default: Earth Search names,
            or Planetary Computer names when ``sign="planetary-computer"``).
        retry: attempts, timeouts and backoff of API calls and COG reads.
        harmonize: remove the +1000 BOA offset of baseline >= 04.00 items.
        search_cache_ttl_s: how long a cached search is reused (None: forever).
        max_workers: bands read in parallel.
    """

    name = "stac"

    def __init__(
        self,
        catalog_url: str = EARTH_SEARCH_URL,
        collection: str = "sentinel-2-l2a",
        *,
        max_cloud_cover: float = 80.0,
        cache_dir: str | Path | None = None,
        sign: Literal["planetary-computer"] | Signer | None = None,
        band_assets: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        harmonize: bool = True,
        search_cache_ttl_s: float | None = 24 * 3600.0,
        max_workers: int = 4,
    ) -> None:
        if not 0 <= max_cloud_cover <= 100:
            raise ValueError(f"max_cloud_cover={max_cloud_cover}; expected a percentage 0-100")
        self.catalog_url = catalog_url.rstrip("/")
        self.collection = collection
        self.max_cloud_cover = float(max_cloud_cover)
        self.cache = DiskCache(cache_dir)
        self.retry = retry or RetryPolicy(max_attempts=4, timeout_s=60.0, backoff_s=1.0)
        self.harmonize = harmonize
        self.search_cache_ttl_s = search_cache_ttl_s
        self.max_workers = max(1, max_workers)
        if sign is None and self.catalog_url.startswith(PLANETARY_COMPUTER_URL):
            sign = "planetary-computer"  # its assets cannot be read unsigned
        self._signer: Signer | None
        if sign is None:
            self._signer = None
        elif sign == "planetary-computer":
            self._signer = PlanetaryComputerSigner(retry=self.retry)
        elif callable(sign):
            self._signer = sign
        else:
            raise ValueError(
                f"sign={sign!r}; expected None, 'planetary-computer' or a callable that takes "
                "an href and returns it signed"
            )
        if band_assets is None:
            pc = sign == "planetary-computer"
            band_assets = PLANETARY_COMPUTER_ASSETS if pc else EARTH_SEARCH_ASSETS
        missing = [b for b in SCENE_BANDS if b not in band_assets]
        if missing:
            raise ValueError(
                f"band_assets lacks {', '.join(missing)}; map every band of "
                f"{', '.join(SCENE_BANDS)} to the catalogue's asset key"
            )
        self.band_assets = dict(band_assets)
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._items: dict[str, dict[str, Any]] = {}
        self._local = threading.local()
        if self._signer is not None:
            _install_redaction()

    def __repr__(self) -> str:
        signed = "none" if self._signer is None else type(self._signer).__name__
        return (
            f"StacSource({self.catalog_url!r}, {self.collection!r}, max_cloud_cover="
            f"{self.max_cloud_cover:g}, sign={signed}, cache={self.cache!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_lock": None, "_client": None, "_local": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._local = threading.local()

    # -- catalogue ---------------------------------------------------------------------
    def _open(self) -> Client:
        with self._lock:
            if self._client is None:
                try:
                    self._client = Client.open(
                        self.catalog_url, stac_io=_RetryingStacIO(self.retry)
                    )
                except (pystac.STACError, KeyError, ValueError) as exc:
                    raise ImageryError(
                        f"{safe_url(self.catalog_url)} is not a STAC API landing page "
                        f"({type(exc).__name__}: {exc}); check catalog_url (e.g. "
                        f"{EARTH_SEARCH_URL})"
                    ) from exc
            return self._client

    def search(self, bounds: Bounds, start: dt.date, end: dt.date) -> list[SceneRef]:
        """Items of ``collection`` over ``bounds`` acquired in [start, end] (UTC days).

        Returns one :class:`SceneRef` per item (``scene_id`` the item id, ``href`` its STAC
        URL, ``cloud_cover`` in percent) sorted by date then id; an empty list when nothing
        matches.

        Raises:
            SourceUnavailableError: the API failed after the last retry.
            ImageryError: the catalogue refused the search or is not a STAC API.
        """
        if end < start:
            return []
        west, south, east, north = transform_bounds(
            bounds.crs, "EPSG:4326", *_corners(bounds), densify_pts=21
        )
        bbox = [round(v, 7) for v in (west, south, east, north)]
        key = request_key(
            {
                "source": self.name,
                "api": "search",
                "catalog": self.catalog_url,
                "collection": self.collection,
                "bbox": bbox,
                "start": start,
                "end": end,
                "max_cloud_cover": self.max_cloud_cover,
            }
        )
        items = self.cache.get_json(key, max_age_s=self.search_cache_ttl_s)
        if not isinstance(items, list):
            items = self._search_remote(bbox, start, end)
            self.cache.put_json(key, items)
        else:
            log.debug("STAC search: %d items from cache", len(items))
        refs = []
        for item in items:
            ref = self._ref(item)
            if ref.cloud_cover is not None and ref.cloud_cover > self.max_cloud_cover:
                continue
            self._items[ref.scene_id] = item
            refs.append(ref)
        refs.sort(key=lambda r: (r.date, r.scene_id))
        return refs

    def _search_remote(self, bbox: list[float], start: dt.date, end: dt.date) -> list[Any]:
        client = self._open()
        url = f"{safe_url(self.catalog_url)}/search"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DoesNotConformTo)
                search = client.search(
                    collections=[self.collection],
                    bbox=bbox,
                    datetime=f"{start.isoformat()}/{end.isoformat()}",
                    query={"eo:cloud_cover": {"lte": self.max_cloud_cover}},
                    limit=100,
                )
                items = list(search.items_as_dicts())
        except (pystac.STACError, NotImplementedError, KeyError, ValueError) as exc:
            raise ImageryError(
                f"STAC search at {url} failed ({type(exc).__name__}: {exc}); check the "
                f"catalogue supports item search and has the collection {self.collection!r}"
            ) from exc
        log.info(
            "STAC search at %s: %d items in %s..%s, cloud <= %g%%",
            url,
            len(items),
            start,
            end,
            self.max_cloud_cover,
        )
        return items

    def _ref(self, item: Mapping[str, Any]) -> SceneRef:
        try:
            item_id = str(item["id"])
            props = item["properties"]
            when = dt.datetime.fromisoformat(str(props["datetime"]).replace("Z", "+00:00"))
            cloud = props.get("eo:cloud_cover")
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageryError(
                f"STAC item from {safe_url(self.catalog_url)} lacks a readable id/datetime "
                f"({type(exc).__name__}: {exc}); check the catalogue serves STAC 1.x items"
            ) from exc
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC)
        href = next(
            (
                str(link["href"])
                for link in item.get("links", [])
                if isinstance(link, dict) and link.get("rel") == "self" and "href" in link
            ),
            f"{self.catalog_url}/collections/{self.collection}/items/{item_id}",
        )
        return SceneRef(
            scene_id=item_id,
            date=when.date(),
            href=href,
            cloud_cover=None if cloud is None else float(cloud),
        )

    def _item(self, ref: SceneRef) -> dict[str, Any]:
        item = self._items.get(ref.scene_id)
        if item is not None:
            return item
        key = request_key({"source": self.name, "api": "item", "href": ref.href})
        cached = self.cache.get_json(key)
        if isinstance(cached, dict):
            item = cached
        else:
            io = _RetryingStacIO(self.retry)
            try:
                item = json.loads(io.read_text(ref.href))
            except json.JSONDecodeError as exc:
                raise ImageryError(
                    f"scene {ref.scene_id}: {safe_url(ref.href)} is not a STAC item ({exc}); "
                    "re-run the search to refresh the reference"
                ) from exc
            self.cache.put_json(key, item)
        if not isinstance(item, dict):
            raise ImageryError(f"scene {ref.scene_id}: {safe_url(ref.href)} is not a STAC item")
        self._items[ref.scene_id] = item
        return item

    # -- read --------------------------------------------------------------------------
    def _asset_hrefs(self, ref: SceneRef, item: Mapping[str, Any]) -> list[str]:
        assets = item.get("assets") or {}
        hrefs = []
        for band in SCENE_BANDS:
            key = self.band_assets[band]
            asset = assets.get(key)
            if not isinstance(asset, dict) or "href" not in asset:
                raise ImageryError(
                    f"scene {ref.scene_id}: no asset {key!r} for band {band} (item assets: "
                    f"{', '.join(sorted(assets)) or 'none'}); pass band_assets mapping each band "
                    "to this catalogue's asset keys"
                )
            hrefs.append(str(asset["href"]))
        return hrefs

    def _session(self) -> requests.Session:
        """This thread's HTTP session for COG reads (connections are reused per thread)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _read_band(self, ref: SceneRef, band: str, href: str, grid: Grid, crs: str) -> np.ndarray:
        url = self._signer(href) if self._signer is not None else href
        where = f"scene {ref.scene_id} ({ref.date}), band {band}: {safe_url(href)}"
        asset = HttpAsset(url, label=safe_url(href), session=self._session(), policy=self.retry)
        try:
            with (
                rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
                rasterio.open(href, opener=asset) as src,
                WarpedVRT(
                    src,
                    crs=crs,
                    transform=grid.transform,
                    width=grid.width,
                    height=grid.height,
                    resampling=Resampling.nearest,
                    src_nodata=src.nodata if src.nodata is not None else 0,
                    nodata=0,
                ) as vrt,
            ):
                data = vrt.read(1)
        except (RasterioError, SourceUnavailableError, ImageryError) as exc:
            failure = asset.error if asset.error is not None else exc
            raise self._read_error(where, failure) from None
        log.debug("%s: %d range request(s), %d bytes", where, asset.requests, asset.bytes_read)
        return np.asarray(data)

    @staticmethod
    def _read_error(where: str, failure: Exception) -> ImageryError:
        message = redact_urls(str(failure))
        if isinstance(failure, SourceUnavailableError):
            return SourceUnavailableError(f"{where}: {message}")
        if isinstance(failure, ImageryError):
            return ImageryError(f"{where}: {message}")
        return ImageryError(
            f"{where} is not a readable GeoTIFF (GDAL: {message}); the asset arrived whole but "
            "is malformed or truncated: report it to the catalogue, or skip this scene"
        )

    def read(self, ref: SceneRef, bounds: Bounds, resolution: float = 10.0) -> SceneData:
        """Read the 10 bands and SCL of item ``ref`` over ``bounds`` from its COG assets.

        Output grid: origin (``bounds.left``, ``bounds.top``), ``resolution`` metres,
        ``ceil(extent / resolution)`` pixels per axis, ``bounds.crs``; nearest resampling.

        Returns:
            SceneData: ``dn`` (10, H, W) uint16 DN in BANDS order (harmonised, see module
            docstring), ``scl`` (H, W) uint8; 0 outside the assets.

        Raises:
            ImageryError: an asset is missing from the item or is not a readable GeoTIFF
                (the message names the scene and band).
            SourceUnavailableError: the catalogue or an asset failed after the last retry.
        """
        grid = Grid.of(bounds, resolution)
        item = self._item(ref)
        hrefs = self._asset_hrefs(ref, item)
        offset = _boa_offset(item) if self.harmonize else 0
        key = request_key(
            {
                "source": self.name,
                "api": "window",
                "hrefs": hrefs,
                "crs": bounds.crs,
                "transform": list(grid.transform)[:6],
                "width": grid.width,
                "height": grid.height,
                "resampling": "nearest",
                "boa_offset": offset,
            }
        )
        cached = self.cache.get_arrays(key)
        if cached is not None and {"dn", "scl"} <= cached.keys():
            dn, scl = cached["dn"], cached["scl"]
        else:
            dn, scl = self._read_remote(ref, hrefs, grid, bounds.crs, offset)
            self.cache.put_arrays(key, {"dn": dn, "scl": scl})
        return SceneData(
            scene_id=ref.scene_id,
            date=ref.date,
            dn=dn,
            scl=scl,
            transform=grid.transform,
            crs=bounds.crs,
            meta={"source": self.name, "href": ref.href, "boa_offset": str(offset)},
        )

    def _read_remote(
        self, ref: SceneRef, hrefs: list[str], grid: Grid, crs: str, offset: int
    ) -> tuple[np.ndarray, np.ndarray]:
        jobs = list(zip(SCENE_BANDS, hrefs, strict=True))
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="stac-read") as pool:
            futures = [pool.submit(self._read_band, ref, b, h, grid, crs) for b, h in jobs]
            layers = [f.result() for f in futures]
        stack = np.stack(layers).astype(np.int32)
        bands = stack[: len(BANDS)]
        if offset:
            bands = np.where(bands > 0, np.maximum(bands - offset, 1), 0)
        dn = np.clip(bands, 0, np.iinfo(np.uint16).max).astype(np.uint16)
        scl = np.clip(stack[len(BANDS)], 0, 255).astype(np.uint8)
        log.debug(
            "read %s over %d x %d px from %d COG assets",
            ref.scene_id,
            grid.width,
            grid.height,
            len(hrefs),
        )
        return dn, scl
