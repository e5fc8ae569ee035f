"""Sentinel Hub as an imagery source: the Catalog API lists acquisitions, the Process API reads.

``search`` asks the Catalog API (:class:`sentinelhub.SentinelHubCatalog`) for Sentinel-2 L2A
acquisitions over the bounds with ``eo:cloud_cover <= max_cloud_cover`` (percent) and gives
one :class:`~geo.sources.base.SceneRef` per acquisition day (``S2L2A_<YYYYMMDD>``; tiles of
the same day are mosaicked by the Process API). ``read`` sends one Process API request
(:class:`sentinelhub.SentinelHubRequest`) for that day: an evalscript returning the 10 L2A
bands of :data:`geo.types.BANDS` as UINT16 digital numbers, ``SCL`` and ``dataMask``, as a
GeoTIFF on the grid of the bounds (UTM, ``resolution`` metres, 20 m bands upsampled nearest,
values harmonised to the pre-2022 processing baseline as Sentinel Hub does by default).
Pixels with ``dataMask == 0`` come back as 0 in ``dn`` and ``scl``. One request covers at
most 2500 px per side: :func:`plan_batches` groups nearby parcels into such boxes and
:meth:`SentinelHubSource.read_batch` reads them with one request per box.

Credentials: an OAuth client (``SH_CLIENT_ID`` / ``SH_CLIENT_SECRET`` in the environment, a
``sentinelhub`` ``config.toml`` profile, or :class:`SentinelHubSettings`). The token is
fetched on the first request that needs one, refreshed before it expires and once more when
the service answers 401. The secret and the token never appear in logs, errors or ``repr``.

Retries (:mod:`geo.sources.retry`): 429 waits the ``Retry-After`` the service sends (in
milliseconds, as Sentinel Hub does), 5xx and timeouts back off exponentially with jitter;
``max_download_attempts``, ``download_sleep_time`` and ``download_timeout_seconds`` of the
``SHConfig`` set the number of attempts, the first wait and the per-attempt timeout. The error
after the last try names the request (the scene and its date, the bbox and size, the batch in
:meth:`SentinelHubSource.read_batch`; the date range and bbox of a catalogue search).
Processing units spent (``x-processingunits-spent``) add up in
:attr:`SentinelHubSource.processing_units`. Catalogue answers (for ``search_cache_ttl_s``)
and Process API responses are cached on disk keyed by the request (:mod:`geo.sources.cache`),
so a re-run over the same bounds and dates sends no request at all.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import requests
from affine import Affine
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from rasterio.crs import CRS as RioCRS
from rasterio.errors import CRSError, RasterioError
from rasterio.io import MemoryFile
from sentinelhub import (
    CRS,
    BBox,
    DataCollection,
    MimeType,
    MosaickingOrder,
    ResamplingType,
    SentinelHubCatalog,
    SentinelHubDownloadClient,
    SentinelHubRequest,
    SHConfig,
)
from sentinelhub.api.base_request import InputDataDict
from sentinelhub.constants import SHConstants
from sentinelhub.download.models import DownloadRequest, DownloadResponse

from geo.errors import ImageryError, ParcelGeometryError
from geo.sources.base import Bounds, Grid, SceneData, SceneRef
from geo.sources.cache import DiskCache, request_key
from geo.sources.retry import RetryPolicy, safe_url, send
from geo.types import BANDS

__all__ = [
    "CDSE_BASE_URL",
    "CDSE_TOKEN_URL",
    "EVALSCRIPT",
    "MAX_REQUEST_PX",
    "SentinelHubSettings",
    "SentinelHubSource",
    "plan_batches",
]

log = logging.getLogger(__name__)

#: The Process API's largest output, in pixels per side.
MAX_REQUEST_PX = 2500
#: Copernicus Data Space Ecosystem deployment of Sentinel Hub (free for Copernicus users).
CDSE_BASE_URL = "https://sh.dataspace.copernicus.eu"
CDSE_TOKEN_URL = (
    "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
)
_KNOWN_TOKEN_URLS = {CDSE_BASE_URL: CDSE_TOKEN_URL}
_COLLECTION = DataCollection.SENTINEL2_L2A
_UNITS_HEADER = "x-processingunits-spent"
_OUTPUT_BANDS = (*BANDS, "SCL", "dataMask")

#: Evalscript of every read: the 10 bands as DN, SCL and dataMask, one UINT16 GeoTIFF.
EVALSCRIPT = f"""//VERSION=3
function setup() {{
  return {{
    input: [{{bands: {json.dumps(list(_OUTPUT_BANDS))}, units: "DN"}}],
    output: {{id: "default", bands: {len(_OUTPUT_BANDS)}, sampleType: "UINT16"}}
  }};
}}
function evaluatePixel(s) {{
  return [{", ".join(f"s.{b}" for b in _OUTPUT_BANDS)}];
}}
"""

_FIX_CREDENTIALS = (
    "set SH_CLIENT_ID and SH_CLIENT_SECRET in the environment, or save an OAuth client in a "
    "sentinelhub profile (`sentinelhub.config --profile NAME --sh_client_id ID "
    "--sh_client_secret SECRET`) and pass SentinelHubSettings(profile='NAME')"
)

_FIX_UNAVAILABLE = (
    "Sentinel Hub may be down or rate-limiting: re-run later (answers already received are "
    "cached and not requested again), or raise max_download_attempts / "
    "download_timeout_seconds of the sentinelhub profile"
)


def _naming(exc: ImageryError, request: str) -> ImageryError:
    """``exc`` again (same class) with ``request`` named in front of its message."""
    return type(exc)(f"{request}: {exc}")


class SentinelHubSettings(BaseModel):
    """Where and as whom to reach Sentinel Hub; every field optional.

    Unset fields come from the ``sentinelhub`` profile ``profile`` (its ``config.toml``)
    when given, else from ``SH_CLIENT_ID`` / ``SH_CLIENT_SECRET`` and sentinelhub's defaults
    (``https://services.sentinel-hub.com``). ``base_url`` set to :data:`CDSE_BASE_URL`
    implies the CDSE token URL. ``max_attempts`` / ``backoff_s`` / ``timeout_s`` override the
    profile's ``max_download_attempts`` / ``download_sleep_time`` / ``download_timeout_seconds``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    base_url: str | None = None
    token_url: str | None = None
    max_attempts: int | None = Field(default=None, ge=1)
    backoff_s: float | None = Field(default=None, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)

    def to_shconfig(self) -> SHConfig:
        """An ``SHConfig`` with these settings applied.

        Raises:
            ImageryError: ``profile`` is not in sentinelhub's ``config.toml``.
        """
        if self.profile:
            try:
                config = SHConfig(self.profile)
            except KeyError:
                raise ImageryError(
                    f"sentinelhub profile {self.profile!r} is not in "
                    f"{SHConfig.get_config_location()}; create it (`sentinelhub.config --profile "
                    f"{self.profile} --sh_client_id ID --sh_client_secret SECRET`) or leave the "
                    "profile unset and use SH_CLIENT_ID / SH_CLIENT_SECRET"
                ) from None
        else:
            # Defaults plus environment: never create ~/.config/sentinelhub as a side effect.
            config = SHConfig(use_defaults=True)
            config.sh_client_id = os.environ.get("SH_CLIENT_ID", config.sh_client_id)
            config.sh_client_secret = os.environ.get("SH_CLIENT_SECRET", config.sh_client_secret)
        if self.client_id is not None:
            config.sh_client_id = self.client_id
        if self.client_secret is not None:
            config.sh_client_secret = self.client_secret.get_secret_value()
        if self.base_url is not None:
            config.sh_base_url = self.base_url.rstrip("/")
            if self.token_url is None and config.sh_base_url in _KNOWN_TOKEN_URLS:
                config.sh_token_url = _KNOWN_TOKEN_URLS[config.sh_base_url]
        if self.token_url is not None:
            config.sh_token_url = self.token_url
        if self.max_attempts is not None:
            config.max_download_attempts = self.max_attempts
        if self.backoff_s is not None:
            config.download_sleep_time = self.backoff_s
        if self.timeout_s is not None:
            config.download_timeout_seconds = self.timeout_s
        return config


def _resolve_config(config: SentinelHubSettings | SHConfig | None) -> SHConfig:
    if isinstance(config, SHConfig):
        return config.copy()
    return (config or SentinelHubSettings()).to_shconfig()


# --------------------------------------------------------------------------------------
# HTTP: token, retries, 401 refresh, processing units
# --------------------------------------------------------------------------------------
class _ShHttp:
    """Authenticated HTTP to one Sentinel Hub deployment (thread-safe)."""

    def __init__(self, config: SHConfig, policy: RetryPolicy) -> None:
        self._config = config
        self._policy = policy
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self.processing_units = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_lock=None, _session=None, _token=None, _expires_at=0.0)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def scrub(self, text: str) -> str:
        """``text`` with the client secret and the current token masked."""
        for secret in (self._config.sh_client_secret, self._token):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _fetch_token(self) -> None:
        client_id, secret = self._config.sh_client_id, self._config.sh_client_secret
        url = self._config.sh_token_url
        if not client_id or not secret:
            raise ImageryError(
                f"Sentinel Hub credentials are not set (token URL {safe_url(url)}); "
                f"{_FIX_CREDENTIALS}"
            )
        response = send(
            self.session,
            "POST",
            url,
            policy=self._policy,
            what=f"Sentinel Hub token request to {safe_url(url)}",
            fix="check sh_token_url and the authentication service status, then re-run",
            headers={"Content-Type": "application/x-www-form-urlencoded", **SHConstants.HEADERS},
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        )
        if response.status_code in (400, 401, 403):
            reason = _error_code(response)
            raise ImageryError(
                f"Sentinel Hub refused the OAuth client {client_id!r} at {safe_url(url)} "
                f"(HTTP {response.status_code}{': ' + self.scrub(reason) if reason else ''}); "
                f"check the client id and secret are current, {_FIX_CREDENTIALS}"
            )
        try:
            body = response.json()
            token = str(body["access_token"])
            expires_in = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise ImageryError(
                f"the Sentinel Hub token endpoint {safe_url(url)} answered HTTP "
                f"{response.status_code} without an access_token; check sh_token_url points at "
                "the OAuth token endpoint of your deployment"
            ) from None
        self._token = token
        self._expires_at = time.monotonic() + expires_in
        log.debug("obtained a Sentinel Hub token valid for %.0f s", expires_in)

    def _bearer(self, *, renew: bool) -> str:
        with self._lock:
            if renew or self._token is None or time.monotonic() > self._expires_at - 60:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def _count_units(self, response: requests.Response) -> None:
        spent = response.headers.get(_UNITS_HEADER)
        if spent is None:
            return
        try:
            units = float(spent)
        except ValueError:
            return
        with self._lock:
            self.processing_units += units
        log.debug("%s: %.4f processing units", safe_url(response.url), units)

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        authenticated: bool = True,
    ) -> requests.Response:
        """Send one request; raise :class:`ImageryError` for a 4xx after one token refresh.

        Raises:
            SourceUnavailableError: 429/5xx/timeouts until the last attempt.
            ImageryError: the request was refused (400, 401 twice, 403, 404...).
        """
        what = f"Sentinel Hub {method} {safe_url(url)}"
        renew = False
        while True:
            all_headers = {**SHConstants.HEADERS, **(headers or {})}
            if authenticated:
                all_headers["Authorization"] = f"Bearer {self._bearer(renew=renew)}"
            response = send(
                self.session,
                method,
                url,
                policy=self._policy,
                what=what,
                fix=_FIX_UNAVAILABLE,
                headers=all_headers,
                json=json_body,
                on_response=self._count_units,
            )
            if response.status_code == 401 and authenticated and not renew:
                log.info("%s answered 401 (token expired or revoked); fetching a new token", what)
                renew = True
                continue
            if response.status_code >= 400:
                raise ImageryError(self._refusal(response, what))
            return response

    def _refusal(self, response: requests.Response, what: str) -> str:
        status = response.status_code
        detail = self.scrub(_error_message(response))
        fixes = {
            400: "the request was rejected: check the bounds are in a UTM EPSG CRS and at most "
            f"{MAX_REQUEST_PX} px per side (use plan_batches / read_batch)",
            401: "the token was refused even after renewal: check the OAuth client may use "
            "the Catalog and Process APIs of this deployment",
            403: "the account may lack access or its processing-unit quota is spent: check "
            "the Sentinel Hub dashboard",
            404: "check sh_base_url points at a Sentinel Hub deployment",
        }
        fix = fixes.get(status, "check the request and the service status")
        return f"{what} answered HTTP {status}{': ' + detail if detail else ''}; {fix}"


