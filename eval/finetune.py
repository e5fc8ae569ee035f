"""Fine-tuning for a lender's region: the France-trained segmenter on Belgium, before and after.

    python -m eval finetune            (or: python -m eval.finetune [--weights PATH])

The shipped segmenter never saw Belgium (THE SPLIT CONTRACT, :mod:`vision.realdata`). Belgium
2021 (monthly series, ``ignore`` dropped) is split in two halves of whole 10 km blocks
(:func:`geo.samples.split_by_block`, ``{"tune": 0.5, "test": 0.5}``, seed 0): the model is
scored on the ``test`` half as shipped, then fine-tuned on the ``tune`` half
(:func:`vision.finetune.finetune`, uniform images of the series as :mod:`vision.classify` sees
them, a few epochs at a low learning rate) and scored again on the same ``test`` half.

Printed: overall accuracy (OA) and macro-F1 (classes present in the truth, and classes with
>= 10 parcels in the half) before / after, per-class F1 and support, and the negative
log-likelihood of the true class on the tuning half (does the fine-tune learn at all?).
Belgium has 88 labelled parcels: a half holds few of each class, so the numbers move by
several points with the split; read them as "does fine-tuning help", not as an accuracy.

Skips with a one-line message where ``../shared/data`` is absent. About 1-3 minutes on 2 cores.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Final

from eval._weights_cli import main as weights_main

log = logging.getLogger(__name__)

#: The spatial halves of Belgium and their seed.
HALVES: Final[dict[str, float]] = {"tune": 0.5, "test": 0.5}
SPLIT_SEED: Final[int] = 0
#: Fine-tuning budget of this evaluation (keeps the run under 5 minutes on a busy machine).
EPOCHS: Final[int] = 10
MAX_MINUTES: Final[float] = 3.0


def evaluate(weights: Path | None = None) -> dict[str, Any]:
    """Scores on the Belgian ``test`` half before and after fine-tuning on the ``tune`` half.

    Returns:
        {"version", "n_tune", "n_test", "before", "after" (:func:`vision.metrics.series_metrics`),
        "loss_before", "loss_after" (NLL on the tune half), "finetune_seconds"}.
    """
    from geo.samples import split_by_block
    from vision.finetune import FinetuneConfig, finetune, series_loss
    from vision.metrics import series_metrics
    from vision.model import load_segmenter
    from vision.realdata import belgium_samples

    seg = load_segmenter(weights)
    belgium = belgium_samples()
    assert belgium.lonlat is not None
    halves = split_by_block(belgium.lonlat, HALVES, seed=SPLIT_SEED)
    tune, test = belgium.subset(halves["tune"]), belgium.subset(halves["test"])
    cfg = FinetuneConfig(seed=0, epochs=EPOCHS, max_minutes=MAX_MINUTES)
    result = finetune(seg, series=tune, cfg=cfg, progress=False)
    tuned = result.segmenter
    return {
        "version": seg.version,
        "n_tune": len(tune),
        "n_test": len(test),
        "before": series_metrics(seg, test),
        "after": series_metrics(tuned, test),
        "loss_before": series_loss(seg, tune),
        "loss_after": series_loss(tuned, tune),
        "finetune_seconds": result.train_seconds,
        "steps": result.meta["finetune"]["steps"],
    }


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def run(weights: Path | None = None) -> str:
    """The before / after table, or a one-line skip message without the shared data."""
    from vision.realdata import BELGIUM_FILE

    if not BELGIUM_FILE.is_file():
        log.info("Belgium samples not found at %s: skipping", BELGIUM_FILE)
        return f"skipped: real samples not found ({BELGIUM_FILE}); see ../shared/data/README.md"
    r = evaluate(weights)
    b, a = r["before"], r["after"]
    lines = [
        f"segmenter {r['version']} (trained on France) fine-tuned on Belgium 2021 'tune' half "
        f"({r['n_tune']} parcels, {r['steps']} steps, {r['finetune_seconds']:.0f} s), scored on "
        f"the 'test' half ({r['n_test']} parcels; 10 km blocks, seed {SPLIT_SEED})",
        "",
        "| model | OA | macro-F1 | macro-F1 (classes >= 10) | NLL on tune half |",
        "|---|---|---|---|---|",
        f"| as shipped | {_fmt(b['accuracy'])} | {_fmt(b['macro_f1'])} | "
        f"{_fmt(b['macro_f1_major'])} | {r['loss_before']:.3f} |",
        f"| fine-tuned | {_fmt(a['accuracy'])} | {_fmt(a['macro_f1'])} | "
        f"{_fmt(a['macro_f1_major'])} | {r['loss_after']:.3f} |",
        "",
        "| class | n (test half) | F1 before | F1 after |",
        "|---|---|---|---|",
    ]
    for crop, m in b["per_class"].items():
        lines.append(f"| {crop} | {m['n']} | {m['f1']:.3f} | {a['per_class'][crop]['f1']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return weights_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
