"""Temperature calibration of the crop-type segmenter.

One temperature fitted by LBFGS on the negative log-likelihood (:func:`fit_temperature`) of
pixels of the calibration regions at all six stage dates plus, with real data, France ``cal``
parcels through the classify path (half weight each) (:func:`calibrate`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from geo.samples import SampleSeries
from vision.dataset import RegionData, stage_indices, truncate_season
from vision.infer import predict_proba
from vision.model import Segmenter, model_input

log = logging.getLogger(__name__)


def fit_temperature(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> float:
    """Temperature T > 0 minimising the (weighted) NLL of ``softmax(logits / T)``.

    Args:
        logits: (N, K) float; labels: (N,) int64 class index; weights: (N,) float or None.
    """
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100, line_search_fn="strong_wolfe")
    w = None if weights is None else weights.float() / weights.float().sum()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        if w is None:
            loss = F.cross_entropy(logits / log_t.exp(), labels)
        else:
            loss = (F.cross_entropy(logits / log_t.exp(), labels, reduction="none") * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def _series_log_proba(
    seg: Segmenter, series: SampleSeries
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Log-probabilities (T = 1) of labelled ``series`` by the classify path at every stage
    date and at the season's end: (lists of (N, K) arrays, lists of (N,) labels)."""
    from vision.classify import classify_series

    labels = series.class_index()
    raw = Segmenter(model=seg.model, cfg=seg.cfg, temperature=1.0, meta=seg.meta)
    logs, labs = [], []
    for a in [*stage_indices(series.season).values(), None]:
        proba = classify_series(raw, series.data, series.observed, as_of_dekad=a)
        logs.append(np.log(np.clip(proba, 1e-12, None)))
        labs.append(labels)
    return logs, labs


def calibrate(
    seg: Segmenter,
    regions: Sequence[RegionData],
    *,
    max_pixels: int = 400_000,
    seed: int = 0,
    series: SampleSeries | None = None,
) -> float:
    """Fit ``seg``'s temperature on ``regions`` at all stage dates; returns T (seg unchanged).

    With labelled real ``series`` (France ``cal``), their classify-path probabilities at every
    stage date join the fit; the two sources weigh half each, however many pixels the regions
    give.
    """
    raw = Segmenter(model=seg.model, cfg=seg.cfg, temperature=1.0, meta=seg.meta)
    rng = np.random.default_rng(seed)
    sources: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
    if regions:
        idx = stage_indices(regions[0].season)
        per = max(1, max_pixels // (len(regions) * len(idx)))
        logs, labs = [], []
        for reg in regions:
            for a in idx.values():
                comp = truncate_season(reg.data, reg.observed, a)
                proba = predict_proba(raw, model_input(comp, validity=seg.cfg.validity_channels))
                flat = proba.reshape(proba.shape[0], -1)
                pick = rng.choice(flat.shape[1], size=min(per, flat.shape[1]), replace=False)
                logs.append(np.log(np.clip(flat[:, pick].T, 1e-12, None)))
                labs.append(reg.labels.ravel()[pick].astype(np.int64))
        sources.append((logs, labs))
    if series is not None and len(series):
        sources.append(_series_log_proba(seg, series))
    if not sources:
        return 1.0
    parts = [(np.concatenate(lg), np.concatenate(lb)) for lg, lb in sources]
    logits = torch.from_numpy(np.concatenate([p[0] for p in parts])).float()
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    weights = torch.from_numpy(np.concatenate([np.full(len(p[1]), 1.0 / len(p[1])) for p in parts]))
    t = fit_temperature(logits, labels, weights if len(parts) > 1 else None)
    log.info("temperature %.3f (NLL fitted on %s)", t, " + ".join(str(len(p[1])) for p in parts))
    return t
