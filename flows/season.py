"""The season's flows: onboard, acquire, assess, set_limits, relimit, and season over them.

Each flow reads like a table of contents; the work is in the tasks and the libraries.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger

from flows import chips, progress, tasks
from flows.settings import SeasonParams
from flows.versions import public_params, run_manifest
from geo.calendar import stage_dates
from geo.chip_cache import ChipCache
from geo.chips import plan_chips
from geo.composite import Composite
from geo.parcels import reject_records
from geo.types import GrowthStage, Season
from scoring.layout import RunLayout

log = logging.getLogger(__name__)


@dataclass
class StageOutcome:
    """What one stage's batch decided, with the evidence it used."""

    stage: GrowthStage
    decisions: pd.DataFrame
    assessment: pd.DataFrame
    curves: pd.DataFrame
    written: int
    composites: dict[dt.date, Composite] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)


#: The last onboarding of this process, by its inputs (files' size and mtime included):
#: a season onboards once, and every stage of the run reuses it.
_BOARDED: dict[tuple[object, ...], tasks.Onboarded] = {}


def _board_key(params: SeasonParams) -> tuple[object, ...] | None:
    paths = (params.parcels_path(), params.farmers_path())
    if not all(p.is_file() for p in paths):
        return None
    stamps = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    return (stamps, params.regions, params.imagery.model_dump_json())


def _board(params: SeasonParams) -> tasks.Onboarded:
    if params.imagery.source == "sentinelhub" and params.sentinelhub_concurrency:
        tasks.set_concurrency_limit(tasks.SENTINELHUB_TAG, params.sentinelhub_concurrency)
    key = _board_key(params)
    if key is not None and key in _BOARDED:
        return _BOARDED[key]
    # the source first: the generated one writes its archive (parcels included) on first use
    with tasks.imagery_tags(params.imagery):
        source = tasks.prepare_source(params.imagery)
    footprint = getattr(source, "footprint", None)  # a local archive knows its scenes' bounds
    imagery = footprint() if callable(footprint) else None
    board = tasks.load_parcels(
        params.parcels_path(), params.farmers_path(), params.regions, imagery=imagery
    )
    key = _board_key(params)  # the generated archive exists now
    if key is not None:
        _BOARDED.clear()
        _BOARDED[key] = board
    return board


@flow(name="onboard")
def onboard(params: SeasonParams) -> tasks.Onboarded:
    """Read, validate and reproject the lender's parcels; list overlapping pledges."""
    return _board(params)


@flow(name="acquire")
def acquire(params: SeasonParams, as_of: dt.date | None = None) -> dict[str, object]:
    """Fetch, cloud-mask and composite the season's imagery over the parcels up to ``as_of``
    (default: today, clipped to the season).

    Scheduled every few days, this keeps the composite cache warm for the next re-limit.
    Returns a summary; for Sentinel Hub it holds the processing units this run spent
    (0 when everything came from the cache).
    """
    season_ = Season(params.season)
    as_of = min(max(as_of or dt.date.today(), season_.start), season_.end)
    board = _board(params)
    plan = plan_chips(board.parcels)
    cache = ChipCache(params.imagery.cache_dir or RunLayout(params.out).cache)
    read: dict[str, float] = {}
    observed = 0.0
    with tasks.imagery_tags(params.imagery):  # keeping the source for its units
        source = tasks.prepare_source(params.imagery)
        for chip in plan.chips:
            refs = source.search(chip.window, season_.start, as_of)
            composite = chips.chip_composite(source, chip, refs, season_, as_of, cache, read)
            observed = max(observed, float(composite.observed.any(axis=(1, 2)).sum()))
        # a small book's chips pasted into one composite (the review app's map layers)
        every = dict.fromkeys(board.parcels["region"], as_of)
        chips.write_book_composite(params, board, plan, every, source)
    summary: dict[str, object] = {
        "as_of": as_of,
        "chips": len(plan),
        "scenes_read": int(read.get("scenes_read", 0)),
        "dekads_observed": observed,
    }
    units = getattr(source, "processing_units", None)
    if isinstance(units, float):
        summary["processing_units"] = round(units, 4)
        get_run_logger().info("Sentinel Hub: %.4f processing units spent", units)
    return summary


