"""Local-archive acquisition throughput against a bare rasterio windowed read of the same bytes.

    python -m bench.acquire [--archive out/demo/archive] [--repeats 5]

The archive is the demo-sized generated season (``geo.synth.SynthConfig()``: 480 x 480 px,
320 farmers, a scene every 5 days), the one ``make demo`` writes; it is generated when
``<archive>/scenes`` is absent, and any other archive in the layout of
:mod:`geo.sources.base` (with a ``parcels.parquet``) is measured as it is. The window is what
``cropcredit acquire`` reads: the parcels' bounds (``geo.parcels.parcels_bounds``) over every
scene of the season. Timed paths, each over the same scenes, window and 11 bands (10 L2A
bands + SCL):

- ``raw``: per scene file, ``rasterio.open`` and one ``src.read(window=...)`` of all bands;
- ``source``: a fresh :class:`~geo.sources.local.LocalArchiveSource` (as every run opens one):
  ``search`` over the season (indexes the archive) and ``read`` of every scene it lists;
- ``acquire``: ``source`` plus masking and compositing (``geo.composite.composite_dekads``),
  what ``flows.tasks.acquire_composite`` does before caching the composite.

The page cache is warmed by one untimed pass of each path; then the paths alternate for
``repeats`` rounds and each reports its median wall and CPU seconds (on a shared machine the
CPU seconds are closer to an unloaded wall time). MB/s counts the decompressed window bytes
(uint16, 11 bands) of every scene; parcels/s the parcels the window covers. The goal is
``source`` >= 0.8 x ``raw`` throughput; ``acquire`` adds the compositing maths, which a bare
read does not do, and its ratio is shown for information.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import rasterio
from rasterio.windows import Window, from_bounds

from geo.composite import composite_dekads
from geo.parcels import parcels_bounds
from geo.sources.base import SCENE_BANDS, Bounds, Grid
from geo.sources.local import LocalArchiveSource
from geo.synth import SynthConfig, write_archive
from geo.types import Season

log = logging.getLogger(__name__)

DEFAULT_ARCHIVE = Path("out/demo/archive")
SEASON = Season(2026)
GOAL = 0.8


@dataclass(frozen=True)
class Timing:
    """Median wall and CPU seconds of one path over the repeats."""

    wall_s: float
    cpu_s: float


def _box(b: Bounds) -> tuple[float, float, float, float]:
    return (b.left, b.bottom, b.right, b.top)


def _raw(files: list[Path], bounds: Bounds) -> int:
    """Bare rasterio: open each file and read the window of all its bands; bytes read."""
    total = 0
    for path in files:
        with rasterio.open(path) as src:
            window = from_bounds(*_box(bounds), src.transform).round_offsets().round_lengths()
            window = window.intersection(Window(0, 0, src.width, src.height))
            total += src.read(window=window).nbytes
    return total


def _source(root: Path, bounds: Bounds, end: dt.date) -> int:
    """A fresh source: search (indexes the archive) and read every scene; scenes read."""
    source = LocalArchiveSource(root)
    refs = source.search(bounds, SEASON.start, end)
    for ref in refs:
        source.read(ref, bounds)
    return len(refs)


def _acquire(root: Path, bounds: Bounds, end: dt.date) -> int:
    source = LocalArchiveSource(root)
    refs = source.search(bounds, SEASON.start, end)
    composite = composite_dekads((source.read(r, bounds) for r in refs), SEASON, end)
    return int(composite.data.shape[0])


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run(archive: Path = DEFAULT_ARCHIVE, repeats: int = 5) -> str:
    """Markdown table of the three paths: seconds, parcels/s, MB/s and the ratio to ``raw``."""
    root = archive
    if not (root / "scenes").is_dir():  # never write into an archive that is already there
        write_archive(root, SynthConfig())
    parcels = gpd.read_parquet(root / "parcels.parquet")
    bounds = parcels_bounds(parcels)
    end = SEASON.end
    files = [Path(r.href) for r in LocalArchiveSource(root).search(bounds, SEASON.start, end)]
    # warm-up passes (page cache, GDAL's first-open costs); the raw one counts the bytes
    n_bytes = _raw(files, bounds)
    if _source(root, bounds, end) != len(files):
        raise RuntimeError("the source listed other scenes than the raw read: not a fair race")
    _acquire(root, bounds, end)
    paths: dict[str, Callable[[], object]] = {
        "raw": lambda: _raw(files, bounds),
        "source": lambda: _source(root, bounds, end),
        "acquire": lambda: _acquire(root, bounds, end),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            samples[name].append(_time(fn))
    timings = {
        name: Timing(statistics.median(s[0] for s in runs), statistics.median(s[1] for s in runs))
        for name, runs in samples.items()
    }
    grid = Grid.of(bounds, 10.0)
    mb = n_bytes / 1e6
    raw = timings["raw"]
    lines = [
        f"local archive {root}: {len(files)} scenes, {len(parcels)} parcels, window "
        f"{grid.width} x {grid.height} px x {len(SCENE_BANDS)} bands "
        f"({mb:.0f} MB decompressed); median of {repeats} warm runs (wall / CPU)",
        "",
        "| path | s wall | s CPU | parcels/s (wall) | MB/s (wall) | MB/s (CPU) | ratio wall | "
        "ratio CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "raw": "raw rasterio windowed read",
        "source": "LocalArchiveSource search + read",
        "acquire": "acquire: search + read + mask + composite",
    }
    for name, t in timings.items():
        lines.append(
            f"| {labels[name]} | {t.wall_s:.2f} | {t.cpu_s:.2f} | {len(parcels) / t.wall_s:.0f} "
            f"| {mb / t.wall_s:.0f} | {mb / t.cpu_s:.0f} | {raw.wall_s / t.wall_s:.2f} "
            f"| {raw.cpu_s / t.cpu_s:.2f} |"
        )
    ratio = raw.cpu_s / timings["source"].cpu_s
    verdict = "meets" if ratio >= GOAL else "misses"
    lines += ["", f"source / raw throughput (CPU) {ratio:.2f}: {verdict} the goal >= {GOAL}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sys.stdout.write(run(args.archive, args.repeats) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
