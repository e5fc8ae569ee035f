"""Onboarding through the real flows (issue #17 items 3-4): a farmers table without a
required column stops the season before any imagery, naming the file; two bad parcels both
appear in the stage's summary.json and in the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from flows.settings import SeasonParams
from geo.errors import TableError
from geo.types import GrowthStage


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64 px generated season as a local archive (a few seconds)."""
    from geo.synth import SynthConfig, write_archive

    root = tmp_path_factory.mktemp("tiny-archive")
    return write_archive(root, SynthConfig(seed=5, size_px=64, n_farmers=12))


def _copy(archive: Path, to: Path) -> Path:
    shutil.copytree(archive, to, ignore=shutil.ignore_patterns("cache"))
    return to


def _params(archive: Path, out: Path) -> SeasonParams:
    return SeasonParams(
        out=out,
        imagery={"source": "local", "archive": archive},
        stages=(GrowthStage.PRE_SOWING,),
        simulate_draws=False,
    )


def test_a_missing_farmers_column_stops_the_season_before_any_imagery(
    tiny_archive: Path, tmp_path: Path, prefect_harness: None
) -> None:
    from flows.season import season

    archive = _copy(tiny_archive, tmp_path / "archive")
    farmers = archive / "farmers.csv"
    table = pd.read_csv(farmers, dtype=str)
    table.drop(columns=["annual_debt_service_eur"]).to_csv(farmers, index=False)
    params = _params(archive, tmp_path / "out")
    with pytest.raises(TableError) as err:
        season(params)
    assert str(farmers) in str(err.value)
    assert "annual_debt_service_eur" in str(err.value)
    assert not list((params.out / "cache").glob("composite-*")), "imagery was composited"
    assert not (params.out / "stages").exists()
    assert not (params.out / "limits.csv").exists()


def test_two_bad_parcels_are_both_in_summary_json_and_the_report(
    tiny_archive: Path, tmp_path: Path, prefect_harness: None
) -> None:
    from flows.season import season

    archive = _copy(tiny_archive, tmp_path / "archive")
    path = archive / "parcels.parquet"
    parcels = gpd.read_parquet(path)
    wheat, giant = str(parcels["parcel_id"].iloc[0]), str(parcels["parcel_id"].iloc[1])
    parcels.loc[0, "declared_crop"] = "common_soft_wheat"
    x, y = parcels.geometry.iloc[1].centroid.coords[0]
    parcels.loc[1, "geometry"] = box(x, y, x + 3000, y + 3000)  # 900 ha
    parcels.to_parquet(path)
    params = _params(archive, tmp_path / "out")
    season(params)
    summary = json.loads((params.out / "stages" / "pre_sowing" / "summary.json").read_text())
    listed = {r["parcel_id"]: r["error"] for r in summary["rejects"]}
    assert set(listed) == {wheat, giant} and summary["rejected"] == 2
    assert "close legend names: winter_cereals" in listed[wheat]
    assert "giant parcel" in listed[giant]
    page = (params.out / "report" / "index.html").read_text(encoding="utf-8")
    assert "Rejected at onboarding" in page
    assert wheat in page and giant in page and "common_soft_wheat" in page


def test_a_refused_farmer_is_a_failure_with_his_line_and_the_others_go_on(
    tiny_archive: Path, tmp_path: Path
) -> None:
    from flows.tasks import load_parcels, unassessed_farmers

    archive = _copy(tiny_archive, tmp_path / "archive")
    farmers = archive / "farmers.csv"
    table = pd.read_csv(farmers, dtype=str, keep_default_na=False)
    pledged = set(gpd.read_parquet(archive / "parcels.parquet")["farmer_id"])
    bad = sorted(pledged)[0]
    table.loc[table["farmer_id"] == bad, "annual_debt_service_eur"] = "1,980"
    table.to_csv(farmers, index=False)
    board = load_parcels.fn(archive / "parcels.parquet", farmers)
    assert bad not in set(board.parcels["farmer_id"])
    assert set(board.parcels["farmer_id"]) == pledged - {bad}
    line = int(table.index[table["farmer_id"] == bad][0]) + 2
    failed = unassessed_farmers(board, pd.DataFrame({"farmer_id": board.parcels["farmer_id"]}))
    mine = [f for f in failed if f["farmer_id"] == bad]
    assert len(mine) == 1
    assert mine[0]["error"].startswith(f"{farmers} line {line}, column annual_debt_service_eur")
