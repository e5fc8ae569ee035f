"""Chip cache: dekads from the cache composite bit for bit like composite_dekads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.chip_cache import ChipCache, assemble, dekad_key, reduce_dekad
from geo.composite import composite_dekads
from geo.sources.base import Bounds, SceneData
from geo.types import BANDS, Season

SEASON = Season(2026)
GRID = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_600_000.0)
SHAPE = (6, 7)
WINDOW = Bounds(500_000.0, 5_599_930.0, 500_070.0, 5_600_000.0, "EPSG:32631")


def _scenes(seed: int, n: int) -> list[SceneData]:
    rng = np.random.default_rng(seed)
    days = sorted(rng.choice(300, size=n, replace=False))
    out = []
    for i, d in enumerate(days):
        dn = rng.integers(1, 9000, size=(len(BANDS), *SHAPE), dtype=np.uint16)
        dn[:, rng.random(SHAPE) < 0.1] = 0  # nodata
        scl = np.where(rng.random(SHAPE) < 0.3, 9, 4).astype(np.uint8)  # cloud / vegetation
        date = SEASON.start + dt.timedelta(days=int(d))
        out.append(SceneData(f"S{i:03d}", date, dn, scl, GRID, "EPSG:32631"))
    return out


def _by_dekad(scenes: list[SceneData], as_of: dt.date) -> dict[int, list[SceneData]]:
    groups: dict[int, list[SceneData]] = {}
    for s in scenes:
        if s.date <= as_of:
            groups.setdefault(SEASON.dekad_index(s.date), []).append(s)
    return groups


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 60), st.integers(0, 330))
def test_assembled_dekads_equal_composite_dekads_bit_for_bit(
    seed: int, n: int, as_of_day: int
) -> None:
    scenes = _scenes(seed, n)
    as_of = SEASON.start + dt.timedelta(days=as_of_day)
    groups = _by_dekad(scenes, as_of)
    if not groups:
        return
    want = composite_dekads(scenes, SEASON, as_of)
    got = assemble(
        {k: reduce_dekad(v) for k, v in groups.items()}, SEASON, as_of, GRID, "EPSG:32631", SHAPE
    )
    np.testing.assert_array_equal(got.observed, want.observed)
    assert got.data.tobytes() == want.data.tobytes()  # NaNs included, bit for bit


def test_cache_round_trip_and_incremental_equals_scratch(tmp_path: Path) -> None:
    scenes = _scenes(3, 40)
    cache = ChipCache(tmp_path / "cache")
    first, second = SEASON.start + dt.timedelta(days=120), SEASON.start + dt.timedelta(days=250)

    def stage(as_of: dt.date) -> tuple[np.ndarray, int]:
        n_read = 0
        dekads = {}
        for step, group in _by_dekad(scenes, as_of).items():
            date = SEASON.dekads()[step]
            key = dekad_key("test", WINDOW, [s.scene_id for s in group])
            stack = cache.load("c1", date, key)
            if stack is None:
                stack = reduce_dekad(group)
                n_read += len(group)
                cache.save("c1", date, key, stack)
            dekads[step] = stack
        return assemble(dekads, SEASON, as_of, GRID, "EPSG:32631", SHAPE).data, n_read

    stage(first)
    incremental, n_read = stage(second)
    scratch = composite_dekads(scenes, SEASON, second).data
    assert incremental.tobytes() == scratch.tobytes()
    # only the dekads whose scenes changed since the first stage were read again
    before = {k: [s.scene_id for s in v] for k, v in _by_dekad(scenes, first).items()}
    changed = [
        v for k, v in _by_dekad(scenes, second).items() if before.get(k) != [s.scene_id for s in v]
    ]
    assert 0 < n_read == sum(len(v) for v in changed) < len([s for s in scenes if s.date <= second])
    # one file per dekad: the first stage's partial dekad was replaced
    files = list((tmp_path / "cache" / "c1").glob("*.npz"))
    assert len(files) == len(_by_dekad(scenes, second))
    assert cache.nbytes() > 0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5))
def test_middle_values_of_one_to_five_scenes_match_a_sort(seed: int, k: int) -> None:
    """The min/max shortcuts for 1-3 scenes a dekad give the sort's two middle clear values."""
    scenes = _scenes(seed, k)
    got = reduce_dekad(scenes)
    obs = np.stack([s.dn * ((s.scl != 9) & (s.dn.min(axis=0) != 0)) for s in scenes])
    n = (obs[:, 0] != 0).sum(axis=0)
    for c, y, x in np.ndindex(obs.shape[1:]):
        clear = np.sort(obs[:, c, y, x][obs[:, c, y, x] != 0])
        m = len(clear)
        assert m == n[y, x] == got.n_clear[y, x]
        want = (clear[(m - 1) // 2], clear[m // 2]) if m else (0, 0)
        assert (got.lo[c, y, x], got.hi[c, y, x]) == want
