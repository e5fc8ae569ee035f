"""The review app's browser pages: login, portfolio, farmer page and its map images.

Pages authenticate with the ``cropcredit_token`` cookie set by ``POST /login`` (or a Bearer
header); without a valid one they answer 401 with the login form and the reason. The farmer
page carries its session's CSRF token (a hidden form field, and in the page data for the
script's ``X-CSRF-Token`` header); its form posts to ``POST /farmers/{id}/override``, which
works without script. Everything from a lender's files is escaped by Jinja's autoescape.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from flows.report import CROP_COLORS, HEALTH_COLORS
from flows.review.api import farmer_summary, record_override
from flows.review.auth import COOKIE, AuthError, Principal, Role, authenticate
from flows.review.data import Filters, SeasonOutputs
from flows.review.guard import CSRF_FIELD, CsrfTokens, check_csrf
from flows.review.imagery import ImageryLayers
from geo.errors import ImageryError
from geo.types import CROPS

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
#: Browser session length of the login cookie, seconds.
COOKIE_MAX_AGE = 12 * 3600

router = APIRouter(include_in_schema=False)


def _eur(value: float | None) -> str:
    """EUR amounts with thousands separators, a dash when unknown."""
    if value is None or value != value:
        return "\u2013"
    return f"{value:,.0f}"


def _signed(value: float | None) -> str:
    """A change in EUR with its sign, a dash when there is no previous limit."""
    if value is None or value != value:
        return "\u2013"
    return f"{value:+,.0f}" if value else "0"


TEMPLATES.env.filters["eur"] = _eur
TEMPLATES.env.filters["signed"] = _signed


class LoginRequired(Exception):
    """A page was asked for without an acceptable token; rendered as the login form."""

    def __init__(self, status: int, message: str, next_url: str) -> None:
        super().__init__(message)
        self.status, self.message, self.next_url = status, message, next_url


def _require(need: Role) -> Any:
    def dependency(request: Request) -> Principal:
        try:
            return authenticate(
                request.app.state.tokens,
                request.headers.get("authorization"),
                request.cookies.get(COOKIE),
                need,
            )
        except AuthError as exc:
            raise LoginRequired(exc.status, exc.message, _next_of(request)) from None

    return dependency


Viewer = Annotated[Principal, Depends(_require("viewer"))]
Officer = Annotated[Principal, Depends(_require("officer"))]


def _next_of(request: Request) -> str:
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


def _safe_next(value: str | None) -> str:
    """Only local paths: never redirect a login to another site."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def login_page(request: Request, status: int, message: str | None, next_url: str) -> Response:
    """The login form, with ``message`` saying why it is shown."""
    return TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {"message": message, "next": _safe_next(next_url), "user": None},
        status_code=status,
    )


def _common(request: Request, who: Principal) -> dict[str, Any]:
    data: SeasonOutputs = request.app.state.data
    return {
        "user": who,
        "season": data.season,
        "run_id": data.run_id,
        "stage": data.latest_stage().value,
        "cap_eur": data.cap_eur,
        "crop_colors": CROP_COLORS,
        "health_colors": HEALTH_COLORS,
    }


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    """The login form (a token pasted by the officer)."""
    return login_page(request, 200, None, next)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token of the form (or ``?token=``) and set the session cookie."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    token = (fields.get("token") or [request.query_params.get("token", "")])[-1].strip()
    next_url = _safe_next((fields.get("next") or [request.query_params.get("next", "/")])[-1])
    who = request.app.state.tokens.lookup(token)
    if who is None:
        log.warning("review login refused from %s", request.client.host if request.client else "?")
        message = "token not recognised: check it and try again" if token else "paste a token"
        return login_page(request, 401, message, next_url)
    log.info("review login: %s (%s)", who.name, who.role)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.api_route("/logout", methods=["GET", "POST"])
def logout() -> Response:
    """Forget the session cookie."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def portfolio(
    request: Request,
    who: Viewer,
    region: str | None = None,
    crop: str | None = None,
    flagged: bool = False,
    review: bool = False,
) -> Response:
    """Farmers with current limit, last change, PD band, flags and review status; filters."""
    data: SeasonOutputs = request.app.state.data
    filters = Filters(region=region or None, crop=crop or None, flagged=flagged, review=review)
    table = data.portfolio()
    shown = filters.apply(table)
    context = {
        **_common(request, who),
        "rows": shown.to_dict("records"),
        "total": len(table),
        "filters": filters,
        "regions": sorted(set(table["region"]) - {""}),
        "crops": [
            c
            for c in CROPS
            if c
            in {x for r in table["declared_crops"] for x in r}
            | {x for r in table["detected_crops"] for x in r}
        ],
        "sum_limit": float(shown["limit_eur"].sum()) if len(shown) else 0.0,
        "n_review": int(shown["needs_review"].sum()) if len(shown) else 0,
        "n_flagged": int(shown["flags"].map(bool).sum()) if len(shown) else 0,
        "rejects": data.rejects(),
    }
    return TEMPLATES.TemplateResponse(request, "portfolio.html", context)


@router.get("/farmers/{farmer_id}", response_class=HTMLResponse)
def farmer_page(request: Request, farmer_id: str, who: Viewer) -> Response:
    """A farmer's map, parcel panel, limit history and (for officers) the override form."""
    return _farmer_response(request, farmer_id, who)


