"""A loopback HTTP server that plays Sentinel Hub and a STAC API over tiny generated scenes.

One threaded ``http.server`` on 127.0.0.1 (an ephemeral port) answers:

- ``POST /oauth/token``: Sentinel Hub's OAuth client-credentials token endpoint;
- ``POST /api/v1/catalog/1.0.0/search``: the Catalog API (cql2-text ``eo:cloud_cover``
  filter, ``next`` paging), bearer token required;
- ``POST /api/v1/process``: the Process API, returning a 12-band UINT16 GeoTIFF (10 bands,
  SCL, dataMask) on the requested grid, read from the same band files the STAC assets serve
  (nearest resampling, harmonised DN like Sentinel Hub; junk values where dataMask is 0) and
  an ``x-processingunits-spent`` header; bearer token required;
- ``/stac``: a STAC API (landing page, conformance, collections, items, ``GET|POST /search``
  with ``query`` on ``eo:cloud_cover``, pages of ``page_size`` items);
- ``/cogs/<scene_id>/<asset>.tif``: the band COGs, with ``HEAD`` and ``Range`` requests;
- ``/pc/sas/<account>/<container>``: a Planetary-Computer-style SAS token endpoint.

It records every request (:attr:`LoopbackServer.requests`, :meth:`LoopbackServer.count`) and
injects faults on a route prefix (:meth:`LoopbackServer.inject`): ``"429"`` (with a
``Retry-After``), ``"500"``, ``"timeout"`` (sleeps past the client's timeout, then answers),
``"malformed"`` (a broken TIFF), ``"empty"`` (no search results), ``"expire_token"``
(revokes every token, so the request gets a 401), ``"drop"`` (announces the full
``Content-Length``, sends half the body, then closes the socket; a ``HEAD`` is hung up on)
and ``"hangup"`` (closes the socket without answering).
:meth:`LoopbackServer.expire_tokens` revokes tokens directly.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import numpy as np
import rasterio
from affine import Affine
from fixtures_imagery import EARTH_SEARCH_ASSETS, BuiltScene, ImagerySet
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from sentinelhub import SHConfig

from geo.sources.base import SCENE_BANDS
from geo.types import BANDS

log = logging.getLogger("tests.loopback")

ROUTE_TOKEN = "/oauth/token"
ROUTE_CATALOG = "/api/v1/catalog/1.0.0/search"
ROUTE_PROCESS = "/api/v1/process"
ROUTE_STAC = "/stac"
ROUTE_STAC_SEARCH = "/stac/search"
ROUTE_COGS = "/cogs/"
ROUTE_SAS = "/pc/sas/"
COLLECTION = "sentinel-2-l2a"
#: Value the Process API puts in every band where dataMask is 0 (a client must zero it).
JUNK = 7

FaultKind = Literal["429", "500", "timeout", "malformed", "empty", "expire_token", "drop", "hangup"]


@dataclass
class Fault:
    """A fault armed on a route prefix for the next ``remaining`` matching requests."""

    route: str
    kind: FaultKind
    remaining: int
    retry_after: str | None = None
    sleep_s: float = 1.5
    method: str | None = None


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it (the token route's body is never kept)."""

    method: str
    path: str
    query: str
    range: str | None
    authorization: str | None
    body: bytes
    at: float


def _stac_conformance() -> list[str]:
    base = "https://api.stacspec.org/v1.0.0"
    return [
        f"{base}/core",
        f"{base}/collections",
        f"{base}/ogcapi-features",
        f"{base}/item-search",
        f"{base}/item-search#query",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    ]


