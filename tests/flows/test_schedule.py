"""The season's calendar of runs and the deployments built from it (schedules, parameters)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.deploy import build_deployments, deployments_yaml, stage_run_id
from flows.schedule import season_runs
from flows.settings import SeasonParams
from geo.calendar import load_stage_calendar, stage_dates
from geo.types import GrowthStage, Season

REPO = Path(__file__).resolve().parents[2]
SEASON = Season(2026)
PARIS = ZoneInfo("Europe/Paris")


def _regions() -> list[str]:
    return sorted(r for r in load_stage_calendar()["region"].unique() if r != "*")


def test_one_limit_run_per_stage_and_region_on_the_calendar_date() -> None:
    runs = season_runs(SEASON)
    limits = [r for r in runs if r.flow != "acquire"]
    assert len(limits) == len(_regions()) * len(GrowthStage)
    for region in _regions():
        dates = stage_dates(region, SEASON)
        mine = {r.stage: r for r in limits if r.region == region}
        assert set(mine) == set(GrowthStage)
        for stage, run in mine.items():
            assert run.when.date() == dates[stage]
            assert (
                run.when.utcoffset()
                == dt.datetime.combine(dates[stage], run.when.time(), PARIS).utcoffset()
            )
            assert run.when.hour == 6  # 06:00 local, summer time or not
            assert run.flow == ("set_limits" if stage == GrowthStage.PRE_SOWING else "relimit")
    assert runs == sorted(runs)


def test_acquisitions_every_5_days_until_harvest_an_hour_before_limits() -> None:
    runs = season_runs(SEASON, acquire_every_days=5)
    for region in _regions():
        acq = [r.when for r in runs if r.flow == "acquire" and r.region == region]
        assert acq[0].date() == SEASON.start
        assert {(b.date() - a.date()).days for a, b in zip(acq, acq[1:], strict=False)} == {5}
        harvest = stage_dates(region, SEASON)[GrowthStage.HARVEST]
        assert acq[-1].date() <= harvest < acq[-1].date() + dt.timedelta(days=5)
        assert {a.hour for a in acq} == {5}


def test_bad_time_zone_and_interval_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        season_runs(SEASON, timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="acquire_every_days"):
        season_runs(SEASON, acquire_every_days=0)


def test_schedule_command_prints_every_stage_and_region() -> None:
    result = CliRunner().invoke(app, ["schedule", "--season", "2026"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for region in _regions():
        assert region in result.output
    for stage in GrowthStage:
        assert stage.value in result.output
    n = len(_regions()) * len(GrowthStage)
    assert f"{n} limit runs" in result.output


def test_deployments_carry_one_validated_parameter_model_per_schedule() -> None:
    params = SeasonParams(season=2026)
    deps = {d.name: d for d in build_deployments(params, timezone="America/Sao_Paulo")}
    assert set(deps) == {"set-limits-2026", "relimit-2026", "acquire-2026"}
    relimit = deps["relimit-2026"]
    assert len(relimit.schedules or []) == len(_regions()) * (len(GrowthStage) - 1)
    seen = set()
    for s in relimit.schedules or []:
        assert s.schedule.timezone == "America/Sao_Paulo"  # type: ignore[union-attr]
        p = s.parameters
        SeasonParams.model_validate(p["params"])  # the flow's own model accepts it
        assert p["run_id"] == stage_run_id(2026, p["stage"])
        (region,) = p["params"]["regions"]
        seen.add((region, p["stage"]))
    assert len(seen) == len(relimit.schedules or [])
    assert len(deps["set-limits-2026"].schedules or []) == len(_regions())
    (acq,) = deps["acquire-2026"].schedules or []
    assert acq.schedule.interval == dt.timedelta(days=5)  # type: ignore[union-attr]


def test_shipped_prefect_yaml_is_what_deployments_yaml_writes() -> None:
    result = CliRunner().invoke(app, ["deployments-yaml", "--season", "2026"])
    assert result.exit_code == 0, result.output
    shipped = (REPO / "prefect.yaml").read_text()
    assert yaml.safe_load(result.output) == yaml.safe_load(shipped), (
        "prefect.yaml is stale: cropcredit deployments-yaml > prefect.yaml"
    )
    doc = yaml.safe_load(deployments_yaml(SeasonParams(season=2026)))
    for dep in doc["deployments"]:
        module, _, name = dep["entrypoint"].partition(":")
        assert (REPO / module).is_file() and name in (REPO / module).read_text()
        assert dep["schedules"], dep["name"]


def test_deployments_register_on_a_prefect_server(prefect_harness: None) -> None:
    from prefect.client.orchestration import get_client

    params = SeasonParams(season=2026)
    built = build_deployments(params)
    ids = [d.apply() for d in built]
    with get_client(sync_client=True) as client:
        for dep, dep_id in zip(built, ids, strict=True):
            stored = client.read_deployment(dep_id)
            assert stored.name == dep.name
            assert len(stored.schedules) == len(dep.schedules or [])
            assert f"season-{params.season}" in stored.tags