def _error_code(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("error", ""))[:200]
    return ""


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip()
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error.get("reason") or error)[:300]
    return str(error)[:300]


class _ShDownloadClient(SentinelHubDownloadClient):
    """sentinelhub's download client with its HTTP replaced by :class:`_ShHttp`.

    The Catalog search iterator and the Process API requests build their own payloads; every
    request they send passes through here, so retries, token renewal and processing-unit
    accounting are the same for both.
    """

    def __init__(self, *, config: SHConfig, http: _ShHttp) -> None:
        super().__init__(config=config)
        self._http = http

    def _execute_download(self, request: DownloadRequest) -> DownloadResponse:
        if request.url is None:
            raise ImageryError("internal error: a Sentinel Hub request without a URL")
        response = self._http.request(
            request.request_type.value,
            request.url,
            json_body=request.post_values,
            headers=dict(request.headers),
            authenticated=request.use_session,
        )
        return DownloadResponse.from_response(response, request)


# --------------------------------------------------------------------------------------
# Grids and batches
# --------------------------------------------------------------------------------------


def _snap(b: Bounds, resolution: float) -> tuple[float, float, float, float]:
    """``b`` grown outwards to multiples of ``resolution``."""
    eps = 1e-6
    return (
        math.floor(b.left / resolution + eps) * resolution,
        math.floor(b.bottom / resolution + eps) * resolution,
        math.ceil(b.right / resolution - eps) * resolution,
        math.ceil(b.top / resolution - eps) * resolution,
    )