def _parse_time(text: str) -> dt.datetime | None:
    if text in ("", ".."):
        return None
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class LoopbackServer:
    """The server; use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        imagery: ImagerySet,
        *,
        client_id: str = "loopback-client",
        client_secret: str | None = None,
        token_ttl_s: float = 3600.0,
        page_size: int = 2,
    ) -> None:
        self.imagery = imagery
        self.client_id = client_id
        self.client_secret = client_secret or f"sh-secret-{secrets.token_hex(12)}"
        self.token_ttl_s = token_ttl_s
        self.page_size = page_size
        self.sas_signature = f"sas-sig-{secrets.token_hex(8)}"
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self.tokens_issued: list[str] = []
        self._faults: list[Fault] = []
        self._requests: list[Recorded] = []
        self.units_served = 0.0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        west, south, east, north = imagery.lonlat_bounds
        self.footprint = (west, south, east, north)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> LoopbackServer:
        handler = type("BoundHandler", (_Handler,), {"app": self})
        httpd = _QuietServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def token_url(self) -> str:
        return self.url + ROUTE_TOKEN

    @property
    def stac_url(self) -> str:
        return self.url + ROUTE_STAC

    def sh_config(self, **overrides: Any) -> SHConfig:
        """An ``SHConfig`` pointing at this server, with fast retry settings for tests."""
        config = SHConfig(use_defaults=True)
        config.sh_client_id = self.client_id
        config.sh_client_secret = self.client_secret
        config.sh_base_url = self.url
        config.sh_token_url = self.token_url
        config.max_download_attempts = 3
        config.download_sleep_time = 0.05
        config.download_timeout_seconds = 1.0
        for key, value in overrides.items():
            setattr(config, key, value)
        return config

    # -- faults, tokens, records -------------------------------------------------------
    def inject(
        self,
        route: str,
        kind: FaultKind,
        times: int = 1,
        *,
        retry_after: str | None = None,
        sleep_s: float = 1.5,
        method: str | None = None,
    ) -> None:
        """Arm ``kind`` for the next ``times`` requests whose path starts with ``route``
        (and whose method is ``method``, when given)."""
        with self._lock:
            self._faults.append(Fault(route, kind, times, retry_after, sleep_s, method))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str, method: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if (
                    fault.remaining > 0
                    and path.startswith(fault.route)
                    and fault.method in (None, method)
                ):
                    fault.remaining -= 1
                    return fault
        return None

    def expire_tokens(self) -> None:
        """Revoke every token issued so far (the next API call gets a 401)."""
        with self._lock:
            self._tokens.clear()

    def _issue_token(self) -> str:
        token = f"tok-{secrets.token_hex(16)}"
        with self._lock:
            self._tokens[token] = time.time() + self.token_ttl_s
            self.tokens_issued.append(token)
        return token

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        with self._lock:
            expiry = self._tokens.get(header[len("Bearer ") :])
        return expiry is not None and expiry > time.time()

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self._requests.append(rec)

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def count(self, prefix: str | None = None, method: str | None = None) -> int:
        """Requests seen so far whose path starts with ``prefix`` (all when None)."""
        return sum(
            1
            for r in self.requests
            if (prefix is None or r.path.startswith(prefix))
            and (method is None or r.method == method)
        )

    def reset_counts(self) -> None:
        with self._lock:
            self._requests.clear()
            self.units_served = 0.0

    def bodies(self, prefix: str) -> Iterator[Any]:
        """JSON bodies of the POST requests recorded on ``prefix``."""
        for r in self.requests:
            if r.path.startswith(prefix) and r.body:
                yield json.loads(r.body)

    # -- content -----------------------------------------------------------------------
    def scene_candidates(
        self, start: dt.datetime | None, end: dt.datetime | None, *, end_inclusive: bool
    ) -> list[BuiltScene]:
        out = []
        for scene in self.imagery.scenes:
            when = dt.datetime.combine(scene.date, dt.time(10, 56), tzinfo=dt.UTC)
            if start is not None and when < start:
                continue
            if end is not None and (when > end if end_inclusive else when >= end):
                continue
            out.append(scene)
        return out

    def intersects(self, bbox: list[float] | None) -> bool:
        if not bbox:
            return True
        west, south, east, north = self.footprint
        return bbox[0] < east and bbox[2] > west and bbox[1] < north and bbox[3] > south

    def geometry(self) -> dict[str, Any]:
        w, s, e, n = self.footprint
        return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}

    def stac_item(self, scene: BuiltScene, tile: str) -> dict[str, Any]:
        item_id = scene.item_id(tile)
        base = self.stac_url
        offset = -0.1 if scene.spec.boa_offset else 0.0
        assets: dict[str, Any] = {}
        for band in SCENE_BANDS:
            key = EARTH_SEARCH_ASSETS[band]
            raster: dict[str, Any] = {"nodata": 0, "data_type": "uint16"}
            if band != "SCL":
                raster.update(scale=0.0001, offset=offset)
            assets[key] = {
                "href": f"{self.url}{ROUTE_COGS}{scene.scene_id}/{key}.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "title": band,
                "roles": ["data"],
                "raster:bands": [raster],
            }
        assets["thumbnail"] = {
            "href": f"{self.url}/thumbs/{item_id}.jpg",
            "type": "image/jpeg",
            "roles": ["thumbnail"],
        }
        return {
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": [],
            "id": item_id,
            "collection": COLLECTION,
            "geometry": self.geometry(),
            "bbox": list(self.footprint),
            "properties": {
                "datetime": f"{scene.date.isoformat()}T10:56:{scene.index:02d}Z",
                "eo:cloud_cover": scene.spec.cloud_cover,
                "s2:processing_baseline": scene.spec.baseline,
                "earthsearch:boa_offset_applied": False,
                "proj:epsg": 32631,
                "mgrs:tile": tile,
            },
            "assets": assets,
            "links": [
                {"rel": "self", "href": f"{base}/collections/{COLLECTION}/items/{item_id}"},
                {"rel": "collection", "href": f"{base}/collections/{COLLECTION}"},
                {"rel": "parent", "href": f"{base}/collections/{COLLECTION}"},
                {"rel": "root", "href": base},
            ],
        }

    def process_tiff(self, payload: dict[str, Any]) -> tuple[bytes, float]:
        """The Process API answer to ``payload``: GeoTIFF bytes and processing units."""
        bounds = payload["input"]["bounds"]
        epsg = int(str(bounds["properties"]["crs"]).rstrip("/").split("/")[-1])
        left, bottom, right, top = (float(v) for v in bounds["bbox"])
        output = payload["output"]
        if "width" in output:
            width, height = int(output["width"]), int(output["height"])
        else:
            width = round((right - left) / float(output["resx"]))
            height = round((top - bottom) / float(output["resy"]))
        data_filter = payload["input"]["data"][0].get("dataFilter", {})
        time_range = data_filter.get("timeRange", {})
        start = _parse_time(time_range.get("from", ""))
        end = _parse_time(time_range.get("to", ""))
        max_cc = float(data_filter.get("maxCloudCoverage", 100))
        candidates = [
            s
            for s in self.scene_candidates(start, end, end_inclusive=False)
            if s.spec.cloud_cover <= max_cc
        ]
        candidates.sort(key=lambda s: s.spec.cloud_cover)  # leastCC
        transform = Affine((right - left) / width, 0.0, left, 0.0, -(top - bottom) / height, top)
        crs = CRS.from_epsg(epsg)
        stack = np.zeros((len(SCENE_BANDS) + 1, height, width), dtype=np.uint16)
        if candidates:
            scene = candidates[0]
            for i, band in enumerate(SCENE_BANDS):
                with (
                    rasterio.open(scene.band_files[band]) as src,
                    WarpedVRT(
                        src,
                        crs=crs,
                        transform=transform,
                        width=width,
                        height=height,
                        resampling=Resampling.nearest,
                        nodata=0,
                    ) as vrt,
                ):
                    stack[i] = vrt.read(1)
            mask = stack[0] > 0
            offset = scene.spec.boa_offset
            if offset:
                bands = stack[: len(BANDS)].astype(np.int32)
                stack[: len(BANDS)] = np.where(bands > 0, np.maximum(bands - offset, 1), 0)
            stack[-1] = mask.astype(np.uint16)
            stack[:-1, ~mask] = JUNK
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": stack.shape[0],
            "dtype": "uint16",
            "crs": crs,
            "transform": transform,
        }
        with MemoryFile() as memfile:
            with memfile.open(**profile) as dst:
                dst.write(stack)
            content = memfile.read()
        units = max(width * height / 512**2, 0.01) * stack.shape[0] / 3
        return content, units


class _QuietServer(ThreadingHTTPServer):
    """Clients that time out leave broken pipes behind; do not print their tracebacks."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("loopback: connection from %s ended early", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    app: LoopbackServer
    drop = False  # the "drop" fault: cut the current response's body in half, then hang up

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Paths only: query strings may carry (fake) signatures the tests look for in logs.
        log.debug("loopback: %s %s", self.command, urlsplit(self.path).path)

    # -- plumbing ----------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        *,
        head: bool = False,
    ) -> None:
        try:
            if self.drop and head:  # nothing to cut short: hang up before answering
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.drop and not head:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif not head:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), "application/json", headers)

    def _sh_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        reasons = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
        reasons.update({429: "Too Many Requests", 500: "Internal Server Error"})
        error = {"status": status, "reason": reasons.get(status, ""), "message": message}
        self._json(status, {"error": error}, headers)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        app = self.app
        parts = urlsplit(self.path)
        path = parts.path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        app._record(
            Recorded(
                method=method,
                path=path,
                query=parts.query,
                range=self.headers.get("Range"),
                authorization="Bearer ***" if self.headers.get("Authorization") else None,
                body=b"" if path.startswith(ROUTE_TOKEN) else body,
                at=time.monotonic(),
            )
        )
        fault = app._take_fault(path, method)
        flags: set[str] = set()
        self.drop = fault is not None and fault.kind == "drop"
        if fault is not None:
            if fault.kind == "429":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                self._sh_error(429, "You have exceeded your rate limit", headers)
                return
            if fault.kind == "500":
                self._sh_error(500, "Internal server error (injected)")
                return
            if fault.kind == "hangup":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.kind == "timeout":
                time.sleep(fault.sleep_s)
            elif fault.kind == "expire_token":
                app.expire_tokens()
            elif fault.kind != "drop":
                flags.add(fault.kind)
        try:
            self._route(method, path, parts.query, body, flags)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- routes ------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: str, body: bytes, flags: set[str]) -> None:
        if path == ROUTE_TOKEN and method == "POST":
            self._token(body)
        elif path == ROUTE_CATALOG and method == "POST":
            self._catalog(body, flags)
        elif path == ROUTE_PROCESS and method == "POST":
            self._process(body, flags)
        elif path.startswith(ROUTE_COGS) and method in ("GET", "HEAD"):
            self._cog(path, method, flags)
        elif path.startswith(ROUTE_SAS) and method == "GET":
            self._sas(path)
        elif path == ROUTE_STAC_SEARCH:
            self._stac_search(method, query, body, flags)
        elif path.startswith(ROUTE_STAC) and method == "GET":
            self._stac_get(path)
        else:
            self._sh_error(404, f"no route {method} {path}")

    def _token(self, body: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        app = self.app
        if form.get("grant_type") != "client_credentials":
            self._json(400, {"error": "unsupported_grant_type"})
            return
        if form.get("client_id") != app.client_id or form.get("client_secret") != (
            app.client_secret
        ):
            self._json(401, {"error": "invalid_client", "error_description": "Invalid client"})
            return
        token = app._issue_token()
        self._json(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(app.token_ttl_s),
                "scope": "",
            },
        )

    def _catalog(self, body: bytes, flags: set[str]) -> None:
        app = self.app
        if not app._authorized(self.headers.get("Authorization")):
            self._sh_error(401, "Token expired or invalid")
            return
        payload = json.loads(body)
        if COLLECTION not in payload.get("collections", []):
            self._sh_error(400, f"unknown collections {payload.get('collections')}")
            return
        start_text, _, end_text = str(payload.get("datetime", "/")).partition("/")
        scenes = app.scene_candidates(
            _parse_time(start_text), _parse_time(end_text), end_inclusive=True
        )
        match = re.search(r"eo:cloud_cover\s*(<=|<)\s*([\d.]+)", str(payload.get("filter", "")))
        if match:
            limit_cc = float(match[2])
            scenes = [
                s
                for s in scenes
                if (
                    s.spec.cloud_cover <= limit_cc
                    if match[1] == "<="
                    else s.spec.cloud_cover < limit_cc
                )
            ]
        if not app.intersects(payload.get("bbox")) or "empty" in flags:
            scenes = []
        features = []
        for scene in scenes:
            for tile in scene.spec.tiles:
                item = app.stac_item(scene, tile)
                features.append(
                    {
                        "id": item["id"],
                        "type": "Feature",
                        "geometry": item["geometry"],
                        "properties": {
                            "datetime": item["properties"]["datetime"],
                            "eo:cloud_cover": scene.spec.cloud_cover,
                        },
                    }
                )
        offset = int(payload.get("next") or 0)
        limit = int(payload.get("limit") or 100)
        page = features[offset : offset + limit]
        more = offset + limit < len(features)
        context = {"limit": limit, "returned": len(page)}
        if more:
            context["next"] = offset + limit
        self._json(
            200, {"type": "FeatureCollection", "features": page, "links": [], "context": context}
        )

    def _process(self, body: bytes, flags: set[str]) -> None:
        app = self.app
        if not app._authorized(self.headers.get("Authorization")):
            self._sh_error(401, "Token expired or invalid")
            return
        payload = json.loads(body)
        script = str(payload.get("evalscript", ""))
        missing = [b for b in (*SCENE_BANDS, "dataMask") if b not in script]
        if missing or "UINT16" not in script:
            self._sh_error(400, f"evalscript lacks {missing or 'UINT16'}")
            return
        fmt = payload["output"]["responses"][0]["format"]["type"]
        if fmt != "image/tiff":
            self._sh_error(400, f"unsupported format {fmt}")
            return
        if "malformed" in flags:
            junk = b"II*\x00" + b"\x08\x00\x00\x00this is not a tiff" * 20
            self._send(200, junk, "image/tiff", {"x-processingunits-spent": "0.0625"})
            return
        content, units = app.process_tiff(payload)
        with app._lock:
            app.units_served += units
        self._send(200, content, "image/tiff", {"x-processingunits-spent": f"{units:.6f}"})

    def _cog(self, path: str, method: str, flags: set[str]) -> None:
        app = self.app
        match = re.fullmatch(r"/cogs/([^/]+)/([^/]+)\.tif", path)
        scene = next((s for s in app.imagery.scenes if match and s.scene_id == match[1]), None)
        keys = {v: k for k, v in EARTH_SEARCH_ASSETS.items()}
        if match is None or scene is None or match[2] not in keys:
            self._sh_error(404, f"no such file {path}")
            return
        data = scene.band_files[keys[match[2]]].read_bytes()
        if "malformed" in flags:
            data = (b"NOT A TIFF, JUST BYTES " * (len(data) // 23 + 1))[: len(data)]
        headers = {"Accept-Ranges": "bytes"}
        header = self.headers.get("Range")
        if header and method == "GET":
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", header.strip())
            if m is None:
                self._sh_error(416, f"unsupported range {header}")
                return
            first = int(m[1])
            last = min(int(m[2]) if m[2] else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            self._send(206, data[first : last + 1], "image/tiff", headers)
            return
        self._send(200, data, "image/tiff", headers, head=method == "HEAD")

    def _sas(self, path: str) -> None:
        parts = path[len(ROUTE_SAS) :].split("/")
        if len(parts) != 2:
            self._sh_error(404, "expected /pc/sas/<account>/<container>")
            return
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        token = f"st=2026-01-01&se={expiry:%Y-%m-%dT%H:%M:%SZ}&sp=rl&sig={self.app.sas_signature}"
        self._json(200, {"msft:expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": token})

    def _stac_get(self, path: str) -> None:
        app = self.app
        base = app.stac_url
        rest = path[len(ROUTE_STAC) :].rstrip("/")
        if rest == "":
            self._json(
                200,
                {
                    "type": "Catalog",
                    "id": "loopback-stac",
                    "stac_version": "1.0.0",
                    "description": "Loopback STAC API over generated Sentinel-2 scenes",
                    "conformsTo": _stac_conformance(),
                    "links": [
                        {"rel": "self", "href": base, "type": "application/json"},
                        {"rel": "root", "href": base, "type": "application/json"},
                        {"rel": "conformance", "href": f"{base}/conformance"},
                        {"rel": "data", "href": f"{base}/collections"},
                        {
                            "rel": "search",
                            "href": f"{base}/search",
                            "method": "GET",
                            "type": "application/geo+json",
                        },
                        {
                            "rel": "search",
                            "href": f"{base}/search",
                            "method": "POST",
                            "type": "application/geo+json",
                        },
                    ],
                },
            )
        elif rest == "/conformance":
            self._json(200, {"conformsTo": _stac_conformance()})
        elif rest in ("/collections", f"/collections/{COLLECTION}"):
            collection = {
                "type": "Collection",
                "id": COLLECTION,
                "stac_version": "1.0.0",
                "description": "Generated Sentinel-2 L2A",
                "license": "proprietary",
                "extent": {
                    "spatial": {"bbox": [list(app.footprint)]},
                    "temporal": {"interval": [["2026-01-01T00:00:00Z", None]]},
                },
                "links": [
                    {"rel": "self", "href": f"{base}/collections/{COLLECTION}"},
                    {"rel": "root", "href": base},
                ],
            }
            if rest == "/collections":
                self._json(200, {"collections": [collection], "links": []})
            else:
                self._json(200, collection)
        elif rest.startswith(f"/collections/{COLLECTION}/items/"):
            item_id = rest.rsplit("/", 1)[-1]
            for scene in app.imagery.scenes:
                for tile in scene.spec.tiles:
                    if scene.item_id(tile) == item_id:
                        self._json(200, app.stac_item(scene, tile))
                        return
            self._sh_error(404, f"no item {item_id}")
        else:
            self._sh_error(404, f"no route {path}")

    def _stac_search(self, method: str, query: str, body: bytes, flags: set[str]) -> None:
        app = self.app
        if method == "POST":
            params: dict[str, Any] = json.loads(body or b"{}")
        else:
            raw = {k: v[0] for k, v in parse_qs(query).items()}
            params = dict(raw)
            if "bbox" in raw:
                params["bbox"] = [float(v) for v in raw["bbox"].split(",")]
            if "collections" in raw:
                params["collections"] = raw["collections"].split(",")
            if "query" in raw:
                params["query"] = json.loads(raw["query"])
        collections = params.get("collections") or [COLLECTION]
        start_text, _, end_text = str(params.get("datetime") or "../..").partition("/")
        scenes = (
            app.scene_candidates(_parse_time(start_text), _parse_time(end_text), end_inclusive=True)
            if COLLECTION in collections
            else []
        )
        cc_query = (params.get("query") or {}).get("eo:cloud_cover", {})
        ops = {"lte": float.__le__, "lt": float.__lt__, "gte": float.__ge__, "gt": float.__gt__}
        for op, limit in cc_query.items():
            scenes = [s for s in scenes if ops[op](float(s.spec.cloud_cover), float(limit))]
        if not app.intersects(params.get("bbox")) or "empty" in flags:
            scenes = []
        items = [app.stac_item(s, t) for s in scenes for t in s.spec.tiles]
        offset = int(params.get("token") or 0)
        size = min(int(params.get("limit") or app.page_size), app.page_size)
        page = items[offset : offset + size]
        links: list[dict[str, Any]] = [{"rel": "root", "href": app.stac_url}]
        if offset + size < len(items):
            if method == "POST":
                links.append(
                    {
                        "rel": "next",
                        "href": f"{app.stac_url}/search",
                        "method": "POST",
                        "body": {**params, "token": str(offset + size)},
                        "merge": False,
                    }
                )
            else:
                links.append(
                    {
                        "rel": "next",
                        "href": f"{app.stac_url}/search?{query}&token={offset + size}",
                        "method": "GET",
                    }
                )
        self._json(
            200,
            {
                "type": "FeatureCollection",
                "features": page,
                "links": links,
                "numberReturned": len(page),
                "numberMatched": len(items),
            },
        )


def lonlat_of(bounds_utm: tuple[float, float, float, float]) -> tuple[float, ...]:
    """(west, south, east, north) of UTM 31N bounds, for assertions on search bboxes."""
    return tuple(transform_bounds("EPSG:32631", "EPSG:4326", *bounds_utm, densify_pts=21))
