"""Prefect tasks: small typed wrappers around library calls. No maths here.

Only network-bound work retries; big in-memory inputs (composites, probability maps) are not
hashed for Prefect's cache (``NO_CACHE``): acquisition caches its composites on disk itself,
keyed by the scenes it read. Task runs that call Sentinel Hub carry the tag ``sentinelhub``
(:func:`imagery_tags`), so a tag concurrency limit on the Prefect server
(:func:`set_concurrency_limit`) caps how many of them run at once across every flow run.
Importing this module routes the package loggers into Prefect's run logs
(:func:`route_package_logs`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from prefect import get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows import progress
from flows.settings import SeasonParams, SourceParams
from geo.composite import Composite, composite_dekads
from geo.parcels import find_overlaps, read_parcels
from geo.sources.base import Bounds, SceneData, SceneRef, TileSource
from geo.sources.factory import open_source
from geo.types import GrowthStage, Season
from scoring.farmers import read_farmers, set_aside_parcels

log = logging.getLogger(__name__)

#: Tag of the task runs that call Sentinel Hub: a tag concurrency limit throttles them.
SENTINELHUB_TAG = "sentinelhub"
#: The package loggers whose records reach Prefect's run logs.
PACKAGE_LOGGERS: tuple[str, ...] = ("geo", "vision", "scoring", "flows")


def route_package_logs() -> None:
    """Send the package loggers' records to Prefect's run logs (and the API).

    ``flows/__init__`` sets ``PREFECT_LOGGING_EXTRA_LOGGERS``, which Prefect reads when it
    sets up logging on import. A process that imported Prefect first (a Prefect worker
    running a deployment, a Dask worker) missed it: this attaches the handlers of Prefect's
    ``prefect.extra`` logger to the package loggers, once, and lowers a package logger's
    level to ``prefect.extra``'s when the root's is stricter (never raises it).
    """
    extra = logging.getLogger("prefect.extra")
    for name in PACKAGE_LOGGERS:
        logger = logging.getLogger(name)
        for handler in extra.handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        if extra.level and logger.getEffectiveLevel() > extra.level:
            logger.setLevel(extra.level)


route_package_logs()


def imagery_tags(source: SourceParams) -> AbstractContextManager[object]:
    """Tags for the task runs started inside: ``sentinelhub`` when ``source`` is Sentinel Hub.

    Wrap every task call that reaches the imagery source in it, so that the Prefect server's
    tag concurrency limit (:func:`set_concurrency_limit`) applies to those task runs.
    """
    return tags(SENTINELHUB_TAG) if source.source == "sentinelhub" else nullcontext()


def set_concurrency_limit(tag: str, limit: int) -> None:
    """Create or update the Prefect server's limit of ``limit`` concurrent task runs tagged
    ``tag`` (the server of ``PREFECT_API_URL``, else the local ephemeral one).

    Prefect 3.8 keeps it as the global concurrency limit ``tag:<tag>``; before a tagged task
    run starts, the task engine takes one of its slots (waiting while none is free) under a
    60 s lease renewed while the task runs, so a killed process frees its slot within a
    minute. The same as ``prefect concurrency-limit create <tag> <limit>``.

    Raises:
        ValueError: ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"concurrency limit {limit} for tag {tag!r}: expected 1 or more")
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=tag, concurrency_limit=limit)
    _forget_missing_limits()
    log.info("at most %d task runs tagged %r run at once", limit, tag)


def _forget_missing_limits() -> None:
    """Drop Prefect's in-process memory of tags without a limit (kept 5 s), so a limit set here
    throttles the very next task runs of this process, not only those 5 s later."""
    try:
        from prefect.concurrency import services
    except ImportError:  # pragma: no cover - a Prefect without the cache
        return
    cache = getattr(services, "_no_limits_cache", None)
    lock = getattr(services, "_cache_lock", None)
    if cache is not None and lock is not None:
        with lock:
            cache.clear()


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run logger inside a flow, the module logger when a task's ``.fn`` is called."""
    try:
        return get_run_logger()  # type: ignore[return-value]
    except MissingContextError:
        return log


@dataclass
class Onboarded:
    """What onboarding produced: good parcels (UTM), rejects, overlaps and farmers."""

    parcels: gpd.GeoDataFrame
    rejects: pd.DataFrame
    overlaps: pd.DataFrame
    farmers: pd.DataFrame


@task(name="prepare-source", retries=2, retry_delay_seconds=[5, 20], cache_policy=NO_CACHE)
def prepare_source(params: SourceParams) -> TileSource:
    """Open the imagery source (the generated one writes its archive on first use)."""
    return open_source(params)