def _plan(
    parcel_bounds: Sequence[Bounds], max_px: int, resolution: float, max_gap_px: int
) -> list[tuple[Bounds, list[int]]]:
    """Batch boxes with the indices of the parcels each one covers."""
    if max_px < 1 or resolution <= 0 or max_gap_px < 0:
        raise ValueError(
            f"max_px={max_px}, resolution={resolution}, max_gap_px={max_gap_px}; expected "
            "max_px >= 1, resolution > 0 and max_gap_px >= 0"
        )
    if not parcel_bounds:
        return []
    crs = parcel_bounds[0].crs
    others = sorted({b.crs for b in parcel_bounds} - {crs})
    if others:
        raise ParcelGeometryError(
            f"parcel bounds are in several CRSs ({crs}, {', '.join(others)}); expected one UTM "
            "CRS: reproject the parcels (geo.parcels.read_parcels) before planning batches"
        )
    side_px = max_px
    gap = max_gap_px * resolution
    boxes: list[list[float]] = []
    members: list[list[int]] = []
    snapped = [_snap(b, resolution) for b in parcel_bounds]
    for i, (left, bottom, right, top) in enumerate(snapped):
        w_px, h_px = round((right - left) / resolution), round((top - bottom) / resolution)
        if w_px > side_px or h_px > side_px:
            raise ParcelGeometryError(
                f"parcel bounds #{i} span {w_px} x {h_px} px at {resolution:g} m, more than one "
                f"Process API request ({max_px} px per side); split the parcel or read its area "
                "in tiles with SentinelHubSource.read"
            )

    def fits(a: Sequence[float], b: Sequence[float]) -> tuple[bool, float]:
        ul, ub = min(a[0], b[0]), min(a[1], b[1])
        ur, ut = max(a[2], b[2]), max(a[3], b[3])
        dx = max(a[0] - b[2], b[0] - a[2], 0.0)
        dy = max(a[1] - b[3], b[1] - a[3], 0.0)
        ok = (
            round((ur - ul) / resolution) <= side_px
            and round((ut - ub) / resolution) <= side_px
            and max(dx, dy) <= gap + 1e-6
        )
        growth = (ur - ul) * (ut - ub) - (a[2] - a[0]) * (a[3] - a[1])
        return ok, growth

    side_m = max_px * resolution

    def order_key(i: int) -> tuple[int, int, float, float]:
        left, bottom, right, top = snapped[i]
        cx, cy = (left + right) / 2, (bottom + top) / 2
        return (-math.floor(cy / side_m), math.floor(cx / side_m), cx, -cy)

    for i in sorted(range(len(snapped)), key=order_key):
        box = snapped[i]
        best, best_growth = -1, math.inf
        for k, current in enumerate(boxes):
            ok, growth = fits(current, box)
            if ok and growth < best_growth:
                best, best_growth = k, growth
        if best < 0:
            boxes.append(list(box))
            members.append([i])
        else:
            cur = boxes[best]
            boxes[best] = [
                min(cur[0], box[0]),
                min(cur[1], box[1]),
                max(cur[2], box[2]),
                max(cur[3], box[3]),
            ]
            members[best].append(i)
    # Greedy order can leave two neighbouring boxes apart: merge while any pair fits.
    merged = True
    while merged:
        merged = False
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                if fits(boxes[a], boxes[b])[0]:
                    boxes[a] = [
                        min(boxes[a][0], boxes[b][0]),
                        min(boxes[a][1], boxes[b][1]),
                        max(boxes[a][2], boxes[b][2]),
                        max(boxes[a][3], boxes[b][3]),
                    ]
                    members[a].extend(members[b])
                    del boxes[b], members[b]
                    merged = True
                    break
            if merged:
                break
    plan = [
        (Bounds(box[0], box[1], box[2], box[3], crs), sorted(m))
        for box, m in zip(boxes, members, strict=True)
    ]
    plan.sort(key=lambda p: (-p[0].top, p[0].left))
    return plan


