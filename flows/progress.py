"""Progress of a flow's long loops, shown by whoever watches (the CLI's progress bars).

The flows call :func:`step` (or :func:`track`) around their long loops: reading scenes,
assessing regions, scoring re-limit batches, the stages of a season. Nothing is shown and
nothing is logged unless a :class:`Watcher` is installed with :func:`watching`, which the
command line does on a terminal only. Progress is reported in the flow's own process: on a
Dask cluster the flow advances a batch's bar as that batch's result comes back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

T = TypeVar("T")

#: Advance a step by this many units.
Advance = Callable[[int], None]


class Watcher(Protocol):
    """Shows steps; ``start`` returns a handle that ``advance`` and ``stop`` take back."""

    def start(self, description: str, total: int) -> object: ...

    def advance(self, handle: object, n: int) -> None: ...

    def stop(self, handle: object) -> None: ...


_lock = threading.Lock()
_watcher: Watcher | None = None


@contextmanager
def watching(watcher: Watcher) -> Iterator[Watcher]:
    """Show the steps of flows run inside this block with ``watcher``."""
    global _watcher
    with _lock:
        before, _watcher = _watcher, watcher
    try:
        yield watcher
    finally:
        with _lock:
            _watcher = before


def _noop(n: int = 1) -> None:
    return None


@contextmanager
def step(description: str, total: int) -> Iterator[Advance]:
    """A step of ``total`` units; yields ``advance(n=1)``. A no-op when nobody watches."""
    watcher = _watcher
    if watcher is None:
        yield _noop
        return
    handle = watcher.start(description, total)

    def advance(n: int = 1) -> None:
        watcher.advance(handle, n)

    try:
        yield advance
    finally:
        watcher.stop(handle)


def track(items: Iterable[T], description: str, total: int) -> Iterator[T]:
    """Yield ``items``, advancing a step of ``total`` units by one for each."""
    with step(description, total) as advance:
        for item in items:
            yield item
            advance(1)