@task(name="read-parcels", cache_policy=NO_CACHE)
def load_parcels(
    parcels_path: Path,
    farmers_path: Path,
    regions: tuple[str, ...] = (),
    imagery: Bounds | None = None,
) -> Onboarded:
    """Read and validate parcels, list overlapping pledges, read the farmers table.

    Overlaps are found over every parcel before ``regions`` narrows the batch, so a pledge
    that overlaps a parcel in another region is still caught. ``imagery``, the source's
    footprint when it knows it, recognises a file with swapped lon/lat, and parcels wholly
    outside it are rejected (named, with the fix) while the others go on.
    """
    logger = _logger()
    farmers, farmer_rejects = read_farmers(farmers_path)  # a bad file stops here, before imagery
    parcel_set = read_parcels(parcels_path, imagery=imagery, outside="reject")
    overlaps = find_overlaps(parcel_set.parcels)
    parcels, rejects = set_aside_parcels(parcel_set, farmers, farmer_rejects, farmers_path)
    if regions:
        parcels = parcels[parcels["region"].isin(regions)]
        farmers = farmers[farmers["farmer_id"].isin(parcels["farmer_id"])]
    logger.info(
        "onboarded %d parcels of %d farmers (%d rejected, %d overlapping pairs)",
        len(parcels),
        parcels["farmer_id"].nunique(),
        len(rejects),
        len(overlaps) // 2,
    )
    return Onboarded(parcels, rejects, overlaps, farmers)


def read_scenes(
    source: TileSource, refs: Sequence[SceneRef], bounds: Bounds
) -> Iterator[SceneData]:
    """Read ``refs`` over ``bounds`` one at a time, in the order given: the one place every
    path (box composites, chips) reads scenes."""
    for ref in refs:
        yield source.read(ref, bounds)


@task(name="acquire-composite", cache_policy=NO_CACHE)
def acquire_composite(
    source: TileSource, bounds: Bounds, season: Season, as_of: dt.date, cache_dir: Path
) -> Composite:
    """Search, read, mask and composite every scene up to ``as_of`` (cached on disk)."""
    logger = _logger()
    refs = source.search(bounds, season.start, as_of)
    key = hashlib.sha256(
        json.dumps(
            [source.name, str(bounds), str(as_of), [r.scene_id for r in refs]], sort_keys=True
        ).encode()
    ).hexdigest()[:16]
    path = cache_dir / f"composite-{as_of:%Y%m%d}-{key}.npz"
    if path.exists():
        logger.info("composite for %s from cache (%d scenes)", as_of, len(refs))
        return Composite.from_npz(path)
    logger.info("compositing %d scenes up to %s", len(refs), as_of)
    scenes = progress.track(
        read_scenes(source, refs, bounds), f"reading scenes up to {as_of}", len(refs)
    )
    composite = composite_dekads(scenes, season, as_of)
    cache_dir.mkdir(parents=True, exist_ok=True)
    composite.to_npz(path)
    return composite


@functools.lru_cache(maxsize=2)
def _segmenter(path: str | None) -> object:
    from vision.model import load_segmenter

    return load_segmenter(Path(path) if path else None)


@functools.lru_cache(maxsize=1)
def _reference_curves() -> pd.DataFrame:
    """The reference stage curves, read once per worker process."""
    from vision.health import load_reference_curves

    return load_reference_curves()


