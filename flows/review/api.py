"""The review app's JSON API, exports and officers' overrides (``/api/...``).

Every route needs a token (``Authorization: Bearer <token>`` or the login cookie): role
``viewer`` to read, ``officer`` to override. An override is JSON only (415 otherwise), needs
the session's CSRF token when it comes with the login cookie (:mod:`flows.review.guard`), and
is checked completely (:func:`check_override`, against :class:`OverrideIn`) before the ledger
is touched, so a refused one changes nothing.
"""

from __future__ import annotations

import io
import json
import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from flows.review.auth import COOKIE, AuthError, Principal, Role, authenticate
from flows.review.data import Filters, SeasonOutputs, records
from flows.review.guard import CSRF_HEADER, check_csrf, require_json

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["api"])


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
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            raise HTTPException(exc.status, exc.message, headers=headers) from None

    return dependency


Viewer = Annotated[Principal, Depends(_require("viewer"))]
Officer = Annotated[Principal, Depends(_require("officer"))]


def outputs(request: Request) -> SeasonOutputs:
    """The app's season outputs."""
    data: SeasonOutputs = request.app.state.data
    return data


Data = Annotated[SeasonOutputs, Depends(outputs)]


class FarmerSummary(BaseModel):
    """One farmer in the portfolio: the limit in force and the last stage's decision."""

    farmer_id: str
    region: str
    parcels: int
    declared_crops: list[str]
    detected_crops: list[str]
    stage: str = Field(description="the latest stage decided")
    action: str = Field(description="set/raise/cut/keep/hold/zero at that stage")
    limit_eur: float = Field(description="the limit in force (an override if one came later)")
    source: str = Field(description='"decision" or "override"')
    previous_limit_eur: float | None
    change_eur: float | None = Field(description="the last stage's change, EUR")
    drawn_eur: float
    pd: float
    pd_band: str
    flags: list[str]
    needs_review: bool = Field(description="held for review and not yet overridden")
    officer: str | None = Field(description="who set the override in force, if any")
    set_by: str = Field(
        description='"policy", or the name of the officer whose override is in force'
    )
    override_reason: str | None = Field(description="the reason of the override in force, if any")
    overridden_at: str | None = Field(description="when the override in force was recorded, UTC")


class FarmerDetail(BaseModel):
    """A farmer's summary, parcels (GeoJSON, EPSG:4326), curves and limit history."""

    farmer: FarmerSummary
    parcels: dict[str, Any]
    curves: dict[str, list[dict[str, Any]]]
    history: list[dict[str, Any]]


#: The longest override reason accepted, characters.
REASON_MAX_CHARS = 2_000


class OverrideIn(BaseModel):
    """An officer's limit for a farmer, with the reason (both mandatory, nothing else).

    :func:`check_override` enforces this model on every request (JSON or the page's form):
    its fields (``extra="forbid"``), the reason's length and the limit's range.
    """

    model_config = ConfigDict(extra="forbid")

    limit_eur: float = Field(ge=0, description="the new limit, EUR, 0 .. the policy cap")
    reason: str = Field(
        min_length=1,
        max_length=REASON_MAX_CHARS,
        description="why the limit changes; recorded verbatim",
    )


class OverrideOut(BaseModel):
    """The recorded override and the limit now in force."""

    id: int
    farmer_id: str
    limit_eur: float
    reason: str
    officer: str
    recorded_at: str
    current_limit_eur: float
    warning: str | None = None


def farmer_summary(data: SeasonOutputs, farmer_id: str) -> dict[str, Any]:
    """The portfolio row of one farmer.

    Raises:
        HTTPException: 404 if the ledger knows no such farmer this season.
    """
    port = data.portfolio()
    row = port[port["farmer_id"] == farmer_id]
    if row.empty:
        raise HTTPException(
            404, f"farmer {farmer_id!r} has no decision in season {data.season}; check the id"
        )
    return records(row)[0]


@router.get("/farmers", response_model=list[FarmerSummary])
def list_farmers(
    data: Data,
    _who: Viewer,
    region: str | None = None,
    crop: str | None = None,
    flagged: bool = False,
    review: bool = False,
) -> list[dict[str, Any]]:
    """Farmers with their current limit, last change, PD band, flags and review status."""
    filters = Filters(region=region or None, crop=crop or None, flagged=flagged, review=review)
    return records(filters.apply(data.portfolio()))


@router.get("/farmers/{farmer_id}", response_model=FarmerDetail)
def get_farmer(farmer_id: str, data: Data, _who: Viewer) -> dict[str, Any]:
    """One farmer: summary, parcels with their assessment, curves and limit history."""
    return {
        "farmer": farmer_summary(data, farmer_id),
        "parcels": data.farmer_geojson(farmer_id),
        "curves": data.farmer_curves(farmer_id),
        "history": data.history(farmer_id),
    }


async def json_payload(request: Request) -> dict[str, Any]:
    """The JSON object of a request declared ``application/json``.

    Raises:
        HTTPException: 415 for another content type, 422 for a body that is not a JSON object.
    """
    require_json(request)
    try:
        payload = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPException(
            422, 'the body is not JSON; send {"limit_eur": 12000, "reason": "..."}'
        ) from None
    if not isinstance(payload, dict):
        raise HTTPException(422, 'expected a JSON object {"limit_eur": ..., "reason": ...}')
    return payload


