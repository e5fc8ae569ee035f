"""What a state-changing request must show before the review app acts on it.

The login cookie is ``SameSite=Strict``, but a page on another *port* of the same host is the
same site, so the cookie alone proves nothing. Every ``POST`` / ``PUT`` / ``PATCH`` / ``DELETE``
therefore passes these guards, in this order:

1. **a bounded body**: at most :data:`MAX_BODY_BYTES`, else 413 (:class:`BodyLimit`, an ASGI
   middleware that counts what it reads, so a chunked body without ``Content-Length`` is
   stopped too);
2. **the app's own origin** (:func:`cross_origin`): ``Sec-Fetch-Site``, where the browser
   sends it, must be ``same-origin`` (or ``none``: typed by the user); ``Origin``, else
   ``Referer``, must equal the origin the request was sent to (scheme, host, port), or one
   of the origins the lender lists (a TLS proxy in front). ``Origin: null`` is refused. A
   request with none of the three headers comes from a non-browser client and goes on;
3. **the session's CSRF token** (:class:`CsrfTokens`), for requests authenticated by the
   login cookie: the header ``X-CSRF-Token`` (the farmer page's script) or the form field
   ``csrf_token`` (the page's form without script) must be the HMAC of that cookie under a
   key drawn when the app starts. A request authenticated by ``Authorization: Bearer`` needs
   none: a browser cannot attach that header across origins without a CORS preflight, and
   the app grants none;
4. **JSON on the API** (:func:`require_json`): ``Content-Type: application/json``, else 415;
   ``text/plain`` is what a cross-origin form or a "simple" fetch can send without a
   preflight.

Refusals say what was expected and how to get it right; they never quote a token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from flows.review.auth import bearer_token

log = logging.getLogger(__name__)

#: Methods that change something; GET / HEAD / OPTIONS never do in this app.
UNSAFE_METHODS: Final[frozenset[str]] = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The largest request body accepted, bytes (an override is a few hundred).
MAX_BODY_BYTES: Final[int] = 64 * 1024
CSRF_HEADER: Final[str] = "x-csrf-token"
CSRF_FIELD: Final[str] = "csrf_token"
_DEFAULT_PORTS: Final[dict[str, int]] = {"http": 80, "https": 443}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def origin_of(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a URL or an ``Origin`` value; None if it has none
    (``null``, a relative path, an unknown scheme without a port)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not scheme or not parts.hostname:
        return None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
        if port is None:
            return None
    return scheme, parts.hostname.lower(), port


def cross_origin(
    headers: Any, own: str, allowed: Iterable[str] = (), method: str = "POST"
) -> str | None:
    """Why a request is refused as coming from another origin, or None if it may go on.

    Args:
        headers: the request's headers (a case-insensitive mapping).
        own: the origin the request was addressed to, e.g. ``http://127.0.0.1:8000``.
        allowed: further origins the lender accepts (e.g. ``https://review.bank.example``).
        method: the request's method; safe methods always go on.
    """
    if method.upper() not in UNSAFE_METHODS:
        return None
    mine = {o for o in (origin_of(u) for u in (own, *allowed)) if o is not None}
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        return (
            f"refused: the browser says this request came from a {site.strip()!r} page, not "
            f"from this app ({own}); record overrides from the app's own pages"
        )
    origin = headers.get("origin")
    if origin is not None:
        if origin_of(origin) not in mine:
            return (
                f"refused: the request comes from {origin.strip()[:100]!r}, not from this app "
                f"({own}); record overrides from the app's own pages (a proxy in front of the "
                "app: list its origin with create_app(origins=...) or CROPCREDIT_ORIGINS)"
            )
        return None
    referer = headers.get("referer")
    if referer is not None and origin_of(referer) not in mine:
        shown = "a page of another origin"
        parsed = origin_of(referer)
        if parsed is not None:
            shown = f"{parsed[0]}://{parsed[1]}:{parsed[2]}"
        return (
            f"refused: the request was sent from {shown}, not from this app ({own}); record "
            "overrides from the app's own pages"
        )
    return None


def own_origin(request: Request) -> str:
    """The origin a request was addressed to (from its ``Host`` and scheme)."""
    url = request.url
    return f"{url.scheme}://{url.netloc}"


class CsrfTokens:
    """CSRF tokens bound to a login session: the HMAC-SHA256 of the session's cookie.

    Args:
        key: the HMAC key; default 32 random bytes drawn now (a restart ends the pages'
            tokens: reloading the page gives a fresh one).
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def __repr__(self) -> str:
        return "CsrfTokens(***)"

    def for_session(self, cookie: str | None) -> str:
        """The token a page of this session must send back; empty without a session."""
        if not cookie:
            return ""
        return hmac.new(self._key, cookie.encode("utf-8"), hashlib.sha256).hexdigest()

    def matches(self, cookie: str | None, given: str | None) -> bool:
        """Whether ``given`` is the token of the session ``cookie`` (constant time)."""
        if not cookie or not given:
            return False
        return hmac.compare_digest(self.for_session(cookie).encode(), given.strip().encode())


def check_csrf(request: Request, tokens: CsrfTokens, cookie: str | None, given: str | None) -> None:
    """Refuse (403) a cookie-authenticated request without its session's CSRF token.

    A request authenticated by an ``Authorization: Bearer`` header passes.

    Raises:
        HTTPException: 403, saying how to send the token.
    """
    if bearer_token(request.headers.get("authorization")) is not None:
        return  # authenticated by the header (a wrong one was refused with 401 before)
    if tokens.matches(cookie, given):
        return
    what = "a wrong CSRF token" if given else "no CSRF token"
    log.warning("override refused: %s (%s %s)", what, request.method, request.url.path)
    raise HTTPException(
        403,
        f"refused: {what} for this session; record overrides from the farmer page (reload it: "
        f"its token changes when the app restarts), or send the header {CSRF_HEADER!r} with "
        "the page's token, or use 'Authorization: Bearer <token>' from a script",
    )


def require_json(request: Request) -> None:
    """Refuse (415) a body that is not declared ``application/json``.

    Raises:
        HTTPException: 415, naming the content type received.
    """
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise HTTPException(
            415,
            f"the body is {ctype.split(';')[0].strip() or 'untyped'!s}, expected "
            '\'Content-Type: application/json\' with {"limit_eur": 12000, "reason": "..."}',
        )


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: answer 413 to a request whose body exceeds ``max_bytes``.

    Checks ``Content-Length`` first, then counts the bytes the app reads, so a chunked body
    is stopped at the limit instead of being held in memory whole.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send, int(length))
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if started:
                raise
            await self._refuse(send, seen)
        except BaseExceptionGroup as group:  # Starlette's http middlewares group errors
            if started or group.subgroup(_TooLarge) is None:
                raise
            await self._refuse(send, seen)

    async def _refuse(self, send: Send, size: int) -> None:
        detail = (
            f"the request body ({size:,} bytes or more) is larger than the "
            f"{self.max_bytes:,} bytes accepted; an override needs a limit and a reason of at "
            "most 2,000 characters"
        )
        body = json.dumps({"detail": detail}).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
