"""One task per chip: search, read the window, mask, composite (through the chip cache),
segment and assess its parcels; the stage gathers the chips before scoring.

A chip that fails (a corrupt scene, the source down) fails only its parcels: its farmers are
listed with the reason and left at their previous limit, and ``summary.json`` names the chip
(``failed_chips``). Finished chips are kept under the run's layout
(:meth:`scoring.layout.RunLayout.chip_result`), so a re-run with the same run id redoes only
the chips that failed. Only network steps retry: the sources' HTTP clients retry 429/5xx and
timeouts themselves; a chip's failure is a result, not an exception.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner

from flows import tasks
from flows.settings import SeasonParams, SourceParams
from geo.chip_cache import ChipCache, DekadStack, assemble, dekad_key, reduce_dekad
from geo.chips import Chip, ChipPlan
from geo.composite import Composite
from geo.errors import CropCreditError
from geo.sources.base import SceneRef, TileSource
from geo.sources.factory import open_source
from geo.types import GrowthStage, Season
from scoring.layout import RunLayout

log = logging.getLogger(__name__)

#: Window side of the tiled inference inside a chip: one forward pass over a whole chip window
#: (576 px with the halo) when it fits; larger windows (parcels stretching out) are tiled.
CHIP_TILE = 640


@dataclass
class ChipResult:
    """What one chip gave the stage: its parcels' rows and curves, or why it failed."""

    chip_id: str
    assessment: pd.DataFrame
    curves: pd.DataFrame
    parcel_ids: list[str]
    error: str | None = None
    stats: dict[str, float] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def _source(params: SourceParams) -> TileSource:
    """The imagery source, opened once per worker process (the generated one writes its
    archive on first use, in the flow process, before any chip runs)."""
    return open_source(params)


def _refs_by_dekad(
    refs: Sequence[SceneRef], season: Season, as_of: dt.date
) -> dict[int, list[SceneRef]]:
    out: dict[int, list[SceneRef]] = {}
    for r in sorted(refs, key=lambda r: (r.date, r.scene_id)):
        if season.start <= r.date <= as_of:
            out.setdefault(season.dekad_index(r.date), []).append(r)
    return out


def chip_composite(
    source: TileSource,
    chip: Chip,
    refs: Sequence[SceneRef],
    season: Season,
    as_of: dt.date,
    cache: ChipCache,
    stats: dict[str, float] | None = None,
) -> Composite:
    """The chip window's composite up to ``as_of``: cached dekads whose scenes did not change
    are loaded, the others read (:func:`flows.tasks.read_scenes`), masked and reduced.

    ``stats`` (if given) gets ``scenes_read``, ``bytes_read``, ``dekads_cached``.

    Raises:
        ImageryError: no scene up to ``as_of``, or a scene cannot be read (names it).
    """
    stats = stats if stats is not None else {}
    dates = season.dekads()
    dekads: dict[int, DekadStack] = {}
    for step, group in _refs_by_dekad(refs, season, as_of).items():
        key = dekad_key(source.name, chip.window, [r.scene_id for r in group])
        stack = cache.load(chip.chip_id, dates[step], key)
        if stack is None:
            scenes = list(tasks.read_scenes(source, group, chip.window))
            stats["scenes_read"] = stats.get("scenes_read", 0) + len(scenes)
            stats["bytes_read"] = stats.get("bytes_read", 0) + sum(
                s.dn.nbytes + s.scl.nbytes for s in scenes
            )
            stack = reduce_dekad(scenes)
            cache.save(chip.chip_id, dates[step], key, stack)
        else:
            stats["dekads_cached"] = stats.get("dekads_cached", 0) + 1
        dekads[step] = stack
    from geo.sources.base import Grid

    grid = Grid.of(chip.window, 10.0)
    return assemble(dekads, season, as_of, grid.transform, chip.crs, (grid.height, grid.width))


@task(name="assess-chip", cache_policy=NO_CACHE)
def assess_chip(
    chip: Chip,
    parcels: gpd.GeoDataFrame,
    imagery: SourceParams,
    season: Season,
    as_of_by_region: dict[str, dt.date],
    cache_dir: Path,
    segmenter: Path | None = None,
) -> ChipResult:
    """Composite, segment and assess one chip's parcels (in the chip's CRS), per region date.

    Never raises for the chip's own data: a failure comes back as ``ChipResult.error`` with
    the chip, the stage date and the cause, so the other chips go on.
    """
    started = time.perf_counter()
    stats: dict[str, float] = {"pixels": float(chip.pixels)}
    ids = parcels["parcel_id"].astype(str).tolist()
    try:
        source = _source(imagery)
        refresh = getattr(source, "refresh", None)  # a local archive re-lists its files: the
        if callable(refresh):  # worker's source outlives a stage, the archive may have changed
            refresh()
        cache = ChipCache(cache_dir)
        wanted = {r: as_of_by_region[r] for r in sorted(parcels["region"].unique())}
        refs = source.search(chip.window, season.start, max(wanted.values()))
        stats["scenes"] = float(len(refs))
        tables, curves = [], []
        for as_of in sorted(set(wanted.values())):
            composite = chip_composite(source, chip, refs, season, as_of, cache, stats)
            mine = parcels[parcels["region"].map(wanted) == as_of]
            t0 = time.perf_counter()
            table, curve, _ = tasks.assess.fn(mine, composite, segmenter, tile=CHIP_TILE)
            stats["segment_s"] = stats.get("segment_s", 0.0) + time.perf_counter() - t0
            tables.append(table)
            curves.append(curve)
            del composite
    except (CropCreditError, OSError, ValueError, RuntimeError) as exc:
        error = f"chip {chip.chip_id}: {type(exc).__name__}: {exc}"
        tasks._logger().error("%s; its %d parcels fail at this stage", error, len(ids))
        return ChipResult(chip.chip_id, pd.DataFrame(), pd.DataFrame(), ids, error, stats)
    stats["seconds"] = time.perf_counter() - started
    stats["worker_pid"] = float(os.getpid())
    # this worker's peak resident memory so far, MB (Linux reports KiB)
    stats["worker_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return ChipResult(
        chip.chip_id,
        pd.concat(tables, ignore_index=True),
        pd.concat(curves, ignore_index=True),
        ids,
        None,
        stats,
    )