@flow(name="assess")
def assess(params: SeasonParams, stage: GrowthStage) -> Path:
    """Crop type, planted area and health per parcel at ``stage``; writes the table."""
    board = _board(params)
    as_of = _stage_dates(params, board, stage)
    with tasks.task_runner(params) as runner:
        book = chips.assess_book(
            params,
            board,
            plan_chips(board.parcels),
            as_of,
            stage,
            params.run_id or "assess",
            runner,
        )
    layout = RunLayout(params.out)
    layout.stage_dir(stage).mkdir(parents=True, exist_ok=True)
    book.assessment.to_parquet(layout.assessment(stage))
    book.curves.to_parquet(layout.curves(stage))
    return layout.assessment(stage)


def _stage_dates(
    params: SeasonParams, board: tasks.Onboarded, stage: GrowthStage
) -> dict[str, dt.date]:
    season = Season(params.season)
    return {r: stage_dates(r, season)[stage] for r in sorted(board.parcels["region"].unique())}


def _limit_stage(params: SeasonParams, stage: GrowthStage, run_id: str) -> StageOutcome:
    from scoring.ledger import Ledger

    logger = get_run_logger()
    season = Season(params.season)
    board = _board(params)
    plan = plan_chips(board.parcels)
    as_of_by_region = _stage_dates(params, board, stage)
    params.out.mkdir(parents=True, exist_ok=True)  # the default ledger lives there
    ledger = Ledger(params.ledger())
    ledger.create()
    previous = None if stage == GrowthStage.PRE_SOWING else ledger.current_limits(season)
    drawn = ledger.drawn(season)
    manifest = run_manifest(params)
    done: list[pd.DataFrame] = []
    written = 0
    with tasks.task_runner(params) as runner:
        # one task per chip, then the farmers whose parcels were all assessed are scored
        book = chips.assess_book(params, board, plan, as_of_by_region, stage, run_id, runner)
        assessment, curves, failed = chips.scorable(board, book)
        batches = tasks.farmer_batches(assessment, params.batch_size)
        with progress.step(f"{stage.value}: scoring farmer batches", len(batches)) as advance:
            futures = tasks.submit_scores(runner, batches, board, params, stage, previous, drawn)
            for part, future in zip(batches, futures, strict=True):
                try:
                    decisions, features = future.result()
                except Exception as exc:  # one bad farmer must not sink the batch: isolate it
                    logger.warning("batch failed (%s); scoring its farmers one by one", exc)
                    decisions, features, bad = _one_by_one(
                        part, board, params, stage, previous, drawn
                    )
                    failed += bad
                    if decisions.empty:
                        advance(1)
                        continue
                # one transaction per batch: a crash loses at most the batch in flight, and a
                # re-run with the same run id skips the farmers already decided
                written += ledger.record_decisions(
                    run_id,
                    season,
                    decisions,
                    model_version=manifest["model_version"],
                    policy_version=manifest["policy_version"],
                    config=public_params(params),
                )
                if params.simulate_draws:
                    from scoring.drawdown import simulate_draws

                    draws = simulate_draws(decisions, features, stage, previous=drawn)
                    ledger.record_draws(season, stage, draws)
                done.append(decisions)
                advance(1)
                if params.throttle_s:
                    time.sleep(params.throttle_s)
    decisions = pd.concat(done, ignore_index=True) if done else tasks.empty_decisions()
    _write_stage(
        RunLayout(params.out).stage_dir(stage),
        assessment,
        curves,
        decisions,
        failed,
        rejects=reject_records(board.rejects),
        failed_chips=book.failed_chips,
    )
    logger.info(
        "%s: %d decisions (%d new in the ledger), %d farmers failed: %s",
        stage.value,
        len(decisions),
        written,
        len(failed),
        decisions["action"].value_counts().to_dict(),
    )
    # the report's maps: the chips' composites pasted into the book's box (small books only)
    composites = (
        chips.write_book_composite(params, board, plan, as_of_by_region)
        if (stage == params.stages[-1])
        else {}
    )
    return StageOutcome(stage, decisions, assessment, curves, written, composites, failed)