def plan_batches(
    parcel_bounds: list[Bounds],
    max_px: int = MAX_REQUEST_PX,
    resolution: float = 10.0,
    *,
    max_gap_px: int = 200,
) -> list[Bounds]:
    """Group parcels by proximity into request boxes of at most ``max_px`` pixels per side.

    Each parcel's bounds (one projected CRS, metres) are snapped outwards to multiples of
    ``resolution``; a parcel joins the box that grows least, provided the grown box stays
    within ``max_px`` x ``max_px`` pixels and the parcel lies within ``max_gap_px`` pixels of it
    (so distant villages get separate, small requests rather than one large, costly one).
    Every parcel lies inside exactly one returned box; boxes are on the ``resolution`` grid,
    sorted north to south, then west to east.

    Raises:
        ParcelGeometryError: the bounds mix CRSs, or one parcel alone exceeds ``max_px``.
        ValueError: a non-positive ``max_px`` or ``resolution``.
    """
    return [box for box, _ in _plan(parcel_bounds, max_px, resolution, max_gap_px)]


def _crop(scene: SceneData, bounds: Bounds, resolution: float) -> SceneData:
    """The pixels of ``scene`` covering ``bounds`` (snapped outwards to its grid)."""
    t = scene.transform
    eps = 1e-6
    col0 = max(math.floor((bounds.left - t.c) / resolution + eps), 0)
    row0 = max(math.floor((t.f - bounds.top) / resolution + eps), 0)
    col1 = min(math.ceil((bounds.right - t.c) / resolution - eps), scene.shape[1])
    row1 = min(math.ceil((t.f - bounds.bottom) / resolution - eps), scene.shape[0])
    return SceneData(
        scene_id=scene.scene_id,
        date=scene.date,
        dn=scene.dn[:, row0:row1, col0:col1].copy(),
        scl=scene.scl[row0:row1, col0:col1].copy(),
        transform=t @ Affine.translation(col0, row0),
        crs=scene.crs,
        meta=dict(scene.meta),
    )