@router.post("/farmers/{farmer_id}/override")
async def override_form(request: Request, farmer_id: str, who: Officer) -> Response:
    """The farmer page's override form (urlencoded, with the session's CSRF token): records
    the override and goes back to the page, or shows the page with the refusal."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    payload = {k: v[-1] for k, v in fields.items()}
    csrf: CsrfTokens = request.app.state.csrf
    check_csrf(request, csrf, request.cookies.get(COOKIE), payload.pop(CSRF_FIELD, None))
    try:
        record_override(request.app.state.data, farmer_id, payload, who)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        return _farmer_response(request, farmer_id, who, str(exc.detail), exc.status_code)
    return RedirectResponse(f"/farmers/{quote(farmer_id)}#history", status_code=303)


def _farmer_response(
    request: Request,
    farmer_id: str,
    who: Principal,
    override_error: str | None = None,
    status: int = 200,
) -> Response:
    data: SeasonOutputs = request.app.state.data
    layers: ImageryLayers = request.app.state.layers
    farmer = farmer_summary(data, farmer_id)
    curves = data.farmer_curves(farmer_id)
    base: dict[str, Any] = {}
    dekads: list[str] = []
    imagery_note = None
    try:
        for kind in ("true_colour", "ndvi"):
            base[kind] = {"url": f"/layers/{kind}.png", "bounds": layers.base_layer(kind).bounds}
        have = layers.dekads()
        seen = {
            p["dekad"]
            for rows in curves.values()
            for p in rows
            if p.get("ndvi") is not None and (p.get("valid_fraction") or 0) > 0
        }
        dekads = [d.isoformat() for d in have if not seen or d.isoformat() in seen]
        base_as_of = layers.as_of().isoformat()
    except ImageryError as exc:
        imagery_note, base_as_of = str(exc), None
    map_data: dict[str, Any] = {
        "farmer_id": farmer_id,
        "parcels": data.farmer_geojson(farmer_id),
        "curves": curves,
        "base": base,
        "base_as_of": base_as_of,
        "dekads": dekads,
        "ndvi_url": f"/farmers/{quote(farmer_id)}/ndvi.png",
        "override_url": f"/api/farmers/{quote(farmer_id)}/override",
        "form_url": f"/farmers/{quote(farmer_id)}/override",
        "csrf_token": request.app.state.csrf.for_session(request.cookies.get(COOKIE)),
        "crop_colors": CROP_COLORS,
        "health_colors": HEALTH_COLORS,
    }
    context = {
        **_common(request, who),
        "farmer": farmer,
        "history": data.history(farmer_id),
        "parcels": map_data["parcels"]["features"],
        "map_data": map_data,
        "imagery_note": imagery_note,
        "override_error": override_error,
    }
    return TEMPLATES.TemplateResponse(request, "farmer.html", context, status_code=status)


def _png(png: bytes, bounds: list[list[float]]) -> Response:
    import json

    return Response(
        png,
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=3600", "X-Bounds": json.dumps(bounds)},
    )


@router.get("/layers/{kind}.png")
def base_layer(request: Request, kind: str, _who: Viewer) -> Response:
    """The season's latest composite as true colour or NDVI, EPSG:3857 PNG."""
    layers: ImageryLayers = request.app.state.layers
    try:
        layer = layers.base_layer(kind)
    except KeyError:
        raise HTTPException(404, f"no layer {kind!r}; expected true_colour or ndvi") from None
    except ImageryError as exc:
        raise HTTPException(404, str(exc)) from None
    return _png(layer.png, layer.bounds)


@router.get("/farmers/{farmer_id}/ndvi.png")
def farmer_ndvi(
    request: Request,
    farmer_id: str,
    _who: Viewer,
    dekad: Annotated[dt.date, Query(description="dekad start date, YYYY-MM-DD")],
) -> Response:
    """Per-pixel NDVI of one dekad over the farmer's parcels (EPSG:3857 PNG, bounds in the
    ``X-Bounds`` header as [[south, west], [north, east]])."""
    data: SeasonOutputs = request.app.state.data
    layers: ImageryLayers = request.app.state.layers
    farmer_summary(data, farmer_id)
    parcels = data.farmer_parcels(farmer_id)
    parcels = parcels[parcels.geometry.notna()]
    if parcels.empty:
        raise HTTPException(404, f"farmer {farmer_id!r} has no parcel geometry")
    try:
        layer = layers.farmer_ndvi(farmer_id, parcels, dekad)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    except ImageryError as exc:
        raise HTTPException(404, str(exc)) from None
    return _png(layer.png, layer.bounds)