def _one_by_one(
    part: pd.DataFrame,
    board: tasks.Onboarded,
    params: SeasonParams,
    stage: GrowthStage,
    previous: pd.DataFrame | None,
    drawn: pd.Series,
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, str]]]:
    """Score a failed batch farmer by farmer; return the good decisions and the failures."""
    good: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    bad: list[dict[str, str]] = []
    for farmer_id, rows in part.groupby("farmer_id", sort=True):
        try:
            good.append(tasks.score.fn(rows, board, params, stage, previous, drawn))
        except Exception as exc:
            get_run_logger().error("farmer %s failed: %s", farmer_id, exc)
            bad.append({"farmer_id": str(farmer_id), "error": f"{type(exc).__name__}: {exc}"})
    if not good:
        return tasks.empty_decisions(), pd.DataFrame(), bad
    return (
        pd.concat([g[0] for g in good], ignore_index=True),
        pd.concat([g[1] for g in good], ignore_index=True),
        bad,
    )


def _write_stage(
    stage_dir: Path,
    assessment: pd.DataFrame,
    curves: pd.DataFrame,
    decisions: pd.DataFrame,
    failed: list[dict[str, str]],
    rejects: list[dict[str, object]] | None = None,
    failed_chips: list[dict[str, Any]] | None = None,
) -> None:
    stage_dir.mkdir(parents=True, exist_ok=True)
    assessment.to_parquet(stage_dir / "assessment.parquet")
    curves.to_parquet(stage_dir / "curves.parquet")
    decisions.assign(
        reasons=decisions["reasons"].map(json.dumps),
        flags=decisions["flags"].map(json.dumps),
        evidence=decisions["evidence"].map(lambda e: json.dumps(e, default=str)),
    ).to_parquet(stage_dir / "decisions.parquet")
    summary = {
        "done": int((~decisions["needs_review"].astype(bool)).sum()),
        "held": int(decisions["needs_review"].astype(bool).sum()),
        "failed": len(failed),
        "actions": {str(k): int(v) for k, v in decisions["action"].value_counts().items()},
        "failures": failed,
        "rejected": len(rejects or []),
        "rejects": list(rejects or []),  # every onboarding reject, with its reason
        "failed_chips": list(failed_chips or []),  # chips whose parcels were not assessed
    }
    (stage_dir / "summary.json").write_text(json.dumps(summary, indent=2))


@flow(name="set_limits")
def set_limits(params: SeasonParams, run_id: str) -> StageOutcome:
    """Pre-sowing limits for every farmer."""
    return _limit_stage(params, GrowthStage.PRE_SOWING, run_id)


@flow(name="relimit")
def relimit(params: SeasonParams, stage: GrowthStage, run_id: str) -> StageOutcome:
    """Re-limit every farmer at a growth stage with what the season shows so far."""
    if stage == GrowthStage.PRE_SOWING:
        raise ValueError("pre-sowing limits are set by the set_limits flow, not relimit")
    return _limit_stage(params, stage, run_id)


@flow(name="season")
def season(params: SeasonParams) -> list[StageOutcome]:
    """A whole season: onboard, then each stage's limits, then the report."""
    from flows.report import write_report
    from scoring.ledger import Ledger

    run_id = params.run_id or f"season-{params.season}-{uuid.uuid4().hex[:8]}"
    params.out.mkdir(parents=True, exist_ok=True)
    manifest = run_manifest(params)
    RunLayout(params.out).run_json.write_text(
        json.dumps({"run_id": run_id, **manifest}, indent=2, default=str)
    )
    ledger = Ledger(params.ledger())
    ledger.create()
    ledger.start_run(
        run_id,
        "season",
        manifest["params"],
        code_version=manifest["code_version"],
        model_version=manifest["model_version"],
        policy_version=manifest["policy_version"],
    )
    board = onboard(params)
    outcomes: list[StageOutcome] = []
    for stage in progress.track(params.stages, f"season {params.season}", len(params.stages)):
        if stage == GrowthStage.PRE_SOWING:
            outcomes.append(set_limits(params, run_id))
        else:
            outcomes.append(relimit(params, stage, run_id))
    write_report(params, board, outcomes)
    ledger.finish_run(run_id)
    return outcomes


def default_outputs(out: Path) -> dict[str, Path]:
    """Where a season run writes its outputs."""
    return RunLayout(out).outputs()
