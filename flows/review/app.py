"""The loan officers' review app: a FastAPI factory over a season run's outputs, and ``serve``.

Routes (pages need a viewer token, overrides an officer token; see :mod:`flows.review.auth`):

* ``GET /login``, ``POST /login`` (form field ``token``), ``GET|POST /logout``;
* ``GET /`` portfolio (query: ``region``, ``crop``, ``flagged=1``, ``review=1``);
* ``GET /farmers/{id}`` map, parcel panel, limit history, override form
  (``POST /farmers/{id}/override``: the form without script);
* ``GET /farmers/{id}/ndvi.png?dekad=YYYY-MM-DD``, ``GET /layers/{true_colour|ndvi}.png``;
* ``GET /api/farmers``, ``GET /api/farmers/{id}``, ``GET /api/farmers/{id}/overrides``,
  ``POST /api/farmers/{id}/override``, ``GET /api/limits.csv``, ``GET /api/limits.parquet``;
* ``GET /healthz``; OpenAPI docs at ``/docs``.

The app's own pages load nothing from the network: Leaflet is served from
``flows/static/leaflet`` and a Content-Security-Policy of ``'self'`` enforces it (``/docs``
is FastAPI's default and loads Swagger UI from a CDN).

Requests that change something must come from the app's own origin, carry the session's CSRF
token when they use the login cookie, send JSON to the API and stay under 64 KiB
(:mod:`flows.review.guard`). ``Referrer-Policy: same-origin`` keeps the app's URLs from other
sites while letting the browser send the ``Origin`` of the app's own forms (under
``no-referrer`` a form's ``Origin`` is ``null``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from flows.report import STATIC as REPORT_STATIC
from flows.review import api, pages
from flows.review.auth import TokenStore, load_tokens
from flows.review.data import SeasonOutputs
from flows.review.guard import BodyLimit, CsrfTokens, cross_origin, own_origin
from flows.review.imagery import ImageryLayers

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)
_DOCS = ("/docs", "/redoc", "/openapi.json")
#: Further origins the app accepts state-changing requests from (comma-separated), e.g. the
#: TLS proxy in front of it: ``https://review.bank.example``.
ENV_ORIGINS = "CROPCREDIT_ORIGINS"


def create_app(
    out_dir: Path,
    *,
    ledger_url: str | None = None,
    tokens: dict[str, str] | None = None,
    season: int = 2026,
    origins: Sequence[str] | None = None,
) -> FastAPI:
    """The review app over the season run in ``out_dir``.

    Args:
        out_dir: a season run's output folder (``run.json``, ``stages/``, ``cache/``, ledger).
        ledger_url: the ledger's SQLAlchemy URL; default the run's (``out_dir/ledger.sqlite``).
        tokens: ``token -> "name:role"``; default read from ``CROPCREDIT_TOKENS`` or
            ``CROPCREDIT_TOKENS_FILE``.
        season: the season year shown.
        origins: origins besides the request's own that may send state-changing requests
            (a proxy in front of the app); default from ``CROPCREDIT_ORIGINS``.

    Raises:
        TableError: no tokens configured, malformed tokens, or no season run in ``out_dir``.
    """
    store = TokenStore(tokens if tokens is not None else load_tokens())
    data = SeasonOutputs(Path(out_dir), ledger_url=ledger_url, season=season)
    app = FastAPI(
        title="cropcredit review",
        description="Loan officers' review of seasonal credit limits: parcels, reasons, "
        "overrides and exports. Send `Authorization: Bearer <token>`.",
        version="1",
    )
    app.state.tokens = store
    app.state.data = data
    app.state.layers = ImageryLayers(Path(out_dir) / "cache")
    app.state.csrf = CsrfTokens()
    allowed = tuple(
        origins
        if origins is not None
        else (o.strip() for o in os.environ.get(ENV_ORIGINS, "").split(",") if o.strip())
    )
    app.mount("/static/leaflet", StaticFiles(directory=REPORT_STATIC / "leaflet"), name="leaflet")
    app.mount("/static/review", StaticFiles(directory=HERE / "static"), name="review-static")
    app.include_router(api.router)
    app.include_router(pages.router)

    @app.exception_handler(pages.LoginRequired)
    async def _login_required(request: Request, exc: pages.LoginRequired) -> Response:
        return pages.login_page(request, exc.status, exc.message, exc.next_url)

    app.add_middleware(BodyLimit)  # innermost: its 413 gets the headers below too

    @app.middleware("http")
    async def _same_origin(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        why = cross_origin(request.headers, own_origin(request), allowed, request.method)
        if why is not None:
            log.warning("refused %s %s: %s", request.method, request.url.path, why)
            return JSONResponse({"detail": why}, status_code=403)
        return await call_next(request)

    @app.middleware("http")
    async def _headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith(_DOCS):
            response.headers.setdefault("Content-Security-Policy", CSP)
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/favicon.ico", include_in_schema=False)
    def _favicon() -> Response:
        return Response(status_code=204)

    @app.get("/healthz", include_in_schema=False)
    def _healthz() -> dict[str, str]:
        return {"status": "ok", "season": str(data.season), "stage": data.latest_stage().value}

    return app


class RedactTokens(logging.Filter):
    """Mask ``token=...`` in log records (uvicorn's access log prints query strings)."""

    _pattern = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                self._pattern.sub(r"\1***", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1***", record.msg)
        return True


def _season_of(out_dir: Path) -> int:
    try:
        run = json.loads((out_dir / "run.json").read_text(encoding="utf-8"))
        return int(run["params"]["season"])
    except (OSError, ValueError, KeyError, TypeError):
        return 2026


def serve(
    out_dir: Path, host: str = "127.0.0.1", port: int = 8000, ledger_url: str | None = None
) -> None:
    """Serve the review app over ``out_dir`` with uvicorn until interrupted.

    Tokens come from ``CROPCREDIT_TOKENS`` / ``CROPCREDIT_TOKENS_FILE``; the season from the
    run's ``run.json``.

    Raises:
        TableError: no tokens configured or no season run in ``out_dir``.
    """
    import uvicorn

    out_dir = Path(out_dir)
    app = create_app(out_dir, ledger_url=ledger_url, season=_season_of(out_dir))
    for name in ("uvicorn.access", "uvicorn.error", __name__):
        logging.getLogger(name).addFilter(RedactTokens())
    shown = f"[{host}]" if ":" in host else host
    log.info("cropcredit review of %s at http://%s:%d/ (API docs at /docs)", out_dir, shown, port)
    uvicorn.run(app, host=host, port=port, log_level="info")
