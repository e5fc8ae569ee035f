"""Retries for remote imagery services: one policy, one loop, one clear error at the end.

What is retried: HTTP 429 (waiting what the service's ``Retry-After`` header asks, when it
sends one), HTTP 500/502/503/504, timeouts and dropped connections; each other wait grows
exponentially from ``backoff_s`` with random jitter so parallel clients do not retry in step.
Anything else (400, 401, 403, 404...) is the caller's to handle. After the last attempt the
loop raises :class:`~geo.errors.SourceUnavailableError` naming what failed, why, and what to do.

URLs in messages go through :func:`safe_url` first: query strings (signed URLs carry tokens
there) and user-info never reach a log line or an exception.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import requests

from geo.errors import SourceUnavailableError

__all__ = [
    "RETRYABLE_STATUS",
    "RetryPolicy",
    "RetryableError",
    "parse_retry_after",
    "redact_urls",
    "retry_call",
    "safe_url",
    "send",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP statuses worth another try: rate limited, or a server-side fault.
RETRYABLE_STATUS: frozenset[int] = frozenset({429, 500, 502, 503, 504})

_URL_QUERY = re.compile(r"(https?://[^\s'\"?#]+)\?[^\s'\"]*")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one remote call.

    ``max_attempts`` counts the first try; ``timeout_s`` bounds each attempt (connect and
    read, seconds); the n-th wait is ``backoff_s * backoff_factor**(n-1)`` capped at
    ``max_backoff_s``, times a random factor in [1 - jitter, 1 + jitter]. A ``Retry-After``
    header replaces that wait (read in ``retry_after_unit``: seconds per RFC 9110, or
    milliseconds for Sentinel Hub); one longer than ``max_retry_after_s`` ends the loop at once.
    """

    max_attempts: int = 4
    timeout_s: float = 60.0
    backoff_s: float = 1.0
    backoff_factor: float = 2.0
    max_backoff_s: float = 30.0
    jitter: float = 0.25
    max_retry_after_s: float = 120.0
    retry_after_unit: Literal["s", "ms"] = "s"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts={self.max_attempts}; expected >= 1")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s={self.timeout_s}; expected > 0 seconds")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("backoff_s, max_backoff_s and max_retry_after_s must be >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter={self.jitter}; expected 0 <= jitter < 1")

    def backoff(self, failures: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1-based), with jitter."""
        base = min(self.backoff_s * self.backoff_factor ** max(failures - 1, 0), self.max_backoff_s)
        return base * (1.0 + self.jitter * (2.0 * rng() - 1.0))


class RetryableError(Exception):
    """A transient failure: the call may succeed if tried again (after ``retry_after_s``)."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


def safe_url(url: str) -> str:
    """``url`` without user-info, query string or fragment (those may carry tokens)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if not parts.scheme or not parts.netloc:
        return url.split("?", 1)[0]
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    marker = "?<redacted>" if parts.query else ""
    return f"{parts.scheme}://{host}{parts.path}{marker}"


def redact_urls(text: str) -> str:
    """``text`` with the query string of every http(s) URL in it replaced by ``<redacted>``."""
    return _URL_QUERY.sub(r"\1?<redacted>", text)


def parse_retry_after(value: str | None, unit: Literal["s", "ms"] = "s") -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number (in ``unit``) or an HTTP date.

    Returns None when the header is absent or unreadable; never a negative number.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return max((when - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)
    if not math.isfinite(number):
        return None
    return max(number / 1000.0 if unit == "ms" else number, 0.0)


def retry_call(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    what: str,
    fix: str = "check the service status and your network, then re-run",
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> T:
    """Call ``fn`` until it returns, retrying each :class:`RetryableError` it raises.

    ``what`` names the call in logs and errors (no secrets: pass URLs through
    :func:`safe_url`); ``fix`` ends the final error message. Other exceptions propagate at once.

    Raises:
        SourceUnavailableError: the last attempt failed too, or the service asked to wait
            longer than ``policy.max_retry_after_s``.
    """
    last: RetryableError | None = None
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return fn()
        except RetryableError as exc:
            last = exc
        if attempt == policy.max_attempts:
            break
        if last.retry_after_s is not None:
            if last.retry_after_s > policy.max_retry_after_s:
                raise SourceUnavailableError(
                    f"{what}: {last.reason}; the service asks to wait {last.retry_after_s:.0f} s "
                    f"(more than max_retry_after_s={policy.max_retry_after_s:g}); {fix}"
                ) from last
            delay = last.retry_after_s * (1.0 + policy.jitter * rng())
        else:
            delay = policy.backoff(attempt, rng)
        log.warning(
            "%s: %s; retry %d of %d in %.2f s",
            what,
            last.reason,
            attempt,
            policy.max_attempts - 1,
            delay,
        )
        sleep(delay)
    assert last is not None
    raise SourceUnavailableError(
        f"{what} failed after {policy.max_attempts} attempt(s); last error: {last.reason}; {fix}"
    ) from last


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    what: str | None = None,
    fix: str = "check the service status and your network, then re-run",
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    data: Any = None,
    params: Mapping[str, Any] | None = None,
    on_response: Callable[[requests.Response], None] | None = None,
) -> requests.Response:
    """Send one HTTP request with :func:`retry_call`; return the first non-retryable response.

    The response may still be a 4xx: the caller decides what a 401 or 404 means. Each
    attempt is bounded by ``policy.timeout_s``. ``on_response`` sees every response (also
    retried ones), e.g. to count processing units.

    Raises:
        SourceUnavailableError: 429/5xx, timeouts or connection errors until the last attempt.
    """
    label = what or f"{method} {safe_url(url)}"

    def once() -> requests.Response:
        try:
            response = session.request(
                method,
                url,
                headers=dict(headers) if headers else None,
                json=json,
                data=data,
                params=params,
                timeout=policy.timeout_s,
            )
        except requests.Timeout as exc:
            raise RetryableError(f"no answer within {policy.timeout_s:g} s (timeout)") from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise RetryableError(f"connection failed ({type(exc).__name__})") from exc
        if on_response is not None:
            on_response(response)
        if response.status_code in RETRYABLE_STATUS:
            retry_after = None
            if response.status_code in (429, 503):
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), policy.retry_after_unit
                )
            response.close()
            raise RetryableError(
                f"HTTP {response.status_code} {response.reason or ''}".rstrip(),
                retry_after_s=retry_after,
            )
        return response

    return retry_call(once, policy=policy, what=label, fix=fix)
