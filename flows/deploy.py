"""Deployments of the season's flows with schedules from the crop calendar.

``build_deployments`` turns :func:`flows.schedule.season_runs` into Prefect deployments: one
``set_limits``, one ``relimit`` (a cron schedule per stage and region, each carrying its own
parameters) and one ``acquire`` (every few days). ``cropcredit serve-flows`` serves them with
``prefect.serve``; ``prefect.yaml`` declares the same for ``prefect deploy``. Run ids are
deterministic per season and stage, so a retried or re-triggered run resumes instead of
deciding twice (the ledger's key is (season, stage, farmer)). :func:`apply_concurrency_limits`
creates the server's tag concurrency limit that throttles Sentinel Hub calls across every
scheduled run; ``serve-flows`` applies it before serving.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, cast

from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Interval

from flows.schedule import season_runs
from flows.season import acquire, relimit, set_limits
from flows.settings import SeasonParams
from flows.tasks import SENTINELHUB_TAG, set_concurrency_limit
from geo.types import Season

#: Task runs calling Sentinel Hub allowed at once by default, across all flow runs.
SENTINELHUB_CONCURRENCY = 2


def stage_run_id(season: int, stage: str) -> str:
    """The run id of a scheduled stage: the same on every retry of that stage."""
    return f"season-{season}-{stage}"


def apply_concurrency_limits(sentinelhub: int = SENTINELHUB_CONCURRENCY) -> None:
    """Create or update the Prefect server's limits the deployments rely on: at most
    ``sentinelhub`` task runs tagged ``sentinelhub`` at once (see
    :func:`flows.tasks.set_concurrency_limit`)."""
    set_concurrency_limit(SENTINELHUB_TAG, sentinelhub)


def build_deployments(
    params: SeasonParams, *, timezone: str = "Europe/Paris"
) -> list[RunnerDeployment]:
    """Deployments for a season, scheduled by stage and region in the lender's time zone."""
    runs = season_runs(Season(params.season), timezone=timezone)
    base: dict[str, Any] = {"params": json.loads(params.model_dump_json())}
    limit_schedules, relimit_schedules = [], []
    first = min(r.when for r in runs if r.flow == "acquire")
    acquire_schedules = [
        Interval(dt.timedelta(days=5), anchor_date=first, timezone=timezone, parameters=base)
    ]
    for run in runs:
        if run.flow == "acquire":
            continue
        assert run.stage is not None
        parameters = {
            **base,
            "params": {**base["params"], "regions": [run.region]},
            "run_id": stage_run_id(params.season, run.stage.value),
        }
        if run.flow == "set_limits":
            limit_schedules.append(
                Cron(run.cron, timezone=timezone, parameters=parameters, slug=run.region)
            )
        else:
            relimit_schedules.append(
                Cron(
                    run.cron,
                    timezone=timezone,
                    parameters={**parameters, "stage": run.stage.value},
                    slug=f"{run.region}-{run.stage.value}",
                )
            )
    tags = [f"season-{params.season}"]
    deployments = [
        set_limits.to_deployment(
            name=f"set-limits-{params.season}", schedules=limit_schedules, tags=tags
        ),
        relimit.to_deployment(
            name=f"relimit-{params.season}", schedules=relimit_schedules, tags=tags
        ),
        acquire.to_deployment(
            name=f"acquire-{params.season}", schedules=acquire_schedules, tags=tags
        ),
    ]
    return [cast(RunnerDeployment, d) for d in deployments]


def deployments_yaml(params: SeasonParams, *, timezone: str = "Europe/Paris") -> str:
    """``prefect.yaml`` for ``prefect deploy --all``: the same deployments and schedules as
    :func:`build_deployments`, for a lender running a Prefect server and work pool."""
    import yaml

    entry = {"set_limits": "set_limits", "relimit": "relimit", "acquire": "acquire"}
    deployments = []
    for dep in build_deployments(params, timezone=timezone):
        flow_name = (dep.flow_name or "").replace("-", "_")
        schedules = []
        for s in dep.schedules or []:
            sched: Any = s.schedule
            when = (
                {"cron": sched.cron}
                if hasattr(sched, "cron")
                else {
                    "interval": sched.interval.total_seconds(),
                    "anchor_date": sched.anchor_date.isoformat(),
                }
            )
            schedules.append(
                {
                    **when,
                    "timezone": sched.timezone,
                    **({"parameters": s.parameters} if s.parameters else {}),
                }
            )
        deployments.append(
            {
                "name": dep.name,
                "entrypoint": f"flows/season.py:{entry[flow_name]}",
                "tags": list(dep.tags),
                "work_pool": {"name": "cropcredit"},
                "schedules": schedules,
            }
        )
    doc = {
        "name": "cropcredit",
        "prefect-version": "3.8",
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $CROPCREDIT_HOME }}"
                }
            }
        ],
        "deployments": deployments,
    }
    header = (
        "# Generated by `cropcredit deployments-yaml` from data/stage_calendar.csv; do not edit.\n"
        "# prefect work-pool create cropcredit --type process && prefect deploy --all\n"
        "# cropcredit sentinelhub-limit 2   (throttles Sentinel Hub calls across runs)\n"
    )

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return header + yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, width=100)
