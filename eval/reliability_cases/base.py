"""The machinery of the reliability catalogue: cases, their context, checks and outcomes.

A case is a plain function ``(ctx: Context) -> str`` registered with :func:`case`: it feeds
the pipeline one bad input or fault, checks the behaviour the catalogue promises (raising
:class:`CaseFailed` when it is not met) and returns what it observed, in a few words.
``tests/reliability`` runs each case as a test; ``python -m eval.reliability`` runs them all
and prints the table.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
#: The committed bad files (written by ``make_fixtures.py`` in the same folder).
FIXTURES = REPO / "tests" / "reliability" / "fixtures"
#: ``tests/geo``: the loopback server and its imagery builders live there.
GEO_TESTS = REPO / "tests" / "geo"

Group = Literal["parcels", "imagery", "tables", "faults", "secrets"]
GROUPS: tuple[Group, ...] = ("parcels", "imagery", "tables", "faults", "secrets")
Status = Literal["PASS", "FAIL", "KNOWN", "SKIP"]


class CaseFailed(AssertionError):
    """The pipeline did not behave as the catalogue promises."""


class CaseSkipped(Exception):
    """The case cannot run here (the reason says why)."""


@dataclass(frozen=True)
class Case:
    """One entry of the catalogue.

    Attributes:
        group: parcels, imagery, tables, faults or secrets.
        name: short name (also the test id).
        expected: the promised behaviour, in words.
        check: runs the case; returns what was observed, raises :class:`CaseFailed` otherwise.
        known_issue: set when the case is known to fail (a bug outside this catalogue's
            files): a failure is then reported as KNOWN, and a pass means it is fixed.
        network: talks to the loopback HTTP server on 127.0.0.1.
        slow: takes a minute or more (starts processes): the catalogue runs it, plain
            ``pytest`` skips it (marker ``slow``).
    """

    group: Group
    name: str
    expected: str
    check: Callable[[Context], str]
    known_issue: str | None = None
    network: bool = False
    slow: bool = False

    @property
    def id(self) -> str:
        return f"{self.group}:{self.name}"


CASES: list[Case] = []


def case(
    group: Group,
    name: str,
    expected: str,
    *,
    known_issue: str | None = None,
    network: bool = False,
    slow: bool = False,
) -> Callable[[Callable[[Context], str]], Callable[[Context], str]]:
    """Register the decorated function as a case of the catalogue."""

    def register(fn: Callable[[Context], str]) -> Callable[[Context], str]:
        if any(c.group == group and c.name == name for c in CASES):
            raise ValueError(f"case {group}:{name} is registered twice")
        CASES.append(Case(group, name, expected, fn, known_issue, network, slow))
        return fn

    return register


def cases(group: Group | None = None) -> list[Case]:
    """The registered cases (of one group), in catalogue order (by group, then as defined)."""
    chosen = [c for c in CASES if group is None or c.group == group]
    return sorted(chosen, key=lambda c: GROUPS.index(c.group))


# --------------------------------------------------------------------------------------
# Context
# --------------------------------------------------------------------------------------
class Shared:
    """Things several cases use, built once: the loopback server's generated imagery."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._imagery: Any = None

    def imagery(self) -> Any:
        """The ``tests/geo`` generated scenes (``fixtures_imagery.ImagerySet``)."""
        if self._imagery is None:
            self._imagery = geo_test_module("fixtures_imagery").build_imagery(
                self.root / "loopback-imagery"
            )
        return self._imagery


