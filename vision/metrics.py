"""Accuracy and calibration metrics of the crop-type segmenter.

Per stage date on generated test regions (:func:`evaluate_segmenter`): pixel accuracy, mIoU,
ECE (15 bins of the top probability), parcel accuracy and parcel ECE (a parcel's probabilities
are the mean over its interior pixels sharpened by the parcel temperature,
:func:`vision.calibration.parcel_probabilities`, as in :mod:`vision.assess`); on real parcels
(:func:`series_metrics`): overall accuracy and macro-F1 of the classify path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from geo.samples import SampleSeries
from geo.types import CROPS
from geo.zonal import grid_parcel_index, parcel_proba_mean
from vision.calibration import parcel_probabilities
from vision.dataset import RegionData, stage_indices, truncate_season
from vision.infer import predict_proba
from vision.model import Segmenter, model_input

log = logging.getLogger(__name__)

N_BINS = 15


def _add_bins(bins: np.ndarray, conf: np.ndarray, correct: np.ndarray) -> None:
    b = np.clip((conf * N_BINS).astype(np.int64), 0, N_BINS - 1)
    bins[0] += np.bincount(b, minlength=N_BINS)
    bins[1] += np.bincount(b, weights=conf, minlength=N_BINS)
    bins[2] += np.bincount(b, weights=correct.astype(np.float64), minlength=N_BINS)


def _ece(bins: np.ndarray) -> float:
    n = bins[0].sum()
    return float(np.abs(bins[1] - bins[2]).sum() / n) if n else float("nan")


class _StageAcc:
    """Running sums of one stage's confusion matrix and calibration bins."""

    def __init__(self, k: int, parcel_temperature: float = 1.0) -> None:
        self.k = k
        self.parcel_temperature = parcel_temperature
        self.confusion = np.zeros((k, k), np.int64)
        self.interior = np.zeros((k, k), np.int64)
        self.bins = np.zeros((3, N_BINS))
        self.pbins = np.zeros((3, N_BINS))
        self.parcel_n = 0
        self.parcel_ok = 0

    def add(self, proba: np.ndarray, reg: RegionData) -> None:
        k = self.k
        pred = proba.argmax(axis=0)
        labels = reg.labels.astype(np.int64)
        self.confusion += np.bincount((labels * k + pred).ravel(), minlength=k * k).reshape(k, k)
        _add_bins(self.bins, proba.max(axis=0).ravel(), (pred == labels).ravel())
        # one interior index for the area error matrix and the parcel means
        # (vision.calibration.region_parcel_mean builds the same)
        inner = grid_parcel_index(reg.parcel_index, len(reg.parcel_crops)).interior_only()
        flat = (labels * k + pred).ravel()[inner.pixels]
        self.interior += np.bincount(flat, minlength=k * k).reshape(k, k)
        mean = parcel_proba_mean(inner, proba)
        has = np.isfinite(mean).all(axis=1)
        parcel = parcel_probabilities(mean[has], self.parcel_temperature)
        ok = parcel.argmax(axis=1) == reg.parcel_crops[has]
        self.parcel_n += int(has.sum())
        self.parcel_ok += int(ok.sum())
        _add_bins(self.pbins, parcel.max(axis=1), ok)

    def result(self) -> dict[str, Any]:
        cm = self.confusion
        tp = np.diag(cm).astype(np.float64)
        union = cm.sum(0) + cm.sum(1) - tp
        present = union > 0
        iou = np.where(present, tp / np.maximum(union, 1), np.nan)
        return {
            "pixel_accuracy": float(tp.sum() / max(cm.sum(), 1)),
            "miou": float(np.mean(iou[present])) if present.any() else float("nan"),
            "iou": {
                c: None if np.isnan(v) else round(float(v), 4)
                for c, v in zip(CROPS, iou, strict=True)
            },
            "ece": _ece(self.bins),
            "parcel_accuracy": self.parcel_ok / max(self.parcel_n, 1),
            "parcel_ece": _ece(self.pbins),
            "n_pixels": int(cm.sum()),
            "n_parcels": self.parcel_n,
            "confusion": cm.tolist(),
            "interior_confusion": self.interior.tolist(),
        }


def evaluate_segmenter(
    seg: Segmenter, regions: Sequence[RegionData], stages: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Metrics of ``seg`` on ``regions`` with composites up to each stage date.

    Returns:
        {stage: {pixel_accuracy, miou, iou (per class), ece, parcel_accuracy, parcel_ece,
        n_pixels, n_parcels, confusion (K x K pixel counts, rows true, columns predicted),
        interior_confusion (the same over parcels' interior pixels, those
        :mod:`vision.assess` reads: the planted-area error matrix)}}.
    """
    out: dict[str, dict[str, Any]] = {}
    if not regions:
        return out
    idx = stage_indices(regions[0].season)
    for stage in stages or list(idx):
        acc = _StageAcc(seg.cfg.classes, seg.parcel_temperature)
        for reg in regions:
            comp = truncate_season(reg.data, reg.observed, idx[stage])
            proba = predict_proba(seg, model_input(comp, validity=seg.cfg.validity_channels))
            acc.add(proba, reg)
        out[stage] = r = acc.result()
        log.info(
            "%-10s pixel acc %.3f  mIoU %.3f  ECE %.3f  parcel acc %.3f  parcel ECE %.3f",
            stage,
            r["pixel_accuracy"],
            r["miou"],
            r["ece"],
            r["parcel_accuracy"],
            r["parcel_ece"],
        )
    return out


def series_metrics(seg: Segmenter, series: SampleSeries, min_count: int = 10) -> dict[str, Any]:
    """Parcel-level scores of ``seg`` on labelled ``series`` over the whole season (classify
    path, :func:`vision.classify.classify_series`).

    Returns:
        {"n", "accuracy", "macro_f1" (classes present in the truth), "macro_f1_major" (classes
        with >= ``min_count`` samples), "per_class": {class: {"n", "f1"}}}.
    """
    from vision.classify import classify_series

    truth = series.class_index()
    pred = classify_series(seg, series.data, series.observed).argmax(axis=1)
    per: dict[str, dict[str, float | int]] = {}
    for k in np.unique(truth):
        tp = int(((truth == k) & (pred == k)).sum())
        fp = int(((truth != k) & (pred == k)).sum())
        fn = int(((truth == k) & (pred != k)).sum())
        per[CROPS[int(k)]] = {"n": tp + fn, "f1": round(2 * tp / max(2 * tp + fp + fn, 1), 4)}
    major = [v["f1"] for v in per.values() if v["n"] >= min_count]
    return {
        "n": int(len(truth)),
        "accuracy": round(float((truth == pred).mean()) if len(truth) else float("nan"), 4),
        "macro_f1": round(float(np.mean([v["f1"] for v in per.values()])), 4) if per else None,
        "macro_f1_major": round(float(np.mean(major)), 4) if major else None,
        "per_class": per,
    }
