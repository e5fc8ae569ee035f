"""A stage in chips: a corrupt scene fails only its chip's farmers, a re-run redoes only that
chip, and a stage built on a warm chip cache equals the same stage from scratch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from flows.settings import SeasonParams
from geo.chips import plan_chips
from geo.parcels import read_parcels
from geo.sources.base import SceneData
from geo.sources.local import scene_file_name, write_scene
from geo.types import BANDS, GrowthStage, Season
from scoring.layout import RunLayout

SEASON = Season(2026)


@pytest.fixture()
def archive(small_archive: Path, tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    shutil.copytree(small_archive, root)
    return root


def _corrupt_scene_under(archive: Path) -> tuple[str, str, set[str]]:
    """A corrupt scene file over the bottom of the southern chip only: (chip id, scene
    file name, the farmers with a parcel in that chip)."""
    parcels = read_parcels(archive / "parcels.parquet").parcels
    plan = plan_chips(parcels)
    assert len(plan) == 2, [c.chip_id for c in plan]
    south, north = sorted(plan.chips, key=lambda c: c.row)
    w = south.window
    top = w.bottom + 100.0
    assert top < north.window.bottom  # the bad file is under the southern chip only
    shape = (round((top - w.bottom) / 10), round((w.right - w.left) / 10))
    date = SEASON.start.replace(month=12, day=3)
    scene = SceneData(
        "bad",
        date,
        np.full((len(BANDS), *shape), 1000, np.uint16),
        np.full(shape, 4, np.uint8),
        Affine(10.0, 0.0, w.left, 0.0, -10.0, top),
        south.crs,
    )
    path = write_scene(archive / "scenes" / scene_file_name(date).replace(".tif", "b.tif"), scene)
    with rasterio.open(path) as src:  # where the pixels start: header and tags stay intact
        first = int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
    data = bytearray(path.read_bytes())
    data[first:] = b"\xff" * (len(data) - first)  # the tiles no longer decompress
    path.write_bytes(bytes(data))
    farmers = set(plan.parcels_of(parcels, south)["farmer_id"])
    return south.chip_id, path.name, farmers


def test_a_corrupt_scene_fails_only_its_chip_and_a_rerun_redoes_only_it(
    archive: Path, tmp_path: Path, prefect_harness: None
) -> None:
    from flows.season import set_limits
    from scoring.ledger import Ledger

    bad_chip, bad_file, bad_farmers = _corrupt_scene_under(archive)
    params = SeasonParams(
        out=tmp_path / "out",
        imagery={"source": "local", "archive": archive},
        stages=(GrowthStage.PRE_SOWING,),
        simulate_draws=False,
    )
    layout = RunLayout(params.out)
    set_limits(params, "run-1")
    summary = json.loads(layout.summary(GrowthStage.PRE_SOWING).read_text())
    (failed_chip,) = summary["failed_chips"]
    assert failed_chip["chip_id"] == bad_chip
    assert bad_file.removesuffix(".tif") in failed_chip["error"]
    failed = {f["farmer_id"] for f in summary["failures"]}
    assert failed == bad_farmers
    assert all(bad_chip in f["error"] for f in summary["failures"])
    decided = set(Ledger(params.ledger()).decisions(SEASON)["farmer_id"])
    assert decided and not decided & bad_farmers  # the others went on; no guess for these
    chips_dir = layout.chips_dir(GrowthStage.PRE_SOWING, "run-1")
    (good,) = [p for p in chips_dir.glob("*.parquet") if not p.stem.endswith("_curves")]
    stamp = good.stat().st_mtime_ns

    (archive / "scenes" / bad_file).unlink()  # the lender restores the archive
    set_limits(params, "run-1")
    summary = json.loads(layout.summary(GrowthStage.PRE_SOWING).read_text())
    assert summary["failed_chips"] == [] and summary["failed"] == 0
    assert good.stat().st_mtime_ns == stamp  # the finished chip was not redone
    assert (chips_dir / f"{bad_chip}.parquet").exists()
    decided_now = set(Ledger(params.ledger()).decisions(SEASON)["farmer_id"])
    assert bad_farmers <= decided_now


def test_incremental_stage_equals_the_stage_from_scratch(
    archive: Path, tmp_path: Path, prefect_harness: None
) -> None:
    from flows.season import assess

    warm = SeasonParams(out=tmp_path / "warm", imagery={"source": "local", "archive": archive})
    cold = SeasonParams(out=tmp_path / "cold", imagery={"source": "local", "archive": archive})
    assess(warm, GrowthStage.SOWING)
    n_cached = len(list((tmp_path / "warm" / "cache").rglob("*.npz")))
    incremental = pd.read_parquet(assess(warm, GrowthStage.FLOWERING))
    scratch = pd.read_parquet(assess(cold, GrowthStage.FLOWERING))
    assert n_cached > 0
    pd.testing.assert_frame_equal(incremental, scratch)
    curves = [pd.read_parquet(RunLayout(p.out).curves(GrowthStage.FLOWERING)) for p in (warm, cold)]
    pd.testing.assert_frame_equal(*curves)
