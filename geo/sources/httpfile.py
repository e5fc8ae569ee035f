"""Remote files read by HTTP range requests for rasterio, with the retries of every other call.

:class:`HttpAsset` is an opener for ``rasterio.open(href, opener=asset)``: GDAL asks for
byte ranges and each missing run of ``chunk_size`` blocks becomes one ``Range`` request sent
through :func:`geo.sources.retry.retry_call`. So a COG read gets the same treatment as an API
call: 429 waits its ``Retry-After``, 5xx, timeouts and dropped connections back off and are
retried, and a body cut short (fewer bytes than asked, or than ``Content-Length``
announced) is a dropped connection, retried, never data handed to the TIFF decoder. The file
size comes from the first answer's ``Content-Range`` (no ``HEAD``); a server that ignores
``Range`` and answers 200 with the whole file is served from that answer.

The callbacks GDAL calls never raise (an exception inside them can abort the process): a
failed fetch gives GDAL a short read or a size of 0, so it reports "read failed", and the
failure itself is kept in :attr:`HttpAsset.error` (a :class:`~geo.errors.SourceUnavailableError`
after the last retry, an :class:`~geo.errors.ImageryError` for 401/403/404/416) for the
caller to raise instead.
URLs in messages go through :func:`~geo.sources.retry.safe_url` (signatures never show).
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

import requests
from rasterio.abc import MultiByteRangeResourceContainer

from geo.errors import ImageryError, SourceUnavailableError
from geo.sources.retry import (
    RETRYABLE_STATUS,
    RetryableError,
    RetryPolicy,
    parse_retry_after,
    retry_call,
)

__all__ = ["DEFAULT_CHUNK_SIZE", "HttpAsset"]

log = logging.getLogger(__name__)

#: Bytes per cached block; a read fetches whole blocks (GDAL's /vsicurl/ uses 16 KiB).
DEFAULT_CHUNK_SIZE = 64 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class HttpAsset(MultiByteRangeResourceContainer):
    """One remote file, read by ranges and cached in blocks for the life of this object.

    Args:
        url: what is requested (may carry a signature; never logged).
        label: how messages name the file (the URL without its query string).
        session: the HTTP session (connection pooling).
        policy: attempts, per-attempt timeout and backoff.
        chunk_size: block size in bytes; every request covers whole blocks.

    Attributes:
        error: the failure GDAL was told about as "read failed", if any.
        requests: range requests sent (retries included).
        bytes_read: body bytes received.
    """

    def __init__(
        self,
        url: str,
        *,
        label: str,
        session: requests.Session,
        policy: RetryPolicy,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if chunk_size < 512:
            raise ValueError(f"chunk_size={chunk_size}; expected at least 512 bytes")
        self._url = url
        self.label = label
        self._session = session
        self._policy = policy
        self.chunk_size = chunk_size
        self._lock = threading.Lock()
        self._blocks: dict[int, bytes] = {}
        self._size: int | None = None
        self.error: Exception | None = None
        self.requests = 0
        self.bytes_read = 0

    def __repr__(self) -> str:
        return f"HttpAsset({self.label!r})"

    # -- rasterio's opener interface ----------------------------------------------------
    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> _AssetFile:
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError(f"{self.label} is read-only over HTTP (mode {mode!r})")
        return _AssetFile(self)

    def size(self, path: str) -> int:
        try:
            return self.file_size()
        except (SourceUnavailableError, ImageryError):
            return 0  # GDAL then fails to open it; the caller raises self.error

    def isfile(self, path: str) -> bool:
        return True

    def isdir(self, path: str) -> bool:
        return False

    def ls(self, path: str) -> list[str]:
        return []

    def mtime(self, path: str) -> int:
        return 0

    def rm(self, path: str) -> None:
        raise ValueError(f"{self.label} is read-only over HTTP")

    # -- reads --------------------------------------------------------------------------
    def file_size(self) -> int:
        """Size of the file in bytes (fetches the first block when not yet known).

        Raises:
            SourceUnavailableError, ImageryError: as :meth:`read`.
        """
        if self._size is None:
            self.read(0, 1)
        assert self._size is not None
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end of the file).

        Once a fetch has failed after its retries, every later read raises that error again
        without a request.

        Raises:
            SourceUnavailableError: 429/5xx/timeouts/dropped connections until the last try.
            ImageryError: the server refused the range (401, 403, 404, 416...).
        """
        if length <= 0:
            return b""
        if self.error is not None:  # failed for good: GDAL may ask again, do not re-fetch
            raise self.error
        try:
            with self._lock:
                first = offset // self.chunk_size
                last = (offset + length - 1) // self.chunk_size
                if self._size is not None:
                    last = min(last, max(self._size - 1, 0) // self.chunk_size)
                missing = [b for b in range(first, last + 1) if b not in self._blocks]
                for run_start, run_end in _runs(missing):
                    self._fetch(run_start, run_end)
                    if self._size is not None:  # the first answer told the size
                        last = min(last, max(self._size - 1, 0) // self.chunk_size)
                data = b"".join(self._blocks.get(b, b"") for b in range(first, last + 1))
        except (SourceUnavailableError, ImageryError) as exc:
            self.error = exc
            raise
        start = offset - first * self.chunk_size
        return data[start : start + length]

    def _fetch(self, first: int, last: int) -> None:
        """Fetch blocks ``first..last`` (inclusive) with one range request, retried."""
        start = first * self.chunk_size
        end = (last + 1) * self.chunk_size - 1
        if self._size is not None:
            end = min(end, self._size - 1)
            if end < start:
                return
        what = f"GET {self.label} bytes {start}-{end}"
        body = retry_call(
            lambda: self._get(start, end),
            policy=self._policy,
            what=what,
            fix="a network or storage fault, not bad data: try again later (the storage may be "
            "down, rate-limiting or dropping connections), or raise retry.max_attempts / "
            "retry.timeout_s",
        )
        for i in range(0, len(body), self.chunk_size):
            self._blocks[(start + i) // self.chunk_size] = body[i : i + self.chunk_size]

    def _get(self, start: int, end: int) -> bytes:
        """One attempt; returns the body from ``start`` (whole blocks, or up to EOF)."""
        self.requests += 1
        try:
            response = self._session.get(
                self._url,
                headers={"Range": f"bytes={start}-{end}"},
                timeout=self._policy.timeout_s,
            )
            body = response.content  # a short body raises here (urllib3 checks the length)
        except requests.Timeout as exc:
            timeout = self._policy.timeout_s
            raise RetryableError(f"no answer within {timeout:g} s (timeout)") from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise RetryableError(f"connection dropped or refused ({type(exc).__name__})") from exc
        status = response.status_code
        if status in RETRYABLE_STATUS:
            retry_after = None
            if status in (429, 503):
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), self._policy.retry_after_unit
                )
            raise RetryableError(
                f"HTTP {status} {response.reason or ''}".rstrip(), retry_after_s=retry_after
            )
        if status == 200:  # the server ignored Range: it sent the whole file
            self._size = len(body)
            self.bytes_read += len(body)
            return body[start:]
        if status != 206:
            hint = {
                401: "the asset needs credentials or its signature expired: check the signing hook",
                403: "access denied or the signature expired: re-run the search and check "
                "the signing hook",
                404: "the asset moved: re-run the search to refresh the item",
                416: "the file is shorter than its header says: it is truncated on the server",
            }.get(status, "check the asset URL and the storage service")
            raise ImageryError(f"GET {self.label} answered HTTP {status}; {hint}")
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match is None:
            raise RetryableError("HTTP 206 without a readable Content-Range")
        got_start, got_end = int(match[1]), int(match[2])
        if match[3] != "*":
            self._size = int(match[3])
        expected = got_end - got_start + 1
        if got_start != start or len(body) != expected:
            raise RetryableError(
                f"connection dropped mid-body: got {len(body)} of {expected} bytes from {got_start}"
            )
        self.bytes_read += len(body)
        return body


def _runs(blocks: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted block numbers, as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for b in blocks:
        if runs and b == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], b)
        else:
            runs.append((b, b))
    return runs


