"""A lender's book spread thin: imagery and vision per chip on 1 and 2 Dask workers.

    python -m bench.portfolio [--villages 2 9 36] [--workers 1 2] [--spread-km 70]

The book: copies of one generated village (the demo region, 4.8 x 4.8 km, 887 parcels, 320
farmers) placed in distinct random cells of a 5 km grid over ``--spread-km`` square (the first
two at opposite corners), so 2 / 9 / 36 villages are 1,774 / 7,983 / 31,932 parcels over the
same thin spread (36 villages cover 17 % of a 70 km square). The imagery is one generated
archive seen at each village's offset through GDAL virtual rasters (``*.vrt`` scene files: real
windowed reads of the same compressed GeoTIFFs), so archive generation stays out of the timing.

For each size and worker count, on a Dask ``LocalCluster`` (one thread per worker), inside a
Prefect flow, :func:`flows.chips.assess_book` (one task per chip: search, read, mask,
composite through the chip cache, segment, assess) runs three times:

- ``scratch``: the vegetative stage with an empty chip cache;
- ``incremental``: the flowering stage next, on that warm cache (only the dekads since the
  vegetative date are read);
- ``flowering scratch``: the flowering stage with an empty cache, to compare against.

Reports wall seconds and parcels/s, the speed-up of 2 workers over 1, the peak resident
memory of each worker (``ru_maxrss`` at the end of each chip task), the decoded bytes read
against the bytes inside the chips' windows and against the book's bounding box, the
incremental stage's time against scratch, and segmentation throughput: inside the flow
(``tasks.assess`` per chip: segmentation + parcel summaries), the pipeline's
``predict_proba`` on one chip's real model input, and the best bare ``model(x)`` loop found
on the same pixels (batched 256 px tiles, channels_last, fp32 and bf16 autocast; bf16 counts
only where its argmax agrees with fp32 on at least 99.5 % of pixels).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from prefect import flow, task
from shapely import affinity

import flows  # noqa: F401  (offline Prefect defaults)
from flows import chips as chip_tasks
from flows import tasks
from flows.settings import SeasonParams, SourceParams
from geo.calendar import stage_dates
from geo.chips import plan_chips
from geo.sources.local import LocalArchiveSource
from geo.types import GrowthStage, Season

log = logging.getLogger(__name__)

ROOT = Path("out/bench/portfolio")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # workers inherit it
VILLAGE_M = 4800.0  # the generated region's side
CELL_M = 5000.0  # grid of village positions
SCENE_BYTES_PER_PX = 11 * 2  # 10 bands + SCL, uint16
STAGES = (GrowthStage.VEGETATIVE, GrowthStage.FLOWERING)
_GEOTRANSFORM = re.compile(r"<GeoTransform>[^<]*</GeoTransform>")


@dataclass(frozen=True)
class Book:
    root: Path
    villages: int
    parcels: int
    farmers: int
    spread_km: float


def template(root: Path = ROOT / "template") -> Path:
    """The generated village (the demo's region), written once."""
    from geo.synth import SynthConfig, write_archive

    return write_archive(root, SynthConfig(seed=7, season=Season(2026), size_px=480))


def build_book(villages: int, spread_km: float = 70.0, seed: int = 0) -> Book:
    """The thin book of ``villages`` copies of :func:`template` (see the module docstring)."""
    tpl = template()
    cells_side = int(spread_km * 1000 // CELL_M)
    if villages > cells_side**2:
        raise ValueError(f"{villages} villages do not fit {cells_side}x{cells_side} cells")
    rng = random.Random(seed)
    corners = [(0, 0), (cells_side - 1, cells_side - 1)]
    rest = [(i, j) for i in range(cells_side) for j in range(cells_side) if (i, j) not in corners]
    rng.shuffle(rest)
    cells = (corners + rest)[:villages]
    root = ROOT / f"book-{villages}"
    if root.exists():
        shutil.rmtree(root)
    (root / "scenes").mkdir(parents=True)
    import rasterio.shutil

    parcels0 = gpd.read_parquet(tpl / "parcels.parquet")
    farmers0 = pd.read_csv(tpl / "farmers.csv")
    vrts: list[tuple[str, str, tuple[float, ...]]] = []
    for path in sorted((tpl / "scenes").glob("*.tif")):
        tmp = root / "template.vrt"
        rasterio.shutil.copy(str(path.resolve()), str(tmp), driver="VRT")
        with rasterio.open(path) as src:
            gt = src.transform.to_gdal()
        vrts.append((path.stem, tmp.read_text(), gt))
        tmp.unlink()
    parcels, farmers = [], []
    for v, (i, j) in enumerate(cells):
        dx, dy = i * CELL_M, -j * CELL_M
        tag = f"V{v:03d}"
        for stem, text, gt in vrts:
            shifted = (gt[0] + dx, gt[1], gt[2], gt[3] + dy, gt[4], gt[5])
            line = "<GeoTransform>" + ", ".join(f"{g:.10e}" for g in shifted) + "</GeoTransform>"
            (root / "scenes" / f"{stem}_{tag}.vrt").write_text(_GEOTRANSFORM.sub(line, text))
        p = parcels0.copy()
        p["geometry"] = p.geometry.map(lambda g, dx=dx, dy=dy: affinity.translate(g, dx, dy))
        p["parcel_id"] = tag + "-" + p["parcel_id"].astype(str)
        p["farmer_id"] = tag + "-" + p["farmer_id"].astype(str)
        f = farmers0.copy()
        f["farmer_id"] = tag + "-" + f["farmer_id"].astype(str)
        parcels.append(p)
        farmers.append(f)
    book = gpd.GeoDataFrame(pd.concat(parcels, ignore_index=True), crs=parcels0.crs)
    book.to_parquet(root / "parcels.parquet")
    pd.concat(farmers, ignore_index=True).to_csv(root / "farmers.csv", index=False)
    return Book(root, villages, len(book), sum(len(f) for f in farmers), spread_km)


@task(name="warm-up")
def _warm() -> int:
    tasks._segmenter(None)  # the model, loaded once per worker
    tasks._reference_curves()
    return os.getpid()


@dataclass
class Run:
    label: str
    seconds: float
    stats: dict[str, dict[str, float]]
    failed: int


@flow(name="bench-portfolio", log_prints=False)
def _assess_runs(book_root: str, workers: int) -> tuple[list[Run], int, int]:
    """The three assessments of the module docstring on one cluster of ``workers``; also the
    number of chips and the bounding box's pixels."""
    root = Path(book_root)
    out = root / f"run-{workers}w"
    shutil.rmtree(out, ignore_errors=True)
    params = SeasonParams(
        parcels=root / "parcels.parquet",
        farmers=root / "farmers.csv",
        imagery=SourceParams(source="local", archive=root),
        out=out,
        task_runner="dask",
        dask_workers=workers,
    )
    source = LocalArchiveSource(root)
    board = tasks.load_parcels(
        params.parcels_path(), params.farmers_path(), (), imagery=source.footprint()
    )
    plan = plan_chips(board.parcels)
    season = Season(params.season)
    regions = sorted(board.parcels["region"].unique())
    dates = {s: {r: stage_dates(r, season)[s] for r in regions} for s in STAGES}
    runs: list[Run] = []
    with tasks.task_runner(params) as runner:
        for f in [runner.submit(_warm, {}) for _ in range(2 * workers)]:
            f.result()
        cases = [
            ("scratch", STAGES[0], out / "cache"),
            ("incremental", STAGES[1], out / "cache"),
            ("flowering scratch", STAGES[1], out / "cache-scratch"),
        ]
        for label, stage, cache in cases:
            p = params.model_copy(
                update={"imagery": params.imagery.model_copy(update={"cache_dir": cache})}
            )
            t0 = time.perf_counter()
            result = chip_tasks.assess_book(
                p, board, plan, dates[stage], stage, f"bench-{label}", runner
            )
            seconds = time.perf_counter() - t0
            runs.append(Run(label, seconds, result.stats, len(result.failed_chips)))
            log.info("%d worker(s), %s: %.1f s, %d chips", workers, label, seconds, len(plan))
    return runs, len(plan), plan.bbox_pixels


def _bare_loop(book: Book) -> dict[str, float]:
    """Mpx/s of the pipeline's predict_proba and of the best bare model(x) loop, on one real
    chip's model input (the chip with most parcels at the vegetative stage)."""
    import torch

    from geo.chip_cache import ChipCache
    from vision.infer import predict_proba

    parcels = gpd.read_parquet(book.root / "parcels.parquet")
    plan = plan_chips(parcels)
    counts = plan.assignment.value_counts()
    chip = plan.chip(str(counts.index[0]))
    source = LocalArchiveSource(book.root)
    season = Season(2026)
    as_of = stage_dates(str(parcels["region"].iloc[0]), season)[STAGES[0]]
    refs = source.search(chip.window, season.start, as_of)
    cache = ChipCache(book.root / "run-1w" / "cache")
    composite = chip_tasks.chip_composite(source, chip, refs, season, as_of, cache)
    from vision.model import Segmenter

    seg = tasks._segmenter(None)
    assert isinstance(seg, Segmenter)
    x = seg.prepare(composite.data)
    px = x.shape[1] * x.shape[2]
    torch.set_num_threads(2)
    predict_proba(seg, x, tile=chip_tasks.CHIP_TILE)  # warm
    t0 = time.perf_counter()
    predict_proba(seg, x, tile=chip_tasks.CHIP_TILE)
    pipeline = px / (time.perf_counter() - t0) / 1e6

    t = 256
    h, w = (x.shape[1] // t) * t, (x.shape[2] // t) * t
    tiles = (
        torch.from_numpy(np.ascontiguousarray(x[:, :h, :w]))
        .reshape(x.shape[0], h // t, t, w // t, t)
        .permute(1, 3, 0, 2, 4)
        .reshape(-1, x.shape[0], t, t)
        .contiguous(memory_format=torch.channels_last)
    )
    model = seg.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    out: dict[str, float] = {"pipeline": pipeline, "chip_px": float(px)}
    ref = None
    for name, batch, bf16 in [("fp32 b4", 4, False), ("fp32 b8", 8, False), ("bf16 b8", 8, True)]:
        with torch.inference_mode():
            preds: list[torch.Tensor] = []
            for _rep in range(2):  # the first pass warms up
                t0 = time.perf_counter()
                preds = []
                for i in range(0, len(tiles), batch):
                    if bf16:
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            logits = model(tiles[i : i + batch])
                    else:
                        logits = model(tiles[i : i + batch])
                    preds.append(logits.float().argmax(1))
                dt_s = time.perf_counter() - t0
        pred = torch.cat(preds)
        rate = len(tiles) * t * t / dt_s / 1e6
        if ref is None:
            ref = pred
        agree = float((pred == ref).float().mean())
        out[name] = rate
        out[f"{name} agree"] = agree
    candidates = [v for k, v in out.items() if k.startswith("fp32") and "agree" not in k]
    if out.get("bf16 b8 agree", 0.0) >= 0.995:
        candidates.append(out["bf16 b8"])
    out["best bare"] = max(candidates)
    return out


def _fmt_mb(x: float) -> str:
    return f"{x:,.0f}"


def run(
    villages: tuple[int, ...] = (2, 9), workers: tuple[int, ...] = (1, 2), spread_km: float = 70
) -> str:
    """Run the benchmark; returns the result tables as text."""
    lines: list[str] = []
    rows = []
    peak: dict[int, float] = {}
    for n in villages:
        book = build_book(n, spread_km)
        log.info("book of %d villages: %d parcels under %s", n, book.parcels, book.root)
        n_scenes = len(list((book.root / "scenes").glob("*.vrt"))) // n
        for w in workers:
            runs, n_chips, bbox_px = _assess_runs(str(book.root), w)
            for r in runs:
                s = r.stats.values()
                read = sum(c.get("bytes_read", 0.0) for c in s)
                in_windows = sum(c.get("pixels", 0.0) * c.get("scenes", 0.0) for c in s)
                rss: dict[float, float] = {}
                for c in s:
                    pid = c.get("worker_pid")
                    if pid is not None:
                        rss[pid] = max(rss.get(pid, 0.0), c.get("worker_peak_rss_mb", 0.0))
                seg_px = sum(c.get("pixels", 0.0) for c in s)
                seg_s = sum(c.get("segment_s", 0.0) for c in s)
                img_s = sum(c.get("seconds", 0.0) for c in s) - seg_s
                rows.append(
                    {
                        "villages": n,
                        "parcels": book.parcels,
                        "chips": n_chips,
                        "workers": w,
                        "run": r.label,
                        "seconds": r.seconds,
                        "parcels/s": book.parcels / r.seconds,
                        "peak RSS MB/worker": max(rss.values()) if rss else float("nan"),
                        "read/windows": read / (in_windows * SCENE_BYTES_PER_PX)
                        if in_windows
                        else float("nan"),
                        "read/bbox": read / (bbox_px * SCENE_BYTES_PER_PX * n_scenes)
                        if r.label != "incremental"
                        else float("nan"),
                        "read GB": read / 1e9,
                        "imagery task-s": img_s,
                        "assess task-s": seg_s,
                        "assess Mpx/s/worker": seg_px / seg_s / 1e6 if seg_s else float("nan"),
                        "failed chips": r.failed,
                    }
                )
                if r.label == "scratch":
                    peak[n] = max(peak.get(n, 0.0), max(rss.values(), default=0.0))
    table = pd.DataFrame(rows)
    lines.append(
        f"thin book: villages of 887 parcels scattered over {spread_km:.0f} x {spread_km:.0f} km; "
        f"stage {STAGES[0].value} from scratch, then {STAGES[1].value} incremental and from "
        "scratch; flows.chips.assess_book, one task per chip, Dask LocalCluster"
    )
    lines.append("")
    lines.append(
        table.to_string(
            index=False,
            float_format=lambda v: f"{v:,.2f}",
        )
    )
    lines.append("")
    for n in villages:
        t = table[table["villages"] == n]
        by = {
            (int(w), str(r)): float(v) for w, r, v in zip(t.workers, t.run, t.seconds, strict=True)
        }
        img = {
            (int(w), str(r)): float(v)
            for w, r, v in zip(t.workers, t.run, t["imagery task-s"], strict=True)
        }
        if (1, "scratch") in by and (2, "scratch") in by:
            lines.append(
                f"{n} villages: 2 workers over 1 (scratch): "
                f"{by[(1, 'scratch')] / by[(2, 'scratch')]:.2f}x (goal >= 1.7x)"
            )
        for w in workers:
            if (w, "incremental") in by and (w, "flowering scratch") in by:
                lines.append(
                    f"{n} villages, {w} worker(s): incremental flowering / from scratch = "
                    f"{by[(w, 'incremental')] / by[(w, 'flowering scratch')]:.2f} (goal <= 0.3); "
                    "imagery part alone (read, mask, composite): "
                    f"{img[(w, 'incremental')] / img[(w, 'flowering scratch')]:.2f}"
                )
    if len(peak) > 1:
        lo, hi = min(peak.values()), max(peak.values())
        lines.append(
            f"peak RSS per worker from {min(villages)} to {max(villages)} villages: "
            f"{_fmt_mb(lo)} to {_fmt_mb(hi)} MB ({(hi / lo - 1) * 100:+.1f} %, goal within 10 %)"
        )
    bare = _bare_loop(_last_book(villages))
    lines += [
        "",
        f"segmentation on one chip's real input ({bare['chip_px'] / 1e6:.2f} Mpx, 2 threads):",
        f"  pipeline predict_proba (tile {chip_tasks.CHIP_TILE}): {bare['pipeline']:.3f} Mpx/s",
        f"  bare model(x), 256 px tiles, channels_last: fp32 batch 4 {bare['fp32 b4']:.3f}, "
        f"fp32 batch 8 {bare['fp32 b8']:.3f}, bf16 batch 8 {bare['bf16 b8']:.3f} Mpx/s "
        f"(bf16 argmax agrees on {bare['bf16 b8 agree'] * 100:.2f} %)",
        f"  pipeline / best bare: {bare['pipeline'] / bare['best bare']:.2f} (goal >= 0.75)",
        f"machine: {os.cpu_count()} cores, load average {_load()}",
    ]
    return "\n".join(lines)


def _last_book(villages: tuple[int, ...]) -> Book:
    n = max(villages)
    root = ROOT / f"book-{n}"
    parcels = gpd.read_parquet(root / "parcels.parquet")
    return Book(root, n, len(parcels), 0, 0.0)


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--villages", type=int, nargs="+", default=[2, 9])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--spread-km", type=float, default=70.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("distributed", "prefect"):
        logging.getLogger(name).setLevel(logging.WARNING)
    print(run(tuple(args.villages), tuple(args.workers), args.spread_km))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
