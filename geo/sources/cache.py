"""A disk cache for remote imagery, keyed by the request that produced each entry.

Key: the sha256 of the request as canonical JSON (sorted keys, no spaces; dates as ISO
strings), so equal requests share an entry whatever the order their fields were built in.
Build keys from what defines the answer (URL without signature, payload, bounds, grid) and
never from credentials or tokens.

Entry: ``<root>/<key[:2]>/<key>.bin`` holding a 4-byte magic, the sha256 of the payload and
the payload. Writes go to a temporary file beside the entry, are flushed to disk and renamed
over it (``os.replace``), so a reader sees the old entry, the new one or none, never half a
file. A read that finds a truncated or altered entry logs a warning, deletes it and reports
a miss, so the caller fetches again. A cache that cannot be written (full disk, read-only
directory) logs a warning and the call goes on without it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DiskCache", "canonical_json", "request_key"]

log = logging.getLogger(__name__)

_MAGIC = b"CCC1"
_DIGEST = 32


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot put {type(value).__name__} in a cache key; use JSON-able values")


def canonical_json(request: Mapping[str, Any]) -> str:
    """``request`` as canonical JSON: sorted keys, compact separators, ASCII only."""
    return json.dumps(
        request, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_json_default
    )


def request_key(request: Mapping[str, Any]) -> str:
    """sha256 hex digest of :func:`canonical_json` of ``request``."""
    return hashlib.sha256(canonical_json(request).encode("ascii")).hexdigest()


class DiskCache:
    """Bytes, JSON and numpy arrays on disk under ``root``, keyed by :func:`request_key`.

    ``root=None`` gives a disabled cache: every get misses and every put is a no-op.
    """

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None

    def __repr__(self) -> str:
        return f"DiskCache({str(self.root)!r})" if self.root else "DiskCache(None)"

    @property
    def enabled(self) -> bool:
        return self.root is not None

    key = staticmethod(request_key)

    def path_for(self, key: str) -> Path:
        """Where the entry ``key`` lives (whether or not it exists)."""
        if self.root is None:
            raise ValueError("the cache is disabled (root=None)")
        return self.root / key[:2] / f"{key}.bin"

    # -- bytes -------------------------------------------------------------------------
    def get(self, key: str, *, max_age_s: float | None = None) -> bytes | None:
        """The payload stored under ``key``; None on a miss, an expired or a corrupt entry."""
        if self.root is None:
            return None
        path = self.path_for(key)
        try:
            if max_age_s is not None and time.time() - path.stat().st_mtime > max_age_s:
                return None
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cache entry %s is unreadable (%s); fetching again", path, exc)
            return None
        head = len(_MAGIC) + _DIGEST
        payload = blob[head:]
        if (
            len(blob) < head
            or blob[: len(_MAGIC)] != _MAGIC
            or hashlib.sha256(payload).digest() != blob[len(_MAGIC) : head]
        ):
            self.discard(key, reason="corrupt (checksum mismatch or truncated)")
            return None
        return payload

    def put(self, key: str, payload: bytes) -> None:
        """Store ``payload`` under ``key`` atomically (temp file + ``os.replace``)."""
        if self.root is None:
            return
        path = self.path_for(key)
        blob = _MAGIC + hashlib.sha256(payload).digest() + payload
        tmp_name: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
        except OSError as exc:
            log.warning("cannot write cache entry %s (%s); continuing without caching", path, exc)
        finally:
            if tmp_name is not None:
                Path(tmp_name).unlink(missing_ok=True)

    def discard(self, key: str, *, reason: str = "") -> None:
        """Delete the entry ``key`` (no error when it does not exist)."""
        if self.root is None:
            return
        path = self.path_for(key)
        if reason:
            log.warning("cache entry %s is %s; deleting it and fetching again", path, reason)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot delete cache entry %s (%s)", path, exc)

    # -- JSON --------------------------------------------------------------------------
    def get_json(self, key: str, *, max_age_s: float | None = None) -> Any | None:
        """The JSON value stored under ``key``; None on a miss (a bad entry is discarded)."""
        payload = self.get(key, max_age_s=max_age_s)
        if payload is None:
            return None
        try:
            return json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self.discard(key, reason="not valid JSON")
            return None

    def put_json(self, key: str, value: Any) -> None:
        """Store a JSON-able ``value`` under ``key``."""
        self.put(key, json.dumps(value, default=_json_default).encode("utf-8"))

    # -- arrays ------------------------------------------------------------------------
    def get_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """The named arrays stored under ``key``; None on a miss (a bad entry is discarded)."""
        payload = self.get(key)
        if payload is None:
            return None
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}
        except (OSError, ValueError, EOFError, KeyError) as exc:
            self.discard(key, reason=f"not a readable array archive ({exc})")
            return None

    def put_arrays(self, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Store named arrays under ``key`` (numpy ``.npz``, no pickles)."""
        if self.root is None:
            return
        buffer = io.BytesIO()
        named = {name: np.asarray(a) for name, a in arrays.items()}
        np.savez(buffer, **named)  # type: ignore[arg-type]  # numpy stubs mistype **kwds
        self.put(key, buffer.getvalue())