def check_override(payload: dict[str, Any], cap_eur: float) -> tuple[float, str]:
    """The limit (EUR) and reason of an override request, or a 422 saying what is wrong.

    The fields are :class:`OverrideIn`'s and no others; a form's limit may carry thousands
    separators (``"40,000"``).
    """
    unknown = sorted(set(payload) - set(OverrideIn.model_fields))
    if unknown:
        raise HTTPException(
            422,
            f"unknown field(s) {', '.join(repr(k[:40]) for k in unknown[:5])}: an override "
            f"takes only {' and '.join(OverrideIn.model_fields)} (the officer is the token's)",
        )
    reason = payload.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise HTTPException(422, "a reason is required: say why the limit changes")
    if len(reason.strip()) > REASON_MAX_CHARS:
        raise HTTPException(
            422,
            f"the reason has {len(reason.strip()):,} characters, more than the "
            f"{REASON_MAX_CHARS:,} accepted; give the gist and keep long notes in the "
            "lender's file",
        )
    raw = payload.get("limit_eur")
    try:
        limit = float(str(raw).replace(",", "").strip()) if raw not in (None, "") else None
    except ValueError:
        limit = None
    if limit is None or isinstance(raw, bool) or not math.isfinite(limit):
        shown = repr(raw) if len(repr(raw)) <= 40 else repr(raw)[:37] + "..."
        raise HTTPException(422, f"limit_eur {shown} is not a number of EUR; give e.g. 12000")
    if limit < 0:
        raise HTTPException(422, f"a negative limit (EUR {limit:,.0f}) is refused; give 0 or more")
    if limit > cap_eur:
        raise HTTPException(
            422,
            f"limit EUR {limit:,.0f} is above the policy cap of EUR {cap_eur:,.0f} (cap_eur); "
            "an override cannot exceed the cap",
        )
    checked = OverrideIn(limit_eur=limit, reason=reason.strip())
    return checked.limit_eur, checked.reason


def record_override(
    data: SeasonOutputs, farmer_id: str, payload: dict[str, Any], who: Principal
) -> tuple[int, float, dict[str, Any]]:
    """Check an override request and append it to the ledger.

    Returns:
        the override's id, its limit (EUR) and the farmer's summary before it.

    Raises:
        HTTPException: 404 for an unknown farmer, 422 for a refused override.
    """
    farmer = farmer_summary(data, farmer_id)
    limit, reason = check_override(payload, data.cap_eur)
    try:
        new_id = data.ledger.record_override(data.season, farmer_id, limit, reason, who.name)
    except ValueError as exc:  # the ledger's own checks (its cap may be lower)
        raise HTTPException(422, str(exc)) from None
    log.info("override %d: %s set to EUR %.0f by %s", new_id, farmer_id, limit, who.name)
    return new_id, limit, farmer


@router.post(
    "/farmers/{farmer_id}/override",
    response_model=OverrideOut,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": OverrideIn.model_json_schema()}},
        }
    },
    responses={
        401: {"description": "no or unknown token"},
        403: {
            "description": "the token's role is not 'officer', the request came from another "
            f"origin, or a cookie session sent no {CSRF_HEADER} header"
        },
        404: {"description": "unknown farmer"},
        413: {"description": "a body larger than 64 KiB"},
        415: {"description": "a body that is not application/json"},
        422: {
            "description": "missing or too long reason, unknown field, negative limit or "
            "limit above the cap"
        },
    },
)
async def override(farmer_id: str, request: Request, data: Data, who: Officer) -> Any:
    """Record an officer's limit for a farmer (appended to the ledger with who and when).

    Takes JSON ``{"limit_eur": 12000, "reason": "..."}`` (``Content-Type: application/json``).
    With the login cookie (the farmer page), the header ``X-CSRF-Token`` must carry the
    page's token; with ``Authorization: Bearer`` none is needed.
    """
    check_csrf(
        request,
        request.app.state.csrf,
        request.cookies.get(COOKIE),
        request.headers.get(CSRF_HEADER),
    )
    payload = await json_payload(request)
    new_id, limit, farmer = record_override(data, farmer_id, payload, who)
    rec = data.ledger.overrides(data.season, farmer_id).set_index("id").loc[new_id]
    warning = None
    if limit < farmer["drawn_eur"]:
        warning = (
            f"the limit is below what the farmer has drawn (EUR {farmer['drawn_eur']:,.0f}): "
            "no further drawing until repaid"
        )
    return OverrideOut(
        id=new_id,
        farmer_id=farmer_id,
        limit_eur=limit,
        reason=str(rec["reason"]),
        officer=who.name,
        recorded_at=str(rec["recorded_at"]),
        current_limit_eur=float(farmer_summary(data, farmer_id)["limit_eur"]),
        warning=warning,
    )


@router.get("/farmers/{farmer_id}/overrides")
def list_overrides(farmer_id: str, data: Data, _who: Viewer) -> list[dict[str, Any]]:
    """The officers' overrides of one farmer this season, oldest first."""
    farmer_summary(data, farmer_id)
    return records(data.ledger.overrides(data.season, farmer_id))


@router.get(
    "/limits.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "current limits"}},
)
def limits_csv(data: Data, _who: Viewer) -> Response:
    """Current limits per farmer for the core-banking system (CSV)."""
    text = data.limits_export().to_csv(index=False)
    return Response(
        text,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="limits-{data.season}.csv"'},
    )


@router.get(
    "/limits.parquet",
    response_class=Response,
    responses={200: {"content": {"application/vnd.apache.parquet": {}}}},
)
def limits_parquet(data: Data, _who: Viewer) -> Response:
    """Current limits per farmer for the core-banking system (Parquet)."""
    buf = io.BytesIO()
    data.limits_export().to_parquet(buf, index=False)
    return Response(
        buf.getvalue(),
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="limits-{data.season}.parquet"'},
    )
