"""PD model evaluation on a held-out simulated loan book (``python -m eval.pd``).

Trains the shipped configuration on ``simulate_loan_book(20000, seed=0)`` and measures the
shipped model file (``data/models/pd_model.json``) and the fresh model on
``simulate_loan_book(10000, seed=1)``, a book it never saw. ``python -m eval.pd --ship``
retrains and rewrites the shipped model and its metadata.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from scoring.loanbook import simulate_loan_book
from scoring.pd_model import SHIPPED_PATH, PDModel, evaluate, load_shipped_pd, train_pd

log = logging.getLogger(__name__)

TRAIN_N, TRAIN_SEED = 20_000, 0
TEST_N, TEST_SEED = 10_000, 1
META_PATH = SHIPPED_PATH.with_name("pd_model.meta.json")


def format_metrics(name: str, m: dict[str, Any]) -> str:
    """A plain-text block: AUC, Brier and the decile calibration table."""
    lines = [
        f"{name}: n={m['n']}  default rate={m['default_rate']:.3f}  AUC={m['auc']:.3f}  "
        f"Brier={m['brier']:.4f} (base-rate Brier {m['brier_base_rate']:.4f})",
        "decile      n  predicted  observed",
    ]
    lines += [
        f"{c['decile']:>6} {c['n']:>6}  {c['predicted']:>9.3f}  {c['observed']:>8.3f}"
        for c in m["calibration"]
    ]
    return "\n".join(lines)


def ship() -> dict[str, Any]:
    """Retrain the shipped PD model, write it with its metadata; returns the metrics."""
    model = train_pd(simulate_loan_book(TRAIN_N, TRAIN_SEED), seed=0)
    model.save(SHIPPED_PATH)
    metrics = evaluate(model, simulate_loan_book(TEST_N, TEST_SEED))
    meta = {
        "version": model.version,
        "features": model.features,
        "trained": model.trained,
        "train_book": {"n": TRAIN_N, "seed": TRAIN_SEED},
        "test_book": {"n": TEST_N, "seed": TEST_SEED},
        "metrics": metrics,
    }
    META_PATH.write_text(json.dumps(meta, indent=2) + "\n")
    return metrics


def run() -> str:
    """Evaluate the shipped model and a fresh retrain on the held-out book; the tables."""
    test = simulate_loan_book(TEST_N, TEST_SEED)
    blocks = []
    if SHIPPED_PATH.exists():
        shipped = load_shipped_pd()
        blocks.append(format_metrics(f"shipped {shipped.version}", evaluate(shipped, test)))
    fresh: PDModel = train_pd(simulate_loan_book(TRAIN_N, TRAIN_SEED), seed=0)
    blocks.append(format_metrics(f"retrained {fresh.version}", evaluate(fresh, test)))
    return "\n\n".join(blocks)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    if "--ship" in sys.argv[1:]:
        ship()
    sys.stdout.write(run() + "\n")