class _AssetFile(io.RawIOBase):
    """A read-only, seekable file over an :class:`HttpAsset` (what GDAL reads through)."""

    def __init__(self, asset: HttpAsset) -> None:
        super().__init__()
        self._asset = asset
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        elif whence == io.SEEK_END:
            self._pos = self._asset.size("") + offset
        else:
            raise ValueError(f"whence={whence}; expected 0, 1 or 2")
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = max(self._asset.size("") - self._pos, 0)
        try:
            data = self._asset.read(self._pos, size)
        except (SourceUnavailableError, ImageryError):
            return b""  # a short read: GDAL fails the read; the caller raises asset.error
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def get_byte_ranges(self, offsets: Sequence[int], sizes: Sequence[int]) -> list[bytes]:
        """Several ranges at once (GDAL's multi-range read): missing blocks are fetched in
        as few requests as their runs allow."""
        pairs = list(zip(offsets, sizes, strict=True))
        if len(pairs) > 1:
            lo = min(o for o, _ in pairs)
            hi = max(o + s for o, s in pairs)
            block = self._asset.chunk_size
            span = (hi - 1) // block - lo // block + 1
            wanted = sum((o + s - 1) // block - o // block + 1 for o, s in pairs if s > 0)
            if span <= 2 * wanted:  # dense enough: one request over the whole span
                self.seek(lo)
                self.read(hi - lo)
        out = []
        for o, s in pairs:
            self.seek(o)
            out.append(self.read(s))
        return out
