"""Who may use the review app: lender-configured bearer tokens, each bound to a name and role.

Tokens are never hard-coded. The lender gives a JSON mapping ``token -> "name:role"``:

* in the environment variable ``CROPCREDIT_TOKENS``, e.g.
  ``{"3f9c...": "A. Martin:officer", "77ab...": "audit:viewer"}``, or
* in a JSON file named by ``CROPCREDIT_TOKENS_FILE`` (same content; keep it readable by the
  service user only).

Roles: ``viewer`` reads pages, maps and exports; ``officer`` also records overrides. A token is
sent as ``Authorization: Bearer <token>`` (API) or held in the ``cropcredit_token`` cookie set
by ``POST /login`` (browser). Tokens are compared in constant time (:func:`hmac.compare_digest`
against every configured token, no early exit) and never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from geo.errors import TableError

log = logging.getLogger(__name__)

Role = Literal["viewer", "officer"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "officer")
ENV_TOKENS: Final[str] = "CROPCREDIT_TOKENS"
ENV_TOKENS_FILE: Final[str] = "CROPCREDIT_TOKENS_FILE"
COOKIE: Final[str] = "cropcredit_token"
#: Tokens shorter than this are accepted but warned about (guessable).
MIN_TOKEN_LENGTH: Final[int] = 16


@dataclass(frozen=True)
class Principal:
    """The person behind a token: the name recorded with overrides, and a role."""

    name: str
    role: Role

    @property
    def can_override(self) -> bool:
        """Officers may record overrides; viewers only read."""
        return self.role == "officer"


def parse_principal(value: str, *, where: str) -> Principal:
    """Parse ``"name:role"`` (the name may itself contain colons).

    Raises:
        TableError: no colon, an empty name or an unknown role.
    """
    name, sep, role = str(value).rpartition(":")
    name, role = name.strip(), role.strip()
    if not sep or not name:
        raise TableError(
            f'{where}: expected "name:role" (e.g. "A. Martin:officer"), got a value without '
            "a name; give each token the officer's name and a role"
        )
    if role not in ROLES:
        raise TableError(
            f"{where}: role {role!r} for {name!r} is unknown; expected one of {', '.join(ROLES)}"
        )
    return Principal(name=name, role=role)  # type: ignore[arg-type]


class TokenStore:
    """Constant-time lookup of the principal bound to a token.

    Args:
        tokens: ``token -> "name:role"``.

    Raises:
        TableError: no tokens, an empty token or a malformed ``"name:role"``.
    """

    def __init__(self, tokens: Mapping[str, str]) -> None:
        if not tokens:
            raise TableError(
                "no review tokens configured; set CROPCREDIT_TOKENS to a JSON mapping "
                '{"<token>": "name:role"} or CROPCREDIT_TOKENS_FILE to a file holding one '
                f"(roles: {', '.join(ROLES)})"
            )
        entries: list[tuple[bytes, Principal]] = []
        for i, (token, value) in enumerate(tokens.items(), start=1):
            where = f"review token #{i}"  # never the token itself
            if not isinstance(token, str) or not token.strip():
                raise TableError(f"{where}: the token is empty; give every user a long random one")
            principal = parse_principal(value, where=where)
            if len(token) < MIN_TOKEN_LENGTH:
                log.warning(
                    '%s (%s) is shorter than %d characters; use e.g. `python -c "import secrets;'
                    ' print(secrets.token_urlsafe(32))"`',
                    where,
                    principal.name,
                    MIN_TOKEN_LENGTH,
                )
            entries.append((token.encode("utf-8"), principal))
        self._entries = entries
        roles = sorted(p.role for _, p in entries)
        log.info("review app: %d token(s) configured (%s)", len(entries), ", ".join(roles))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TokenStore({len(self._entries)} tokens)"

    def lookup(self, token: str | None) -> Principal | None:
        """The principal bound to ``token``, or None; compares against every token."""
        if not token:
            return None
        given = token.encode("utf-8")
        found: Principal | None = None
        for known, principal in self._entries:
            if hmac.compare_digest(given, known) and found is None:
                found = principal
        return found


def load_tokens(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Read ``token -> "name:role"`` from ``CROPCREDIT_TOKENS`` or ``CROPCREDIT_TOKENS_FILE``.

    Raises:
        TableError: neither is set, the file is missing, or the JSON is not a mapping of
            strings (the message never quotes the content, which holds secrets).
    """
    env = os.environ if environ is None else environ
    if env.get(ENV_TOKENS):
        text, where = env[ENV_TOKENS], f"${ENV_TOKENS}"
    elif env.get(ENV_TOKENS_FILE):
        path = Path(env[ENV_TOKENS_FILE]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TableError(
                f"${ENV_TOKENS_FILE}={path}: cannot read it ({type(exc).__name__}); check the "
                "path and that the service user may read it"
            ) from None
        where = str(path)
    else:
        raise TableError(
            f"no review tokens configured; set {ENV_TOKENS} to a JSON mapping "
            f'{{"<token>": "name:role"}} or {ENV_TOKENS_FILE} to a file holding one '
            f"(roles: {', '.join(ROLES)})"
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TableError(
            f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}); expected "
            '{"<token>": "name:role", ...}'
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise TableError(f'{where}: expected a JSON object {{"<token>": "name:role", ...}}')
    return data


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class AuthError(Exception):
    """A request without the right token: ``status`` 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def authenticate(
    store: TokenStore, authorization: str | None, cookie: str | None, need: Role
) -> Principal:
    """The principal of a request (Bearer header first, else the login cookie) with role
    ``need`` or better.

    Raises:
        AuthError: 401 without a token or with an unknown one; 403 if the role is too low.
    """
    token = bearer_token(authorization) or cookie
    if not token:
        raise AuthError(
            401,
            "no token: log in at /login, or send the header 'Authorization: Bearer <token>'",
        )
    principal = store.lookup(token)
    if principal is None:
        raise AuthError(
            401, "token not recognised: check it with the lender's administrator and log in again"
        )
    if need == "officer" and not principal.can_override:
        raise AuthError(
            403,
            f"{principal.name} has role '{principal.role}', which may only read; overrides need "
            "a token of role 'officer'",
        )
    return principal
