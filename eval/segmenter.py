"""How good is the shipped segmenter? Accuracy and calibration by decision stage.

    python -m eval.segmenter [--regions 3] [--size 160] [--weights data/models/segmenter.pt]

Generates fresh regions (``geo.synth`` seeds 40000+, used by no training, calibration or test
set), composites each over the season (``geo.composite.composite_dekads``) and evaluates the
shipped model with composites up to each stage date (:func:`vision.metrics.evaluate_segmenter`):
pixel accuracy, mIoU, ECE, parcel accuracy, parcel ECE. Regions are cached in
``out/cache/segmenter``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from eval._weights_cli import regions_main

EVAL_SEEDS = 40_000


def evaluate(
    n_regions: int = 3, size_px: int = 160, weights: Path | None = None
) -> dict[str, dict[str, object]]:
    """Metrics by stage of the segmenter at ``weights`` (default: the shipped one)."""
    from geo.types import Season
    from vision.metrics import evaluate_segmenter
    from vision.model import load_segmenter
    from vision.train import DEFAULT_CACHE, load_regions

    seg = load_segmenter(weights)
    seeds = [EVAL_SEEDS + i for i in range(n_regions)]
    regions = load_regions(seeds, size_px, Season(2026), DEFAULT_CACHE)
    return evaluate_segmenter(seg, regions)


def run(n_regions: int = 3, size_px: int = 160, weights: Path | None = None) -> str:
    """Markdown table of the metrics by stage."""
    from vision.dataset import STAGE_DATES
    from vision.model import load_segmenter

    seg = load_segmenter(weights)
    metrics = evaluate(n_regions, size_px, weights)
    lines = [
        f"segmenter {seg.version} (T = {seg.temperature:.3f}) on {n_regions} fresh generated "
        f"regions of {size_px} px",
        "",
        "| stage | as_of | pixel acc | mIoU | ECE | parcel acc | parcel ECE | parcels |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stage, m in metrics.items():
        lines.append(
            f"| {stage} | {STAGE_DATES[stage]} | {m['pixel_accuracy']:.3f} | {m['miou']:.3f} | "
            f"{m['ece']:.3f} | {m['parcel_accuracy']:.3f} | {m['parcel_ece']:.3f} | "
            f"{m['n_parcels']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return regions_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
