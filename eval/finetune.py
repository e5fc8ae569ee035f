"""Fine-tuning for a lender's region: the France-trained segmenter on Belgium, before and after.

    python -m eval finetune            (or: python -m eval.finetune [--weights PATH])

The shipped segmenter never saw Belgium (THE SPLIT CONTRACT, :mod:`vision.realdata`). Belgium
2021 (monthly series, ``ignore`` dropped) is split in two halves of whole 10 km blocks
(:func:`geo.samples.split_by_block`, ``{"tune": 0.5, "test": 0.5}``), five times (split seeds
0-4). Each time the model is scored on the ``test`` half as shipped, then fine-tuned on the
``tune`` half (:func:`vision.finetune.finetune`: uniform images of the series as
:mod:`vision.classify` sees them, a few epochs at a low learning rate) without and with the
replay of generated training regions (the default), and scored again on the same ``test`` half.

Printed: per split, overall accuracy (OA) and macro-F1 before / after; the mean gain over the
splits with its spread; per-class F1 of split 0. Belgium has 88 labelled parcels: a half holds
~44, so one parcel moves OA by 0.023 and a single split says little; read the mean over the
five splits.

Skips with a one-line message where ``../shared/data`` is absent. About 10 minutes on 2 cores.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Final

import numpy as np

from eval._weights_cli import main as weights_main

log = logging.getLogger(__name__)

#: The spatial halves of Belgium and the split seeds.
HALVES: Final[dict[str, float]] = {"tune": 0.5, "test": 0.5}
SPLIT_SEEDS: Final[tuple[int, ...]] = (0, 1, 2, 3, 4)
#: Fine-tuning budget of each run.
EPOCHS: Final[int] = 10
MAX_MINUTES: Final[float] = 6.0
#: The fine-tunes compared: name -> FinetuneConfig overrides.
VARIANTS: Final[dict[str, dict[str, int]]] = {"no replay": {"replay": 0}, "replay": {}}


def evaluate(weights: Path | None = None, seeds: tuple[int, ...] = SPLIT_SEEDS) -> dict[str, Any]:
    """Scores on the Belgian ``test`` halves before and after fine-tuning on the ``tune`` halves.

    Returns:
        {"version", "splits": [{"seed", "n_tune", "n_test", "shipped" and one entry per
        :data:`VARIANTS` name (:func:`vision.metrics.series_metrics`), "seconds": {variant: s}}]}.
    """
    from geo.samples import split_by_block
    from vision.finetune import FinetuneConfig, finetune
    from vision.metrics import series_metrics
    from vision.model import load_segmenter
    from vision.realdata import belgium_samples

    seg = load_segmenter(weights)
    belgium = belgium_samples()
    assert belgium.lonlat is not None
    splits = []
    for seed in seeds:
        halves = split_by_block(belgium.lonlat, HALVES, seed=seed)
        tune, test = belgium.subset(halves["tune"]), belgium.subset(halves["test"])
        row: dict[str, Any] = {
            "seed": seed,
            "n_tune": len(tune),
            "n_test": len(test),
            "shipped": series_metrics(seg, test),
            "seconds": {},
        }
        for name, overrides in VARIANTS.items():
            cfg = FinetuneConfig(seed=0, epochs=EPOCHS, max_minutes=MAX_MINUTES, **overrides)
            result = finetune(seg, series=tune, cfg=cfg, progress=False)
            row[name] = series_metrics(result.segmenter, test)
            row["seconds"][name] = result.train_seconds
            log.info(
                "split %d, %s: OA %.3f -> %.3f (%.0f s)",
                seed,
                name,
                row["shipped"]["accuracy"],
                row[name]["accuracy"],
                result.train_seconds,
            )
        splits.append(row)
    return {"version": seg.version, "splits": splits}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def format_tables(r: dict[str, Any]) -> str:
    """The per-split table, the mean gains and split 0's per-class F1."""
    models = ["shipped", *VARIANTS]
    splits = r["splits"]
    lines = [
        f"segmenter {r['version']} (trained on France) fine-tuned on Belgium 2021 'tune' halves "
        f"and scored on the 'test' halves (10 km blocks, split seeds "
        f"{', '.join(str(s['seed']) for s in splits)})",
        "",
        "| split | tune / test | "
        + " | ".join(f"OA {m}" for m in models)
        + " | "
        + " | ".join(f"macro-F1 {m}" for m in models)
        + " | seconds ("
        + " / ".join(VARIANTS)
        + ") |",
        "|---" * (3 + 2 * len(models)) + "|",
    ]
    for s in splits:
        lines.append(
            f"| {s['seed']} | {s['n_tune']} / {s['n_test']} | "
            + " | ".join(_fmt(s[m]["accuracy"]) for m in models)
            + " | "
            + " | ".join(_fmt(s[m]["macro_f1"]) for m in models)
            + " | "
            + " / ".join(f"{s['seconds'][v]:.0f}" for v in VARIANTS)
            + " |"
        )
    lines += [
        "",
        "| fine-tune | mean OA gain | sd | splits improved | mean macro-F1 gain |",
        "|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        gain = np.array([s[v]["accuracy"] - s["shipped"]["accuracy"] for s in splits])
        f1 = np.array([s[v]["macro_f1"] - s["shipped"]["macro_f1"] for s in splits])
        lines.append(
            f"| {v} | {gain.mean():+.3f} | {gain.std():.3f} | {int((gain > 0).sum())} of "
            f"{len(gain)} | {f1.mean():+.3f} |"
        )
    first = splits[0]
    lines += [
        "",
        f"Per-class F1, split {first['seed']} (n = parcels of the class in its test half):",
        "",
        "| class | n | " + " | ".join(f"F1 {m}" for m in models) + " |",
        "|---" * (2 + len(models)) + "|",
    ]
    for crop, m in first["shipped"]["per_class"].items():
        lines.append(
            f"| {crop} | {m['n']} | "
            + " | ".join(f"{first[k]['per_class'][crop]['f1']:.3f}" for k in models)
            + " |"
        )
    return "\n".join(lines)


def run(weights: Path | None = None) -> str:
    """The tables, or a one-line skip message without the shared data."""
    from vision.realdata import BELGIUM_FILE

    if not BELGIUM_FILE.is_file():
        log.info("Belgium samples not found at %s: skipping", BELGIUM_FILE)
        return f"skipped: real samples not found ({BELGIUM_FILE}); see ../shared/data/README.md"
    return format_tables(evaluate(weights))


def main(argv: list[str] | None = None) -> int:
    return weights_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
