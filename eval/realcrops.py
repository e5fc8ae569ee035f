"""Crop type of real parcels: the shipped segmenter and an XGBoost baseline (issue #8).

    python -m eval realcrops            (or: python -m eval.realcrops [--weights PATH])

Held-out sets of THE SPLIT CONTRACT (:mod:`vision.realdata`): France 2023 ``test`` (10 km
blocks never used for training or calibration) and all of Belgium 2021 (monthly series,
another country and year). The shipped model classifies each parcel series
(:func:`vision.classify.classify_samples`, probabilities 0-1 over :data:`geo.types.CROPS`).

Printed per set: overall accuracy (OA), macro-F1 over the classes with >= ``MIN_SUPPORT``
held-out parcels and over every class present in the truth, per-class precision / recall /
F1 with support, a compact confusion matrix (rows true, columns predicted), and calibration:
expected calibration error over 15 equal-width confidence bins and the accuracy and coverage
(share of parcels) of predictions above confidence 0.5 / 0.7 / 0.9. The issue's targets
(OA >= 0.85, macro-F1 >= 0.75) are printed beside the values.

Baseline, same split: XGBoost on the France ``train`` parcels, features = per dekad the 10
bands and NDVI of the series with every gap filled linearly in time (held flat before the
first / after the last observation). Published anchors are printed as context only (other
data, classes and protocol).

Skips with a one-line message where ``../shared/data`` is absent.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from eval._weights_cli import main as weights_main
from geo.types import BANDS, CROPS

log = logging.getLogger(__name__)

#: Classes with at least this many held-out parcels enter the headline macro-F1.
MIN_SUPPORT: Final[int] = 10
#: Targets of issue #8.
TARGET_OA: Final[float] = 0.85
TARGET_MACRO_F1: Final[float] = 0.75
ECE_BINS: Final[int] = 15
THRESHOLDS: Final[tuple[float, ...]] = (0.5, 0.7, 0.9)
#: Context, not like-for-like (other data, classes, protocol).
ANCHORS: Final[tuple[str, ...]] = (
    "PASTIS U-TAE (Sainte Fare Garnot & Landrieu 2021; French parcels, 18 crop classes, "
    "semantic segmentation of image time series): OA 83.2 / mIoU 63.1",
    "shared/data README: random forest, 5-fold CV on the 500 France parcels, 11 groups: "
    "OA 0.67 / macro-F1 0.46",
)
#: Short column names for the confusion matrix, in CROPS order.
SHORT: Final[dict[str, str]] = {
    "non_crop": "nonc",
    "grassland": "gras",
    "winter_cereals": "wcer",
    "spring_cereals": "scer",
    "maize": "maiz",
    "rapeseed": "rape",
    "sunflower": "sunf",
    "soybean": "soyb",
    "potato": "pota",
    "other_annual": "oann",
    "permanent": "perm",
}


# --- metrics (numpy over class indices of CROPS) -----------------------------------------------


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int = len(CROPS)) -> np.ndarray:
    """(k, k) int64 counts, rows = true class index, columns = predicted class index."""
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 (0 where undefined), IoU and support per class of ``cm``."""
    tp = np.diag(cm).astype(np.float64)
    pred = cm.sum(axis=0).astype(np.float64)
    true = cm.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred > 0, tp / pred, 0.0)
        recall = np.where(true > 0, tp / true, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        union = true + pred - tp
        iou = np.where(union > 0, tp / union, 0.0)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "iou": iou,
        "support": true.astype(np.int64),
        "predicted": pred.astype(np.int64),
    }


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE over ``bins`` equal-width bins of confidence in [0, 1]: sum of |acc - conf| x share."""
    conf = np.asarray(confidence, np.float64)
    ok = np.asarray(correct, np.float64)
    if conf.size == 0:
        return float("nan")
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += abs(ok[sel].mean() - conf[sel].mean()) * sel.sum()
    return total / conf.size


@dataclass(frozen=True, eq=False)
class Metrics:
    """The numbers of one model on one held-out set (rates 0-1)."""

    n: int
    oa: float
    macro_f1_large: float  # over classes with >= MIN_SUPPORT held-out parcels
    n_large: int
    macro_f1_present: float  # over every class present in the truth
    n_present: int
    ece: float
    mean_confidence: float
    above: dict[float, tuple[float, float]]  # threshold -> (accuracy, coverage)
    cm: np.ndarray  # (K, K) rows true, columns predicted
    per_class: dict[str, np.ndarray]  # see per_class()


def metrics(truth: np.ndarray, proba: np.ndarray) -> Metrics:
    """Every number of the report for (N,) true class indices and (N, K) probabilities."""
    pred = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    correct = pred == truth
    cm = confusion(truth, pred)
    pc = per_class(cm)
    present = pc["support"] > 0
    large = pc["support"] >= MIN_SUPPORT
    above = {
        t: (
            float(correct[conf >= t].mean()) if (conf >= t).any() else float("nan"),
            float((conf >= t).mean()),
        )
        for t in THRESHOLDS
    }
    return Metrics(
        n=int(truth.size),
        oa=float(correct.mean()),
        macro_f1_large=float(pc["f1"][large].mean()) if large.any() else float("nan"),
        n_large=int(large.sum()),
        macro_f1_present=float(pc["f1"][present].mean()),
        n_present=int(present.sum()),
        ece=expected_calibration_error(conf, correct),
        mean_confidence=float(conf.mean()),
        above=above,
        cm=cm,
        per_class=pc,
    )


# --- baseline ----------------------------------------------------------------------------------


def fill_all_gaps(data: np.ndarray) -> np.ndarray:
    """(N, T, C) series with every NaN filled linearly in time, held flat at the ends.

    A series with no value at all in a band stays NaN (XGBoost treats it as missing).
    """
    out = np.array(data, dtype=np.float32, copy=True)
    n, t, c = out.shape
    steps = np.arange(t, dtype=np.float64)
    flat = out.transpose(0, 2, 1).reshape(n * c, t)
    for row in flat:
        ok = np.isfinite(row)
        if ok.any() and not ok.all():
            row[~ok] = np.interp(steps[~ok], steps[ok], row[ok])
    return np.ascontiguousarray(flat.reshape(n, c, t).transpose(0, 2, 1))


def features(data: np.ndarray) -> np.ndarray:
    """(N, T * (C + 1)) float32: per dekad the C bands and NDVI of gap-filled series."""
    filled = fill_all_gaps(data)
    red, nir = filled[:, :, BANDS.index("B04")], filled[:, :, BANDS.index("B08")]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red) / (nir + red)
    return np.concatenate([filled, ndvi[:, :, None]], axis=2).reshape(len(filled), -1)


def train_baseline(data: np.ndarray, labels: np.ndarray, seed: int = 0) -> Any:
    """An XGBoost classifier on :func:`features`; ``labels`` are CROPS indices."""
    from xgboost import XGBClassifier

    classes = np.unique(labels)
    model = XGBClassifier(
        n_estimators=200,
        max_depth=4,
        learning_rate=0.08,
        subsample=0.8,
        colsample_bytree=0.5,
        max_bin=64,
        # one thread: OpenMP threads spin-wait badly on a shared, busy 2-core machine
        n_jobs=1,
        random_state=seed,
        tree_method="hist",
    )
    model.fit(features(data), np.searchsorted(classes, labels))
    model.crop_classes_ = classes
    return model


def baseline_proba(model: Any, data: np.ndarray) -> np.ndarray:
    """(N, len(CROPS)) probabilities of a :func:`train_baseline` model (0 for unseen classes)."""
    classes = model.crop_classes_
    p = model.predict_proba(features(data))
    out = np.zeros((len(data), len(CROPS)), dtype=np.float64)
    out[:, classes] = p
    return out


# --- report ------------------------------------------------------------------------------------


def _verdict(value: float, target: float) -> str:
    return "met" if value >= target else "below"


def format_block(title: str, m: Metrics) -> str:
    """Plain-text block of one model on one held-out set."""
    pc, cm = m.per_class, m.cm
    lines = [
        f"{title}: n={m.n}",
        f"  OA              {m.oa:.3f}   (target >= {TARGET_OA:.2f}: {_verdict(m.oa, TARGET_OA)})",
        f"  macro-F1 (>= {MIN_SUPPORT} parcels, {m.n_large} classes) {m.macro_f1_large:.3f}   "
        f"(target >= {TARGET_MACRO_F1:.2f}: {_verdict(m.macro_f1_large, TARGET_MACRO_F1)})",
        f"  macro-F1 (all {m.n_present} present classes) {m.macro_f1_present:.3f}",
        f"  ECE ({ECE_BINS} bins)  {m.ece:.3f}   mean confidence {m.mean_confidence:.3f}",
        "  confidence >=  accuracy  coverage",
    ]
    above = m.above
    lines += [f"  {t:>12.1f}  {a:>8.3f}  {c:>8.3f}" for t, (a, c) in above.items()]
    lines.append("  class            precision  recall     F1  support  predicted")
    for i, name in enumerate(CROPS):
        if pc["support"][i] or pc["predicted"][i]:
            lines.append(
                f"  {name:<16} {pc['precision'][i]:>9.3f} {pc['recall'][i]:>7.3f} "
                f"{pc['f1'][i]:>6.3f} {pc['support'][i]:>8d} {pc['predicted'][i]:>10d}"
            )
    used = [i for i in range(len(CROPS)) if pc["support"][i] or pc["predicted"][i]]
    lines.append("  confusion (rows true, columns predicted)")
    lines.append("  " + " " * 5 + "".join(f"{SHORT[CROPS[j]]:>5}" for j in used))
    for i in used:
        if pc["support"][i]:
            lines.append(f"  {SHORT[CROPS[i]]:<5}" + "".join(f"{cm[i, j]:>5d}" for j in used))
    return "\n".join(lines)


def shared_data_missing() -> str | None:
    """A one-line skip message when the real samples are absent, else None."""
    from vision.realdata import BELGIUM_FILE, FRANCE_FILE

    missing = [p for p in (FRANCE_FILE, BELGIUM_FILE) if not p.is_file()]
    if missing:
        return f"skipped: real samples not found ({missing[0]}); see ../shared/data/README.md"
    return None


def evaluate(weights: Path | None = None) -> dict[str, dict[str, Metrics]]:
    """model ("segmenter ...", "XGBoost baseline") -> held-out set -> :func:`metrics`."""
    from vision.classify import classify_samples
    from vision.model import load_segmenter
    from vision.realdata import belgium_samples, france_parts

    parts = france_parts()
    held_out = {"France 2023 test": parts["test"], "Belgium 2021 (all)": belgium_samples()}
    seg = load_segmenter(weights)
    seg_name = f"segmenter {seg.version} (series T = {seg.series_temperature:.3f})"
    out: dict[str, dict[str, Metrics]] = {seg_name: {}, "XGBoost baseline": {}}
    for name, series in held_out.items():
        table = classify_samples(seg, series)
        proba = table[[f"p_{c}" for c in CROPS]].to_numpy(dtype=np.float64)
        out[seg_name][name] = metrics(series.class_index(), proba)
    train = parts["train"]
    model = train_baseline(train.data, train.class_index())
    for name, series in held_out.items():
        out["XGBoost baseline"][name] = metrics(
            series.class_index(), baseline_proba(model, series.data)
        )
    log.info("evaluated %s and the baseline on %s", seg_name, list(held_out))
    return out


def run(weights: Path | None = None) -> str:
    """The report (plain text) for the shipped model, or a one-line skip message."""
    skip = shared_data_missing()
    if skip:
        return skip
    results = evaluate(weights)
    blocks = [
        "Crop type of real parcels (THE SPLIT CONTRACT, vision/realdata.py); "
        "baseline trained on France train"
    ]
    for model_name, sets in results.items():
        for set_name, m in sets.items():
            blocks.append(format_block(f"{model_name} | {set_name}", m))
    blocks.append(
        "\n".join(["published anchors (context, not like-for-like):", *(f"  {a}" for a in ANCHORS)])
    )
    return "\n\n".join(blocks)


def main(argv: list[str] | None = None) -> int:
    return weights_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