@dataclass
class BookAssessment:
    """A stage's gathered chips."""

    assessment: pd.DataFrame
    curves: pd.DataFrame
    failed_chips: list[dict[str, Any]]
    stats: dict[str, dict[str, float]]


def assess_book(
    params: SeasonParams,
    board: tasks.Onboarded,
    plan: ChipPlan,
    as_of_by_region: dict[str, dt.date],
    stage: GrowthStage,
    run_id: str,
    runner: TaskRunner[Any],
) -> BookAssessment:
    """One :func:`assess_chip` per chip not yet finished in this run, on ``runner``; gathers
    every chip's rows (finished ones from disk) and writes the new ones under the layout."""
    layout = RunLayout(params.out)
    season = Season(params.season)
    cache = params.imagery.cache_dir or layout.cache
    done: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    pending: list[Chip] = []
    for chip in plan.chips:
        table_path, curves_path = layout.chip_result(stage, run_id, chip.chip_id)
        if table_path.exists() and curves_path.exists():
            done.append((pd.read_parquet(table_path), pd.read_parquet(curves_path)))
        else:
            pending.append(chip)
    if done:
        tasks._logger().info(
            "%s: %d of %d chips already finished in run %s",
            stage.value,
            len(done),
            len(plan),
            run_id,
        )
    with tasks.imagery_tags(params.imagery):
        futures = [
            runner.submit(
                assess_chip,
                {
                    "chip": chip,
                    "parcels": plan.parcels_of(board.parcels, chip),
                    "imagery": params.imagery,
                    "season": season,
                    "as_of_by_region": as_of_by_region,
                    "cache_dir": cache,
                    "segmenter": params.segmenter,
                },
            )
            for chip in pending
        ]
    failed: list[dict[str, Any]] = []
    stats: dict[str, dict[str, float]] = {}
    for chip, future in zip(pending, futures, strict=True):
        try:
            result: ChipResult = future.result()
        except Exception as exc:  # a worker lost: the chip fails, the others go on
            result = ChipResult(chip.chip_id, pd.DataFrame(), pd.DataFrame(), [], str(exc))
            result.parcel_ids = list(plan.assignment.index[plan.assignment == chip.chip_id])
        stats[chip.chip_id] = result.stats
        if result.error is not None:
            failed.append(
                {"chip_id": chip.chip_id, "parcels": result.parcel_ids, "error": result.error}
            )
            continue
        table_path, curves_path = layout.chip_result(stage, run_id, chip.chip_id)
        table_path.parent.mkdir(parents=True, exist_ok=True)
        # curves first: a chip counts as finished once its assessment file exists
        result.curves.to_parquet(curves_path)
        result.assessment.to_parquet(table_path)
        done.append((result.assessment, result.curves))
    tables = [t for t, _ in done if len(t)]
    curves = [c for _, c in done if len(c)]
    if not tables:
        return BookAssessment(pd.DataFrame(), pd.DataFrame(), failed, stats)
    order = {p: i for i, p in enumerate(board.parcels["parcel_id"].astype(str))}
    assessment = pd.concat(tables, ignore_index=True)
    assessment = assessment.sort_values("parcel_id", key=lambda s: s.map(order), kind="stable")
    return BookAssessment(
        assessment.reset_index(drop=True),
        pd.concat(curves, ignore_index=True),
        failed,
        stats,
    )


def failed_farmers(board: tasks.Onboarded, failed_chips: list[dict[str, Any]]) -> dict[str, str]:
    """Farmer id -> why, for every farmer with a parcel in a failed chip: such a farmer is not
    scored at this stage (absence of evidence never cuts a limit; the previous one stands)."""
    why: dict[str, str] = {}
    parcels = board.parcels.set_index(board.parcels["parcel_id"].astype(str))["farmer_id"]
    for chip in failed_chips:
        for pid in chip["parcels"]:
            farmer = str(parcels.get(pid, ""))
            if farmer and farmer not in why:
                why[farmer] = f"parcel {pid} not assessed: {chip['error']}; re-run the stage"
    return why