def _epsg(crs: str) -> int:
    try:
        code = RioCRS.from_user_input(crs).to_epsg()
    except CRSError:
        code = None
    if code is None:
        raise ImageryError(
            f"bounds CRS {crs!r} has no EPSG code; expected a UTM CRS such as 'EPSG:32631' "
            "(reproject the parcels to their UTM zone)"
        )
    return int(code)


# --------------------------------------------------------------------------------------
# The source
# --------------------------------------------------------------------------------------
class SentinelHubSource:
    """Sentinel-2 L2A from Sentinel Hub (Catalog + Process APIs). See the module docstring.

    Args:
        config: an ``SHConfig`` (profile, URLs, retry settings), :class:`SentinelHubSettings`,
            or None for ``SH_CLIENT_ID`` / ``SH_CLIENT_SECRET`` and the default deployment.
        cache_dir: directory of the on-disk request cache; None disables caching.
        max_cloud_cover: largest ``eo:cloud_cover`` (percent, 0-100) of a listed acquisition.
        mosaicking_order: which tile wins where tiles of one day overlap.
        retry: overrides the retry policy derived from the ``SHConfig``.
        search_cache_ttl_s: how long a cached catalogue answer is reused (None: forever).
    """

    name = "sentinelhub"

    def __init__(
        self,
        config: SentinelHubSettings | SHConfig | None = None,
        *,
        cache_dir: str | Path | None = None,
        max_cloud_cover: float = 80.0,
        mosaicking_order: Literal["leastCC", "mostRecent", "leastRecent"] = "leastCC",
        retry: RetryPolicy | None = None,
        search_cache_ttl_s: float | None = 24 * 3600.0,
    ) -> None:
        if not 0 <= max_cloud_cover <= 100:
            raise ValueError(f"max_cloud_cover={max_cloud_cover}; expected a percentage 0-100")
        self._config = _resolve_config(config)
        self.max_cloud_cover = float(max_cloud_cover)
        self.mosaicking_order = MosaickingOrder(mosaicking_order)
        self.cache = DiskCache(cache_dir)
        self.search_cache_ttl_s = search_cache_ttl_s
        self.retry = retry or RetryPolicy(
            max_attempts=max(1, int(self._config.max_download_attempts)),
            backoff_s=float(self._config.download_sleep_time),
            timeout_s=float(self._config.download_timeout_seconds),
            retry_after_unit="ms",
        )
        self._http = _ShHttp(self._config, self.retry)
        self._client = _ShDownloadClient(config=self._config, http=self._http)

    @classmethod
    def from_settings(
        cls,
        *,
        profile: str | None = None,
        base_url: str | None = None,
        token_url: str | None = None,
        cache_dir: str | Path | None = None,
        max_cloud_cover: float = 80.0,
        **kwargs: Any,
    ) -> SentinelHubSource:
        """A source from plain settings (what ``geo.sources.factory.open_source`` passes)."""
        settings = SentinelHubSettings(profile=profile, base_url=base_url, token_url=token_url)
        return cls(settings, cache_dir=cache_dir, max_cloud_cover=max_cloud_cover, **kwargs)

    def __repr__(self) -> str:
        return (
            f"SentinelHubSource(base_url={self.base_url!r}, max_cloud_cover="
            f"{self.max_cloud_cover:g}, mosaicking_order={self.mosaicking_order.value!r}, "
            f"cache={self.cache!r})"
        )

    @property
    def base_url(self) -> str:
        return str(self._config.sh_base_url).rstrip("/")

    @property
    def processing_units(self) -> float:
        """Processing units Sentinel Hub reported spent by this source's requests so far."""
        return self._http.processing_units

    # -- search ------------------------------------------------------------------------
    def search(self, bounds: Bounds, start: dt.date, end: dt.date) -> list[SceneRef]:
        """Acquisition days over ``bounds`` in [start, end] with cloud cover <= the maximum.

        One :class:`SceneRef` per UTC day, sorted by date: ``scene_id`` ``S2L2A_<YYYYMMDD>``,
        ``href`` the Catalog item of the day's first tile, ``cloud_cover`` the largest of the
        day's tiles (percent). No match gives an empty list.

        Raises:
            SourceUnavailableError: the Catalog API failed after the last retry.
            ImageryError: the request was refused or credentials are missing.
        """
        if end < start:
            return []
        box = (bounds.left, bounds.bottom, bounds.right, bounds.top)
        key = request_key(
            {
                "source": self.name,
                "api": "catalog",
                "base_url": self.base_url,
                "collection": _COLLECTION.catalog_id,
                "bbox": box,
                "crs": bounds.crs,
                "start": start,
                "end": end,
                "max_cloud_cover": self.max_cloud_cover,
            }
        )
        cached = self.cache.get_json(key, max_age_s=self.search_cache_ttl_s)
        if isinstance(cached, list):
            try:
                refs = [_ref_from_json(r) for r in cached]
            except (KeyError, TypeError, ValueError):
                self.cache.discard(key, reason="not a list of scene references")
            else:
                log.debug("Sentinel Hub catalogue: %d acquisitions from cache", len(refs))
                return refs
        catalog = SentinelHubCatalog(config=self._config)
        catalog.client = self._client
        url = f"{catalog.service_url}/search"
        try:
            features = list(
                catalog.search(
                    _COLLECTION.catalog_id,
                    time=(start, end),
                    bbox=BBox(box, crs=CRS(_epsg(bounds.crs))),
                    filter=f"eo:cloud_cover <= {self.max_cloud_cover:g}",
                    fields={
                        "include": ["id", "properties.datetime", "properties.eo:cloud_cover"],
                        "exclude": [],
                    },
                )
            )
        except ImageryError as exc:
            raise _naming(
                exc,
                f"Catalog search for acquisitions {start}..{end} over bbox "
                f"({box[0]:.0f}, {box[1]:.0f}, {box[2]:.0f}, {box[3]:.0f}) {bounds.crs}",
            ) from exc
        except (KeyError, TypeError, AttributeError) as exc:
            raise ImageryError(
                f"the Sentinel Hub Catalog at {safe_url(url)} answered in an unexpected format "
                f"({type(exc).__name__}: {exc}); check sh_base_url points at a Sentinel Hub "
                "deployment with Catalog API 1.0.0"
            ) from exc
        refs = self._refs_by_day(features, catalog.service_url, url)
        self.cache.put_json(key, [_ref_to_json(r) for r in refs])
        log.info(
            "Sentinel Hub catalogue: %d acquisition days (%d tiles) from %s to %s, cloud <= %g%%",
            len(refs),
            len(features),
            start,
            end,
            self.max_cloud_cover,
        )
        return refs

    def _refs_by_day(
        self, features: list[dict[str, Any]], service_url: str, url: str
    ) -> list[SceneRef]:
        days: dict[dt.date, list[tuple[str, float | None]]] = {}
        for feature in features:
            try:
                when = dt.datetime.fromisoformat(str(feature["properties"]["datetime"]))
                cloud = feature["properties"].get("eo:cloud_cover")
                item = (str(feature["id"]), None if cloud is None else float(cloud))
            except (KeyError, TypeError, ValueError) as exc:
                raise ImageryError(
                    f"the Sentinel Hub Catalog at {safe_url(url)} returned a feature without a "
                    f"readable id/datetime ({exc}); check sh_base_url"
                ) from exc
            if when.tzinfo is not None:
                when = when.astimezone(dt.UTC)
            if cloud is not None and float(cloud) > self.max_cloud_cover:
                continue  # a catalogue that ignores the filter must not widen the selection
            days.setdefault(when.date(), []).append(item)
        refs = []
        for day in sorted(days):
            tiles = sorted(days[day])
            clouds = [c for _, c in tiles if c is not None]
            refs.append(
                SceneRef(
                    scene_id=f"S2L2A_{day:%Y%m%d}",
                    date=day,
                    href=f"{service_url}/collections/{_COLLECTION.catalog_id}/items/{tiles[0][0]}",
                    cloud_cover=max(clouds) if clouds else None,
                )
            )
        return refs

    # -- read --------------------------------------------------------------------------
    def _process_request(self, day: dt.date, grid: Grid, epsg: int) -> DownloadRequest:
        start = dt.datetime.combine(day, dt.time())
        input_data = SentinelHubRequest.input_data(
            _COLLECTION,
            time_interval=(start, start + dt.timedelta(days=1)),
            maxcc=self.max_cloud_cover / 100.0,
            mosaicking_order=self.mosaicking_order,
            upsampling=ResamplingType.NEAREST,
            downsampling=ResamplingType.NEAREST,
        )
        # The collection pins services.sentinel-hub.com; use the configured deployment instead.
        input_data = InputDataDict(dict(input_data), service_url=None)
        resolution = grid.transform.a
        request = SentinelHubRequest(
            evalscript=EVALSCRIPT,
            input_data=[input_data],
            responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
            bbox=BBox(grid.bbox, crs=CRS(epsg)),
            resolution=(resolution, resolution),
            config=self._config,
        )
        return request.download_list[0]

    def read(self, ref: SceneRef, bounds: Bounds, resolution: float = 10.0) -> SceneData:
        """Read the acquisition day of ``ref`` over ``bounds`` with one Process API request.

        The grid has its origin at (``bounds.left``, ``bounds.top``) in ``bounds.crs`` and
        ``ceil(extent / resolution)`` pixels per axis, at most :data:`MAX_REQUEST_PX`.

        Returns:
            SceneData: ``dn`` (10, H, W) uint16 DN in BANDS order, ``scl`` (H, W) uint8; both
            0 where Sentinel Hub's ``dataMask`` is 0.

        Raises:
            ImageryError: the area exceeds one request, the response is not a readable
                12-band GeoTIFF (the message names the scene), or the request was refused.
            SourceUnavailableError: the Process API failed after the last retry.
        """
        grid = Grid.of(bounds, resolution)
        if grid.width > MAX_REQUEST_PX or grid.height > MAX_REQUEST_PX:
            raise ImageryError(
                f"scene {ref.scene_id}: {grid.width} x {grid.height} px at {resolution:g} m "
                f"exceeds one Process API request ({MAX_REQUEST_PX} px per side); split the area "
                "with plan_batches / read_batch"
            )
        request = self._process_request(ref.date, grid, _epsg(bounds.crs))
        url = str(request.url)
        key = request_key(
            {"source": self.name, "api": "process", "url": url, "payload": request.post_values}
        )
        content = self.cache.get(key)
        if content is not None:
            try:
                return self._decode(content, ref, bounds, grid, url)
            except ImageryError:
                self.cache.discard(key, reason="not a readable Process API GeoTIFF")
        try:
            (response,) = self._client.download([request], max_threads=1, decode_data=False)
        except ImageryError as exc:
            left, bottom, right, top = grid.bbox
            raise _naming(
                exc,
                f"Process API request for scene {ref.scene_id} ({ref.date}) over bbox "
                f"({left:.0f}, {bottom:.0f}, {right:.0f}, {top:.0f}) {bounds.crs}, "
                f"{grid.width} x {grid.height} px at {resolution:g} m",
            ) from exc
        scene = self._decode(response.content, ref, bounds, grid, url)
        self.cache.put(key, response.content)
        log.debug(
            "read %s over %d x %d px from Sentinel Hub", ref.scene_id, grid.width, grid.height
        )
        return scene

    def _decode(
        self, content: bytes, ref: SceneRef, bounds: Bounds, grid: Grid, url: str
    ) -> SceneData:
        where = f"scene {ref.scene_id} ({ref.date}): the Process API response from {safe_url(url)}"
        try:
            with MemoryFile(content) as memfile, memfile.open() as src:
                if src.count != len(_OUTPUT_BANDS) or src.dtypes[0] != "uint16":
                    raise ImageryError(
                        f"{where} has {src.count} {src.dtypes[0]} bands; expected "
                        f"{len(_OUTPUT_BANDS)} uint16 ({', '.join(_OUTPUT_BANDS)}): check the "
                        "evalscript (geo.sources.sentinelhub.EVALSCRIPT) was sent unchanged"
                    )
                if (src.height, src.width) != (grid.height, grid.width):
                    raise ImageryError(
                        f"{where} is {src.width} x {src.height} px; expected {grid.width} x "
                        f"{grid.height}: check the deployment honours resx/resy"
                    )
                data = src.read()
        except (RasterioError, ValueError) as exc:
            raise ImageryError(
                f"{where} is not a readable GeoTIFF ({exc}); usually a transient service fault: "
                "re-run (bad responses are never cached), and report the scene to Sentinel Hub "
                "support if it persists"
            ) from exc
        valid = data[-1] > 0
        dn = np.where(valid, data[: len(BANDS)], 0).astype(np.uint16)
        scl = np.where(valid, data[len(BANDS)], 0).astype(np.uint8)
        return SceneData(
            scene_id=ref.scene_id,
            date=ref.date,
            dn=dn,
            scl=scl,
            transform=grid.transform,
            crs=bounds.crs,
            meta={"source": self.name, "href": ref.href},
        )

    def read_batch(
        self, ref: SceneRef, parcel_bounds: Sequence[Bounds], resolution: float = 10.0
    ) -> list[SceneData]:
        """Read ``ref`` for many parcels with one Process API request per batch box.

        Boxes come from :func:`plan_batches`; each parcel's result is cut from its box on the
        ``resolution`` grid (pixel edges at multiples of ``resolution``), covering its bounds.

        Returns:
            One SceneData per entry of ``parcel_bounds``, in the same order.

        Raises:
            ParcelGeometryError, ImageryError, SourceUnavailableError: as
            :func:`plan_batches` and :meth:`read`.
        """
        out: list[SceneData | None] = [None] * len(parcel_bounds)
        plan = _plan(parcel_bounds, MAX_REQUEST_PX, resolution, 200)
        log.info(
            "reading %s for %d parcels in %d requests", ref.scene_id, len(parcel_bounds), len(plan)
        )
        for k, (box, members) in enumerate(plan, start=1):
            try:
                scene = self.read(ref, box, resolution)
            except ImageryError as exc:
                raise _naming(exc, f"batch {k} of {len(plan)} ({len(members)} parcels)") from exc
            for i in members:
                out[i] = _crop(scene, parcel_bounds[i], resolution)
        return [s for s in out if s is not None]


def _ref_to_json(ref: SceneRef) -> dict[str, Any]:
    return {
        "scene_id": ref.scene_id,
        "date": ref.date.isoformat(),
        "href": ref.href,
        "cloud_cover": ref.cloud_cover,
    }


def _ref_from_json(value: dict[str, Any]) -> SceneRef:
    cloud = value.get("cloud_cover")
    return SceneRef(
        scene_id=str(value["scene_id"]),
        date=dt.date.fromisoformat(str(value["date"])),
        href=str(value["href"]),
        cloud_cover=None if cloud is None else float(cloud),
    )