@dataclass
class Context:
    """What a case may use: the fixture files, a fresh directory, shared resources."""

    tmp: Path
    shared: Shared
    fixtures: Path = FIXTURES

    def fixture(self, *parts: str) -> Path:
        path = self.fixtures.joinpath(*parts)
        if not path.exists():
            raise CaseSkipped(
                f"fixture {path} is missing; run tests/reliability/fixtures/make_fixtures.py"
            )
        return path

    @contextmanager
    def loopback(self, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
        """A started ``LoopbackServer`` over the shared imagery, and that imagery."""
        server_cls = geo_test_module("loopback").LoopbackServer
        imagery = self.shared.imagery()
        with server_cls(imagery, **kwargs) as server:
            yield server, imagery


def geo_test_module(name: str) -> ModuleType:
    """Import ``tests/geo/<name>.py`` (the loopback server and its imagery builders)."""
    if not (GEO_TESTS / f"{name}.py").is_file():
        raise CaseSkipped(f"{GEO_TESTS / name}.py is not here (tests are not installed)")
    if str(GEO_TESTS) not in sys.path:
        sys.path.insert(0, str(GEO_TESTS))
    return importlib.import_module(name)


def fixture_maker() -> ModuleType:
    """``make_fixtures.py`` as a module (its scene builders give the expected pixels)."""
    name = "reliability_make_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    path = FIXTURES / "make_fixtures.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CaseSkipped(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------
def expect(condition: bool, what: str) -> None:
    """Raise :class:`CaseFailed` with ``what`` unless ``condition`` holds."""
    if not condition:
        raise CaseFailed(what)


def expect_error(
    kind: type[BaseException] | tuple[type[BaseException], ...],
    fn: Callable[[], Any],
    *needles: str,
) -> BaseException:
    """Call ``fn``; it must raise ``kind`` whose message contains every needle (any case)."""
    try:
        result = fn()
    except kind as exc:
        text = str(exc).lower()
        missing = [n for n in needles if n.lower() not in text]
        expect(not missing, f"{type(exc).__name__} message lacks {missing}: {exc}")
        return exc
    except Exception as exc:
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise CaseFailed(f"expected {names}, got {type(exc).__name__}: {exc}") from exc
    names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
    raise CaseFailed(f"expected {names}, but it returned {short(repr(result), 80)}")


def short(text: str, width: int = 90) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    one = " ".join(str(text).split())
    return one if len(one) <= width else one[: width - 3] + "..."


def first_line_of(exc: BaseException, width: int = 70) -> str:
    return f"{type(exc).__name__}: {short(str(exc), width)}"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = f"{record.levelname} {record.name}: {record.getMessage()}"
        except Exception:  # a library's broken format string must not hide the others
            line = f"{record.levelname} {record.name}: {record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            line += " | " + "".join(traceback.format_exception(*record.exc_info))
        self.lines.append(line)


@contextmanager
def capture_logs(level: int = logging.DEBUG) -> Iterator[list[str]]:
    """Every log line (at ``level`` and up, any logger) emitted inside the block."""
    root = logging.getLogger()
    handler = _Collect()
    old = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def files_containing(root: Path, *secrets: str) -> list[str]:
    """Files under ``root`` whose bytes contain any of ``secrets`` (as 'path: secret#')."""
    hits = []
    needles = [(i, s.encode("utf-8")) for i, s in enumerate(secrets) if s]
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        hits += [f"{path}: secret #{i}" for i, needle in needles if needle in blob]
    return hits


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """The result of one case: PASS, FAIL, KNOWN (known issue confirmed) or SKIP."""

    case: Case
    status: Status
    observed: str
    seconds: float


def run_case(c: Case, ctx: Context) -> Outcome:
    """Run ``c``; never raises (a crash is a FAIL whose observation names the exception)."""
    import time

    started = time.perf_counter()
    try:
        observed = c.check(ctx)
        status: Status = "PASS"
        if c.known_issue:
            observed = f"known issue no longer seen: {observed}"
    except CaseSkipped as exc:
        observed, status = f"skipped: {exc}", "SKIP"
    except CaseFailed as exc:
        observed = str(exc)
        status = "KNOWN" if c.known_issue else "FAIL"
    except Exception as exc:
        observed = f"crashed: {first_line_of(exc, 200)}"
        status = "KNOWN" if c.known_issue else "FAIL"
        log.debug("case %s crashed", c.id, exc_info=True)
    observed = observed.replace(f"{REPO}/", "")  # repository paths, relative
    return Outcome(c, status, short(observed, 300), time.perf_counter() - started)
