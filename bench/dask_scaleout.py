"""Scale-out: the same re-limit batches on a Dask LocalCluster of 1 worker, then 2 workers.

    python -m bench.dask_scaleout [--farmers 40000] [--parcels 120000] [--batch 2000]

The work is what ``flows.season`` submits at a growth stage: ``flows.tasks.score`` (features,
PD with reasons, limit policy) once per batch of ``--batch`` farmers, through
``flows.tasks.task_runner`` with ``task_runner="dask"`` (prefect-dask's ``DaskTaskRunner``,
one thread per worker process), inside a Prefect flow on the local ephemeral API. The
assessment is ``bench.scoring.synthetic_assessment`` (cached features stand-in, no imagery).

Reports per worker count: cluster start-up, wall seconds of the batches, farmers/s, and the
speed-up of 2 workers over 1; checks both give the same decisions. On this 2-core machine the
ideal is 2x; whatever else runs on the machine shares those cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass

import geopandas as gpd
import pandas as pd
from prefect import flow, task

import flows  # noqa: F401  (offline Prefect defaults)
from flows import tasks
from flows.settings import SeasonParams
from geo.types import GrowthStage

log = logging.getLogger(__name__)

STAGE = GrowthStage.FLOWERING


@dataclass
class Timing:
    workers: int
    startup_s: float
    work_s: float
    farmers: int

    @property
    def rate(self) -> float:
        return self.farmers / self.work_s if self.work_s > 0 else float("inf")


@task(name="warm-up")
def _warm() -> int:
    import scoring.features  # noqa: F401
    import scoring.pd_model  # noqa: F401
    import scoring.policy  # noqa: F401

    return os.getpid()


@flow(name="bench-dask-relimit", log_prints=False)
def _relimit(
    n_farmers: int, n_parcels: int, batch: int, workers: int
) -> tuple[pd.DataFrame, int, float, float]:
    """Decisions, batches, cluster start-up and batch seconds (the data is built in here:
    flow parameters must stay small)."""
    from bench.scoring import synthetic_assessment

    assessment, farmers, overlaps = synthetic_assessment(n_farmers, n_parcels, seed=0)
    board = tasks.Onboarded(
        parcels=gpd.GeoDataFrame(geometry=[], crs="EPSG:32631"),
        rejects=pd.DataFrame(),
        overlaps=overlaps,
        farmers=farmers,
    )
    batches = tasks.farmer_batches(assessment, batch)
    params = SeasonParams(task_runner="dask", dask_workers=workers, batch_size=batch)
    drawn = pd.Series(dtype=float)
    t0 = time.perf_counter()
    with tasks.task_runner(params) as runner:
        # workers up and the scoring code imported on each before the clock starts
        for f in [runner.submit(_warm, {}) for _ in range(2 * workers)]:
            f.result()
        t1 = time.perf_counter()
        futures = tasks.submit_scores(runner, batches, board, params, STAGE, None, drawn)
        decisions = pd.concat([f.result()[0] for f in futures], ignore_index=True)
        t2 = time.perf_counter()
    return decisions, len(batches), t1 - t0, t2 - t1


def run(n_farmers: int = 40_000, n_parcels: int = 120_000, batch: int = 2_000) -> str:
    """Run the benchmark; returns the result table as text."""
    timings: list[Timing] = []
    results: dict[int, pd.DataFrame] = {}
    for workers in (1, 2):
        decisions, n_batches, startup, work = _relimit(n_farmers, n_parcels, batch, workers)
        timings.append(Timing(workers, startup, work, len(decisions)))
        results[workers] = decisions.sort_values("farmer_id").reset_index(drop=True)
        log.info("%d worker(s): %.1f s for %d farmers", workers, work, len(decisions))
    cols = ["farmer_id", "limit_eur", "action"]
    same = results[1][cols].equals(results[2][cols])
    one, two = timings
    lines = [
        f"re-limit at {STAGE.value} on Dask: {n_farmers:,} farmers, {n_parcels:,} parcels, "
        f"{n_batches} batches of {batch:,} farmers (flows.tasks.score per batch)",
        "",
        f"{'workers':>8}{'start-up s':>12}{'batches s':>11}{'farmers/s':>11}",
    ]
    for t in timings:
        lines.append(f"{t.workers:>8}{t.startup_s:>12.1f}{t.work_s:>11.1f}{t.rate:>11,.0f}")
    lines += [
        "",
        f"speed-up of 2 workers over 1: {one.work_s / two.work_s:.2f}x (ideal on 2 cores: 2x)",
        f"same decisions with 1 and 2 workers: {'yes' if same else 'NO'}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farmers", type=int, default=40_000)
    parser.add_argument("--parcels", type=int, default=120_000)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    print(run(args.farmers, args.parcels, args.batch))


if __name__ == "__main__":
    main()