def scorable(
    board: tasks.Onboarded, book: BookAssessment
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, str]]]:
    """The rows to score (farmers with every parcel assessed), their curves, and the farmers
    that fail at this stage with why (no usable parcel, or a parcel in a failed chip)."""
    why = failed_farmers(board, book.failed_chips)
    assessment, curves = book.assessment, book.curves
    if assessment.empty:
        assessment = pd.DataFrame({"parcel_id": pd.Series(dtype=str), "farmer_id": []})
    keep = ~assessment["farmer_id"].astype(str).isin(why)
    assessment = assessment[keep].reset_index(drop=True)
    if len(curves):
        curves = curves[curves["parcel_id"].isin(assessment["parcel_id"])].reset_index(drop=True)
    failed = [
        {"farmer_id": f["farmer_id"], "error": why.get(f["farmer_id"], f["error"])}
        for f in tasks.unassessed_farmers(board, assessment)
    ]
    return assessment, curves, failed


#: A book whose box is larger than this (10 m pixels) gets no whole-book composite for the
#: report's maps (it would not fit a worker's memory); its chips are still assessed.
MAX_BOOK_COMPOSITE_PX = 2048 * 2048


def book_composites(
    params: SeasonParams,
    board: tasks.Onboarded,
    plan: ChipPlan,
    as_of_by_region: dict[str, dt.date],
    source: TileSource | None = None,
) -> dict[dt.date, Composite]:
    """For the report's maps: the chips' composites at the stage's last date pasted into the
    book's box (each chip's core), from the chip cache. Empty for a book over two UTM zones
    or larger than :data:`MAX_BOOK_COMPOSITE_PX`."""
    import numpy as np

    from geo.parcels import parcels_bounds
    from geo.sources.base import Grid

    if not plan.chips or len({c.epsg for c in plan.chips}) > 1 or not as_of_by_region:
        return {}
    if (
        plan.bbox_pixels > MAX_BOOK_COMPOSITE_PX
        or board.parcels.crs.to_epsg() != plan.chips[0].epsg
    ):
        return {}
    season = Season(params.season)
    as_of = max(as_of_by_region.values())
    box = parcels_bounds(board.parcels)
    grid = Grid.of(box, 10.0)
    cache = ChipCache(params.imagery.cache_dir or RunLayout(params.out).cache)
    source = source or _source(params.imagery)
    data = observed = None
    for chip in plan.chips:
        refs = source.search(chip.window, season.start, as_of)
        try:
            part = chip_composite(source, chip, refs, season, as_of, cache)
        except CropCreditError as exc:
            log.warning("report maps: chip %s left blank (%s)", chip.chip_id, exc)
            continue
        if data is None or observed is None:
            data = np.full((part.shape[0], part.shape[1], grid.height, grid.width), np.nan, "f4")
            observed = np.zeros((part.shape[0], grid.height, grid.width), dtype=bool)
        # the core, clipped to the box and to the (shrunk) chip window, in both grids' pixels
        w = chip.window
        x0 = max(chip.core.left, box.left, w.left)
        x1 = min(chip.core.right, box.right, w.right)
        y0 = max(chip.core.bottom, box.bottom, w.bottom)
        y1 = min(chip.core.top, box.top, w.top)
        if x1 <= x0 or y1 <= y0:
            continue
        c0, c1 = round((x0 - box.left) / 10), round((x1 - box.left) / 10)
        r0, r1 = round((box.top - y1) / 10), round((box.top - y0) / 10)
        pc, pr = round((x0 - w.left) / 10), round((w.top - y1) / 10)
        nr = min(r1 - r0, part.shape[-2] - pr, grid.height - r0)
        nc = min(c1 - c0, part.shape[-1] - pc, grid.width - c0)
        if nr <= 0 or nc <= 0:
            continue
        data[:, :, r0 : r0 + nr, c0 : c0 + nc] = part.data[:, :, pr : pr + nr, pc : pc + nc]
        observed[:, r0 : r0 + nr, c0 : c0 + nc] = part.observed[:, pr : pr + nr, pc : pc + nc]
    if data is None or observed is None:
        return {}
    return {
        as_of: Composite(
            data=data,
            observed=observed,
            dates=season.dekads(),
            transform=grid.transform,
            crs=box.crs,
            as_of=as_of,
        )
    }


def write_book_composite(
    params: SeasonParams,
    board: tasks.Onboarded,
    plan: ChipPlan,
    as_of_by_region: dict[str, dt.date],
    source: TileSource | None = None,
) -> dict[dt.date, Composite]:
    """:func:`book_composites`, also written (compressed) to
    ``<cache>/composite-<as_of>-book.npz`` for the review app's map layers."""
    composites = book_composites(params, board, plan, as_of_by_region, source)
    cache = params.imagery.cache_dir or RunLayout(params.out).cache
    for as_of, composite in composites.items():
        composite.to_npz(cache / f"composite-{as_of:%Y%m%d}-book.npz", compressed=True)
    return composites
