"""Bad parcel files and parcels off the imagery (catalogue group ``parcels``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from eval.reliability_cases import Case, cases
from geo.errors import ParcelError
from geo.parcels import read_parcels


@pytest.mark.parametrize("case", cases("parcels"), ids=lambda c: c.name)
def test_parcel_case(case: Case, check: Callable[[Case], str]) -> None:
    check(case)


def test_every_row_of_every_parcel_file_is_kept_or_rejected_once(fixtures_dir: Path) -> None:
    """Whatever is wrong in a file that is read at all, no row is lost or doubled."""
    read = 0
    for path in sorted((fixtures_dir / "parcels").glob("*.geojson")):
        features = json.loads(path.read_bytes().decode("utf-8", errors="replace"))["features"]
        try:
            ps = read_parcels(path)
        except ParcelError:
            continue  # a whole-file problem: one error, nothing half-read
        read += 1
        rows = sorted(int(r) for r in ps.rejects["row"])
        assert len(ps.parcels) + len(rows) == len(features), path.name
        assert len(set(rows)) == len(rows) and all(0 <= r < len(features) for r in rows)
        assert ps.parcels["parcel_id"].is_unique, path.name
        assert (ps.rejects["file"] == str(path)).all()
    assert read >= 9
