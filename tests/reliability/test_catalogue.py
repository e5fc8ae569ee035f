"""The catalogue itself: reproducible small fixtures, one test per case, a readable table."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from eval.reliability import format_table
from eval.reliability_cases import CASES, GROUPS, Outcome, cases

#: Files compared byte for byte with a fresh run of make_fixtures.py (binary formats carry
#: library versions in their metadata, so only their presence and size are checked).
TEXT_SUFFIXES = {".geojson", ".csv"}


def _make_fixtures(out: Path) -> list[Path]:
    path = Path(__file__).parent / "fixtures" / "make_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_fixtures_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.make_fixtures(out))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # rasterio's own Affine use
def test_fixtures_are_small_and_match_their_script(tmp_path: Path, fixtures_dir: Path) -> None:
    fresh = _make_fixtures(tmp_path)
    names = sorted(str(p.relative_to(tmp_path)) for p in fresh)
    committed = sorted(
        str(p.relative_to(fixtures_dir))
        for p in fixtures_dir.rglob("*")
        if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    )
    assert committed == names, "fixtures are stale: run tests/reliability/fixtures/make_fixtures.py"
    for name in names:
        if Path(name).suffix in TEXT_SUFFIXES:
            assert (fixtures_dir / name).read_bytes() == (tmp_path / name).read_bytes(), (
                f"{name} is stale: run tests/reliability/fixtures/make_fixtures.py"
            )
    total = sum((fixtures_dir / n).stat().st_size for n in names)
    assert total < 200 * 1024, f"fixtures take {total / 1024:.0f} KB"
    again = tmp_path / "again"
    _make_fixtures(again)
    for name in names:
        assert (again / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_every_group_has_cases_and_names_are_unique() -> None:
    assert {c.group for c in CASES} == set(GROUPS)
    assert len({c.id for c in CASES}) == len(CASES)
    assert [c.group for c in cases()] == sorted((c.group for c in CASES), key=GROUPS.index)
    assert all(c.name and c.expected and callable(c.check) for c in CASES)


def test_table_lists_each_case_and_the_totals() -> None:
    a, b = cases("parcels")[0], cases("tables")[0]
    k = dataclasses.replace(cases("faults")[0], known_issue="geo/x.py: a bug filed elsewhere")
    outcomes = [
        Outcome(a, "PASS", "kept, repaired", 0.1),
        Outcome(b, "FAIL", "returned a table " * 12, 0.2),
        Outcome(k, "KNOWN", "still failing", 0.3),
    ]
    table = format_table(outcomes, 12.0)
    assert a.name in table and b.name in table
    assert "3 cases in 12 s: 1 PASS, 1 FAIL, 1 KNOWN, 0 SKIP" in table
    assert "parcels 1/1" in table and "tables 0/1" in table
    assert k.known_issue is not None and k.known_issue[:40] in " ".join(table.split())
    assert max(len(line) for line in table.splitlines()) <= 160