@task(name="assess-parcels", cache_policy=NO_CACHE)
def assess(
    parcels: gpd.GeoDataFrame,
    composite: Composite,
    segmenter: Path | None = None,
    tile: int = 256,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Segment the composite (tiles of ``tile`` px) and summarise each parcel: crop, area,
    health. The model input is prepared by the segmenter (``Segmenter.prepare``)."""
    from scoring.features import FeatureConfig
    from vision.assess import assess_parcels
    from vision.infer import predict_proba

    seg = _segmenter(str(segmenter) if segmenter else None)
    proba = predict_proba(seg, seg.prepare(composite.data), tile=tile)  # type: ignore[attr-defined,arg-type]
    table, curves = assess_parcels(
        parcels,
        composite,
        proba,
        reference_curves=_reference_curves(),
        # the stage's error matrix widens the planted-area interval by the crop's precision
        # and recall (issue #8)
        area_error=seg.error_matrix(composite.as_of),  # type: ignore[attr-defined]
        parcel_temperature=seg.parcel_temperature,  # type: ignore[attr-defined]
        # health follows the detected crop only where the features would call the declaration
        # wrong: a weaker contradiction is judged against the declared crop
        min_confidence=FeatureConfig().contradict_confidence,
    )
    _logger().info(
        "assessed %d parcels: %s",
        len(table),
        table["health_class"].value_counts().to_dict(),
    )
    return table, curves, proba


def farmer_batches(assessment: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """Split parcel rows into batches of at most ``size`` whole farmers, in farmer order."""
    farmers = sorted(assessment["farmer_id"].unique())
    return [
        assessment[assessment["farmer_id"].isin(farmers[i : i + size])]
        for i in range(0, len(farmers), size)
    ]


def unassessed_farmers(board: Onboarded, assessment: pd.DataFrame) -> list[dict[str, str]]:
    """Farmers with no usable parcel (every parcel rejected at onboarding, or the farmer's
    line refused), with why."""
    seen = set(assessment["farmer_id"])
    rejects = board.rejects
    refused = set(rejects["farmer_id"].dropna().astype(str)) if len(rejects) else set()
    out = []
    for farmer_id in sorted((set(board.farmers["farmer_id"]) | refused) - seen):
        mine = rejects[rejects.get("farmer_id", pd.Series(dtype=str)) == farmer_id]
        if "parcel_id" in mine and mine["parcel_id"].isna().any():  # his refused farmer line
            mine = mine[mine["parcel_id"].isna()]
        why = "; ".join(mine["error"].astype(str)) if len(mine) else "no parcel pledged"
        out.append({"farmer_id": str(farmer_id), "error": why})
    return out


def empty_decisions() -> pd.DataFrame:
    """A decisions frame with no rows (every batch failed)."""
    from scoring.policy import DECISION_COLUMNS

    return pd.DataFrame({c: pd.Series(dtype=object) for c in DECISION_COLUMNS})


def _api_url() -> str:
    """The Prefect API this process talks to: ``PREFECT_API_URL``, else the ephemeral server
    it started (started now if need be)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if url:
        return str(url)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server.api_url


def task_runner(params: SeasonParams) -> TaskRunner[Any]:
    """The runner for per-batch tasks: threads on one machine, or a Dask cluster (an existing
    scheduler at ``dask_address``, else a LocalCluster of ``dask_workers`` processes)."""
    if params.task_runner == "dask" or params.dask_address:  # an address means that cluster
        from prefect_dask import DaskTaskRunner

        if params.dask_address:
            return DaskTaskRunner(address=params.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": params.dask_workers,
                "threads_per_worker": 1,
                # the workers report to this process's Prefect API: without it each would
                # start an ephemeral server of its own
                "env": {"PREFECT_API_URL": _api_url()},
            }
        )
    return ThreadPoolTaskRunner(max_workers=2)


@functools.lru_cache(maxsize=2)
def _economics(path: Path | None) -> Any:
    """The economics table, read once per worker process (per override path)."""
    from scoring.tables import load_economics

    return load_economics(override=path)


@functools.lru_cache(maxsize=2)
def _pd_model(path: Path | None) -> Any:
    """The PD model, loaded once per worker process (per path)."""
    from scoring.pd_model import PDModel, load_shipped_pd

    return PDModel.load(path) if path else load_shipped_pd()


@task(name="score-farmers", cache_policy=NO_CACHE)
def score(
    assessment: pd.DataFrame,
    board: Onboarded,
    params: SeasonParams,
    stage: GrowthStage,
    previous: pd.DataFrame | None,
    drawn: pd.Series,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features, PD with reasons, and the limit policy for one stage's batch."""
    from scoring.features import farmer_features
    from scoring.policy import PolicyConfig, decide_batch

    season = Season(params.season)
    economics = _economics(params.economics)
    policy = PolicyConfig()
    features = farmer_features(
        assessment,
        board.farmers[board.farmers["farmer_id"].isin(assessment["farmer_id"])],
        board.overlaps,
        economics,
        season,
        stage,
        cfg=policy.features,
    )
    model = _pd_model(params.pd_model)
    pd_ = model.predict(features)
    reasons = model.reasons(features)
    decisions = decide_batch(features, pd_, reasons, previous, drawn, stage, policy)
    return decisions, features


def submit_scores(
    runner: TaskRunner[Any],
    batches: list[pd.DataFrame],
    board: Onboarded,
    params: SeasonParams,
    stage: GrowthStage,
    previous: pd.DataFrame | None,
    drawn: pd.Series,
) -> list[Any]:
    """One :func:`score` task per farmer batch on ``runner``; their futures, in batch order."""
    return [
        runner.submit(
            score,
            {
                "assessment": part,
                "board": board,
                "params": params,
                "stage": stage,
                "previous": previous,
                "drawn": drawn,
            },
        )
        for part in batches
    ]
