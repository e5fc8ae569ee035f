"""Train, calibrate, evaluate and fine-tune the crop-type segmenter (CPU).

Data (:mod:`vision.dataset`): ``n_regions`` generated training regions, ``n_calib_regions``
for the temperature and ``n_test_regions`` for the reported metrics, each a separate
:mod:`geo.synth` seed (the three sets never share a seed). Training batches are random
``patch`` x ``patch`` crops at random as_of dekads with flips / rotations. With real labelled
series (``TrainConfig.real_samples``, THE SPLIT CONTRACT of :mod:`vision.realdata`: France
``train``), each crop gets real series laid into its fields, a share of crops becomes a
monthly extraction, and every step also feeds "uniform images" (one real series over a small
block, as :mod:`vision.classify` presents a parcel). Without the file (a user's machine) the
real part is skipped with a log line.

Optimisation: AdamW, one-cycle learning rate (by steps, or by the clock when a busy machine
cannot finish the steps within ``max_minutes``), cross-entropy over the 11 classes, from
scratch or warm-started (``init``), deterministic for a seed on one machine when the run
finishes its steps (``torch.manual_seed``, a numpy ``Generator``,
``torch.use_deterministic_algorithms``). Calibration: one temperature fitted by LBFGS on the
negative log-likelihood of pixels of the calibration regions at all six stage dates plus,
with real data, France ``cal`` parcels through the classify path (half weight each).

Metrics (:func:`evaluate_segmenter`) per stage date on the test regions: pixel accuracy,
mIoU, ECE (15 bins of the top probability), parcel accuracy and parcel ECE (a parcel's crop
is the class of highest mean probability, as in :mod:`vision.assess`); on real parcels
(:func:`series_metrics`): overall accuracy and macro-F1 of the classify path.

Fine-tuning (:func:`finetune`): a few epochs at a low learning rate from trained weights on a
lender's labelled series and / or labelled scenes (pixels outside parcels ignored), batch-norm
statistics frozen.

CLI: ``cropcredit train-segmenter --out data/models/segmenter.pt --seed 0`` calls
:func:`train_and_save`, which also writes ``SEGMENTER_CARD.md`` beside the weights;
``--samples FILE`` or ``--labels PARCELS --imagery DIR`` call :func:`finetune_and_save`.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from geo.errors import ModelError
from geo.legend import IGNORE
from geo.samples import SampleSeries
from geo.types import CROPS, Season
from vision.dataset import (
    STAGE_DATES,
    RegionData,
    build_region,
    patches,
    sample_as_of,
    stage_indices,
    truncate_season,
    uniform_images,
)
from vision.infer import predict_proba
from vision.model import (
    Segmenter,
    SegmenterConfig,
    build_model,
    model_input,
    save_segmenter,
)
from vision.realdata import FRANCE_FILE, SeriesBank, belgium_samples, france_parts, series_bank

log = logging.getLogger(__name__)

_REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = _REPO / "out" / "cache" / "segmenter"
#: Seed offsets keeping training, calibration and test regions apart.
TRAIN_SEEDS, CALIB_SEEDS, TEST_SEEDS = 10_000, 20_000, 30_000
N_BINS = 15
#: Target value of pixels that carry no label (outside labelled parcels when fine-tuning).
IGNORE_INDEX = -100
BELGIUM_NAME = "belgium2021_month_samples.parquet"


class TrainConfig(BaseModel):
    """Everything that decides a trained segmenter (saved in the weights' metadata)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    season: int = 2026
    n_regions: int = Field(default=16, ge=1)
    n_calib_regions: int = Field(default=2, ge=0)
    n_test_regions: int = Field(default=3, ge=0)
    size_px: int = Field(default=192, ge=32)
    #: 6 crops of 64 px a step: laying real series costs ~0.1 s a crop, so crops are smaller
    #: than the 8 x 96 px of the generated-only model to leave time for more steps.
    patch: int = Field(default=64, ge=16)
    batch: int = Field(default=6, ge=1)
    #: 5 x 144 steps; on a busy machine the time budget ends the run first (see _optimise).
    epochs: int = Field(default=5, ge=1)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    model: SegmenterConfig = SegmenterConfig()
    cache_dir: Path | None = DEFAULT_CACHE
    threads: int | None = None
    max_minutes: float = Field(default=22.0, gt=0)
    #: Real labelled series (WorldCereal long layout) split by :func:`vision.realdata.france_parts`:
    #: ``train`` is laid into the scenes and fed as uniform images, ``cal`` joins the
    #: temperature fit. None, or a missing file, trains on generated scenes only.
    real_samples: Path | None = FRANCE_FILE
    #: Share of a patch's fields (of classes the bank has) that get a real series. 0.9 cost
    #: the generated scenes 0.99 -> 0.79 pixel accuracy (seed 4242, harvest): half keeps both.
    p_real: float = Field(default=0.5, ge=0, le=1)
    #: Share of patches and uniform images turned into a monthly extraction.
    monthly_share: float = Field(default=0.5, ge=0, le=1)
    #: Uniform images (one real series over ``uniform_side`` px) per step, their loss weight.
    uniform_batch: int = Field(default=32, ge=0)
    uniform_side: int = Field(default=16, ge=8)
    uniform_weight: float = Field(default=1.0, ge=0)
    #: Uniform images sample classes with probability ~ count ** class_power (0 = balanced).
    class_power: float = Field(default=0.5, ge=0, le=1)
    #: Warm start from these weights (same architecture) instead of from scratch.
    init: Path | None = None

    @property
    def steps_per_epoch(self) -> int:
        """One epoch = every training region at each of the 6 stages, covered by patches."""
        tiles = math.ceil(self.size_px / self.patch) ** 2
        return max(1, math.ceil(self.n_regions * len(STAGE_DATES) * tiles / self.batch))


@dataclass
class TrainResult:
    """A trained, calibrated segmenter with its metrics."""

    segmenter: Segmenter
    metrics: dict[str, dict[str, Any]]
    history: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


def region_seeds(cfg: TrainConfig) -> tuple[list[int], list[int], list[int]]:
    """Generator seeds of the training, calibration and test regions."""
    base = cfg.seed * 1000
    return (
        [TRAIN_SEEDS + base + i for i in range(cfg.n_regions)],
        [CALIB_SEEDS + base + i for i in range(cfg.n_calib_regions)],
        [TEST_SEEDS + base + i for i in range(cfg.n_test_regions)],
    )


def load_regions(
    seeds: Sequence[int], size_px: int, season: Season, cache_dir: Path | None
) -> list[RegionData]:
    """Build (or read from the cache) the regions of ``seeds``."""
    out = []
    for s in seeds:
        t0 = time.perf_counter()
        out.append(build_region(s, size_px, season=season, cache_dir=cache_dir))
        log.debug("region %d ready in %.1f s", s, time.perf_counter() - t0)
    return out


# --- metrics ---------------------------------------------------------------------------------


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

    def __init__(self, k: int) -> None:
        self.k = k
        self.confusion = np.zeros((k, k), np.int64)
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
        inside = reg.parcel_index >= 0
        rows = reg.parcel_index[inside]
        n = len(reg.parcel_crops)
        cnt = np.bincount(rows, minlength=n).astype(np.float64)
        sums = np.stack([np.bincount(rows, weights=p[inside], minlength=n) for p in proba])
        has = cnt > 0
        mean = sums[:, has] / cnt[has]
        ok = mean.argmax(axis=0) == reg.parcel_crops[has]
        self.parcel_n += int(has.sum())
        self.parcel_ok += int(ok.sum())
        _add_bins(self.pbins, mean.max(axis=0), ok)

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
        }


def evaluate_segmenter(
    seg: Segmenter, regions: Sequence[RegionData], stages: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Metrics of ``seg`` on ``regions`` with composites up to each stage date.

    Returns:
        {stage: {pixel_accuracy, miou, iou (per class), ece, parcel_accuracy, parcel_ece,
        n_pixels, n_parcels, confusion (K x K pixel counts, rows true, columns predicted)}}.
    """
    out: dict[str, dict[str, Any]] = {}
    if not regions:
        return out
    idx = stage_indices(regions[0].season)
    for stage in stages or list(idx):
        acc = _StageAcc(seg.cfg.classes)
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


# --- calibration -----------------------------------------------------------------------------


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

    assert series.crop is not None
    labels = np.array([CROPS.index(str(c)) for c in series.crop], dtype=np.int64)
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


def series_metrics(seg: Segmenter, series: SampleSeries, min_count: int = 10) -> dict[str, Any]:
    """Parcel-level scores of ``seg`` on labelled ``series`` over the whole season (classify
    path, :func:`vision.classify.classify_series`).

    Returns:
        {"n", "accuracy", "macro_f1" (classes present in the truth), "macro_f1_major" (classes
        with >= ``min_count`` samples), "per_class": {class: {"n", "f1"}}}.
    """
    from vision.classify import classify_series

    assert series.crop is not None
    truth = np.array([CROPS.index(str(c)) for c in series.crop], dtype=np.int64)
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


# --- training --------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    """Seed torch and ask for deterministic kernels; numpy goes through a ``Generator``.

    ``use_deterministic_algorithms`` cost nothing measurable here (0.78 vs 0.84 s per step of
    8 x 96 px on 2 threads); step time is dominated by the machine's load.
    """
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def train_segmenter(cfg: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Generate data, train, calibrate and evaluate a segmenter (CPU, from scratch)."""
    t_start = time.perf_counter()
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, progress=progress, t_start=t_start)
    finally:
        torch.set_num_threads(old_threads)


def load_real(path: Path | None) -> dict[str, SampleSeries] | None:
    """France parts (:func:`vision.realdata.france_parts`) of ``path``, or None (logged)
    when no path is set or the file is absent (as on a user's machine)."""
    if path is None:
        return None
    if not Path(path).is_file():
        log.info("no real samples at %s: training on generated scenes only", path)
        return None
    return france_parts(Path(path))


Batch = tuple[np.ndarray, np.ndarray, float]


def _optimise(
    model: torch.nn.Module,
    next_batches: Callable[[], list[Batch]],
    *,
    total: int,
    steps_per_epoch: int,
    lr: float,
    weight_decay: float,
    max_minutes: float,
    progress: bool,
    description: str,
    label_smoothing: float = 0.0,
    pct_start: float = 0.1,
    freeze_bn: bool = False,
) -> tuple[list[float], int, float]:
    """AdamW + one-cycle (:func:`one_cycle_lr`) over ``total`` steps or ``max_minutes``,
    whichever ends first; each step sums the weighted cross-entropy of
    the (x, y, weight) batches ``next_batches()`` returns (y = -100 is ignored).

    Returns:
        (loss history: first batch then a running mean per epoch, steps done, seconds).
    """
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: list[float] = []
    t_train = time.perf_counter()
    model.train()
    if freeze_bn:  # a few labelled parcels must not move the statistics of whole scenes
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    steps_done = 0
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(description, total=total, loss=float("nan"))
        running = float("nan")
        for step in range(total):
            # one-cycle by the share of the steps done; when the steps so far project past
            # the time budget (a busy machine), by the share of the budget spent instead, so
            # the model is still fully annealed. Runs that fit stay deterministic.
            done = step / total
            elapsed = time.perf_counter() - t_train
            if step and elapsed / step * total > max_minutes * 60:
                done = max(done, elapsed / (max_minutes * 60))
            if done >= 1.0:
                log.warning(
                    "stopping after %d of %d steps: the %.0f min budget is spent (the learning "
                    "rate was annealed by the clock)",
                    step,
                    total,
                    max_minutes,
                )
                history.append(running)
                break
            for group in opt.param_groups:
                group["lr"] = one_cycle_lr(done, lr, pct_start)
            loss = torch.zeros(())
            for x, y, weight in next_batches():
                xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
                ce = F.cross_entropy(
                    model(xt),
                    torch.from_numpy(y),
                    label_smoothing=label_smoothing,
                    ignore_index=IGNORE_INDEX,
                )
                loss = loss + weight * ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            val = float(loss.detach())
            if step == 0:
                history.append(val)  # history[0]: loss of the first batch
            running = val if np.isnan(running) else 0.95 * running + 0.05 * val
            if (step + 1) % steps_per_epoch == 0 or step + 1 == total:
                history.append(running)
                log.info("epoch %d loss %.4f", len(history) - 1, running)
            steps_done = step + 1
            bar.update(task, advance=1, loss=running)
    model.eval()
    return history, steps_done, time.perf_counter() - t_train


def one_cycle_lr(done: float, lr: float, pct_start: float = 0.1) -> float:
    """Learning rate at share ``done`` (0-1) of a run: linear warm-up from ``lr / 25`` to
    ``lr`` over ``pct_start``, then cosine down to ``lr / 1e4`` (as torch's ``OneCycleLR``)."""
    if done < pct_start:
        return lr / 25 + (lr - lr / 25) * done / pct_start
    f = min(1.0, (done - pct_start) / max(1e-9, 1 - pct_start))
    return lr / 1e4 + (lr - lr / 1e4) * 0.5 * (1 + math.cos(math.pi * f))


def _class_counts(series: SampleSeries | None) -> dict[str, int]:
    if series is None or series.crop is None:
        return {}
    names, counts = np.unique(series.crop.astype(str), return_counts=True)
    names, counts = names[names != IGNORE], counts[names != IGNORE]
    return {str(n): int(c) for n, c in zip(names, counts, strict=True)}


def _train(cfg: TrainConfig, *, progress: bool, t_start: float) -> TrainResult:
    season = Season(cfg.season)
    _seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train_s, calib_s, test_s = region_seeds(cfg)
    t0 = time.perf_counter()
    train_r = load_regions(train_s, cfg.size_px, season, cfg.cache_dir)
    calib_r = load_regions(calib_s, cfg.size_px, season, cfg.cache_dir)
    test_r = load_regions(test_s, cfg.size_px, season, cfg.cache_dir)
    for reg in train_r:  # float32 in memory: batches are cut 2x faster than from float16
        reg.data = reg.data.astype(np.float32)
    real = load_real(cfg.real_samples)
    bank: SeriesBank | None = series_bank(real["train"]) if real else None
    data_seconds = time.perf_counter() - t0
    log.info(
        "data: %d train / %d calib / %d test regions of %d px, %s real train series, in %.0f s",
        len(train_r),
        len(calib_r),
        len(test_r),
        cfg.size_px,
        len(bank) if bank is not None else "no",
        data_seconds,
    )

    init_version = None
    if cfg.init is not None:
        from vision.model import load_segmenter

        start = load_segmenter(cfg.init)
        if start.cfg != cfg.model:
            raise ModelError(
                f"{cfg.init}: architecture {start.cfg} differs from the config's {cfg.model}; "
                "warm-start from weights of the same architecture or drop init"
            )
        model = start.model
        init_version = start.version
        log.info("warm start from %s (version %s)", cfg.init, init_version)
    else:
        model = build_model(cfg.model)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    total = cfg.epochs * cfg.steps_per_epoch
    scenes = patches(
        train_r,
        patch=cfg.patch,
        batch=cfg.batch,
        rng=rng,
        validity=cfg.model.validity_channels,
        bank=bank,
        p_real=cfg.p_real,
        monthly_share=cfg.monthly_share,
    )
    uniform = (
        uniform_images(
            bank,
            side=cfg.uniform_side,
            batch=cfg.uniform_batch,
            rng=rng,
            season=season,
            validity=cfg.model.validity_channels,
            monthly_share=cfg.monthly_share,
            class_power=cfg.class_power,
        )
        if bank is not None and cfg.uniform_batch > 0 and cfg.uniform_weight > 0
        else None
    )

    def next_batches() -> list[Batch]:
        out: list[Batch] = [(*next(scenes), 1.0)]
        if uniform is not None:
            out.append((*next(uniform), cfg.uniform_weight))
        return out

    history, steps_done, train_seconds = _optimise(
        model,
        next_batches,
        total=total,
        steps_per_epoch=cfg.steps_per_epoch,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        max_minutes=cfg.max_minutes,
        progress=progress,
        description="training segmenter",
        label_smoothing=cfg.label_smoothing,
    )

    seg = Segmenter(model=model, cfg=cfg.model, temperature=1.0)
    seg.temperature = calibrate(seg, calib_r, seed=cfg.seed, series=real["cal"] if real else None)
    metrics = evaluate_segmenter(seg, test_r)
    real_metrics: dict[str, Any] = {}
    if real:
        real_metrics = {f"france_{k}": series_metrics(seg, v) for k, v in real.items()}
        if Path(cfg.real_samples or "").parent.joinpath(BELGIUM_NAME).is_file():
            be = belgium_samples(Path(cfg.real_samples or "").parent / BELGIUM_NAME)
            real_metrics["belgium"] = series_metrics(seg, be)
        for name, m in real_metrics.items():
            log.info(
                "%-14s n %3d  OA %.3f  macro-F1 %.3f (classes >= 10: %s)",
                name,
                m["n"],
                m["accuracy"],
                m["macro_f1"],
                m["macro_f1_major"],
            )
    meta: dict[str, Any] = {
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "train_config": cfg.model_dump(mode="json", exclude={"cache_dir", "threads"}),
        "train_seeds": train_s,
        "calib_seeds": calib_s,
        "test_seeds": test_s,
        "init_version": init_version,
        "real_train_counts": _class_counts(real["train"]) if real else {},
        "real_cal_counts": _class_counts(real["cal"]) if real else {},
        "real_metrics": real_metrics,
        "train_seconds": round(train_seconds, 1),
        "data_seconds": round(data_seconds, 1),
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "steps": steps_done,
        "planned_steps": total,
        "loss_history": [round(v, 4) for v in history],  # first batch, then per epoch
        "torch": str(torch.__version__),
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
        "legend": list(CROPS),
        "stage_dates": dict(STAGE_DATES),
        "metrics": {
            s: {k: v for k, v in m.items() if k != "confusion"} for s, m in metrics.items()
        },
        "confusion_by_stage": {s: m["confusion"] for s, m in metrics.items()},
        "confusion": metrics["harvest"]["confusion"] if "harvest" in metrics else None,
    }
    seg.meta = meta
    return TrainResult(seg, metrics, history, train_seconds, meta)


def _data_lines(meta: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """The card's data section: generated regions, real parcels and the split contract."""
    lines = [
        f"Generated scenes (`geo.synth`, season {cfg['season']}, western-France crop mix): "
        f"{cfg['n_regions']} training regions of {cfg['size_px']} x {cfg['size_px']} px "
        f"(seeds {meta['train_seeds'][0]}..{meta['train_seeds'][-1]}), "
        f"{cfg['n_calib_regions']} calibration and {cfg['n_test_regions']} test regions "
        "(disjoint seeds), composited with `geo.composite.composite_dekads`; training sees "
        f"random as_of dekads (half near the stage dates), random {cfg['patch']} px crops, "
        "flips and rotations.",
    ]
    counts = meta.get("real_train_counts") or {}
    if not counts:
        lines += ["", "No real parcels (the shared data was absent): generated scenes only."]
    else:
        lines += [
            "",
            f"Real parcels: WorldCereal France 2023 (`{Path(str(cfg['real_samples'])).name}`, "
            "LPIS labels via `data/legend.csv`), the `train` part of THE SPLIT CONTRACT "
            "(`vision.realdata`: `geo.samples.split_by_block` of all 500 samples into train / "
            "cal / test = 0.6 / 0.15 / 0.25 by 10 km blocks, seed 0, `ignore` labels dropped "
            "after the split). France `test` and all of Belgium 2021 are never used for "
            "training or calibration.",
            "",
            f"- train ({sum(counts.values())} parcels): "
            + ", ".join(f"{c} {n}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1])),
            f"- cal ({sum((meta.get('real_cal_counts') or {}).values())} parcels, temperature "
            "only): "
            + ", ".join(
                f"{c} {n}"
                for c, n in sorted(
                    (meta.get("real_cal_counts") or {}).items(), key=lambda kv: -kv[1]
                )
            ),
            "",
            f"Each training crop gets real series laid into its fields "
            f"(`vision.realdata.lay_series`: p = {cfg['p_real']} per field of a class with >= 3 "
            "series; smooth within-field gain, pixel noise, the series' own cloud gaps, mixed "
            f"edge pixels); {cfg['monthly_share']:.0%} of the crops and of the uniform images "
            "are turned into monthly extractions (`to_monthly`, as Belgium's). Each step also "
            f"feeds {cfg['uniform_batch']} uniform images ({cfg['uniform_side']} px, every "
            "pixel one real series with noise: how `vision.classify` presents a parcel) with "
            f"loss weight {cfg['uniform_weight']}; their classes are drawn with probability "
            f"~ count^{cfg['class_power']} so that grassland (~37 %) does not drown the rare "
            "classes.",
        ]
    lines += [
        "",
        f"Optimisation: {meta['steps']} steps of {cfg['batch']} crops"
        + (f" + {cfg['uniform_batch']} uniform images" if counts else "")
        + f", AdamW lr {cfg['lr']}, one-cycle schedule, cross-entropy, "
        + (
            f"warm-started from segmenter `{meta['init_version']}` (the previous shipped "
            "weights, trained on generated scenes only; see the git history of "
            "data/models/segmenter.pt). "
            if meta.get("init_version")
            else "from scratch. "
        )
        + "Temperature: one LBFGS fit of the NLL of the calibration regions' pixels at the six "
        "stage dates"
        + (
            " and of France `cal` parcels (classify path, stage dates and season end), the two "
            "sources weighing half each."
            if counts
            else "."
        ),
    ]
    return lines


def _real_metric_lines(meta: dict[str, Any]) -> list[str]:
    """The card's table of parcel scores on real series (classify path, whole season)."""
    real = meta.get("real_metrics") or {}
    if not real:
        return []
    names = {
        "france_train": "France 2023 train (seen in training)",
        "france_cal": "France 2023 cal (temperature only)",
        "france_test": "France 2023 test (held out)",
        "belgium": "Belgium 2021, monthly (held out, other country and year)",
    }
    lines = [
        "## Real parcels (classify path, whole season)",
        "`vision.classify.classify_series`: overall accuracy (OA) and macro-F1 over the "
        "classes present, and over classes with >= 10 parcels in the set (the issue's targets: "
        "OA >= 0.85, macro-F1 >= 0.75 on France test).",
        "",
        "| set | parcels | OA | macro-F1 | macro-F1 (>= 10) | per-class F1 (n) |",
        "|---|---|---|---|---|---|",
    ]
    for key, m in real.items():
        per = ", ".join(f"{c} {v['f1']:.2f} ({v['n']})" for c, v in m["per_class"].items())
        major = m["macro_f1_major"]
        lines.append(
            f"| {names.get(key, key)} | {m['n']} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | "
            f"{'-' if major is None else f'{major:.3f}'} | {per} |"
        )
    return [*lines, ""]


def write_card(path: Path, result: TrainResult, weights: Path) -> None:
    """Write the model card (markdown) describing data, legend, metrics and how to rebuild."""
    meta = result.meta
    cfg = meta["train_config"]
    lines = [
        "# Crop-type segmenter (`data/models/segmenter.pt`)",
        "",
        f"Version `{result.segmenter.meta.get('version', '?')}`, trained "
        f"{meta['trained_at']} on {meta['machine']} (torch {meta['torch']}) in "
        f"{meta['train_seconds'] / 60:.1f} min ({meta['total_seconds'] / 60:.1f} min with data "
        f"and evaluation). Weights: {weights.stat().st_size / 1e6:.1f} MB.",
        "",
        "## What it does",
        "Per-pixel crop type at 10 m from a season of Sentinel-2 dekad composites "
        "`(T=36, C=10, H, W)` (`vision.model.model_input`: reflectance per band scaled to ~0-1, "
        "missing -> 0, plus 36 validity channels). Output: calibrated probabilities over the "
        "11 classes (`softmax(logits / T)`, T = "
        f"{result.segmenter.temperature:.3f}).",
        "",
        "Architecture: per-pixel 1x1 stem (396 -> "
        f"{cfg['model']['stem_channels']} channels) -> smp U-Net ({cfg['model']['encoder']}, "
        f"depth {cfg['model']['encoder_depth']}, decoder {tuple(cfg['model']['decoder_channels'])}"
        ") + full-resolution 1x1 pixel head; no pretrained (ImageNet) weights"
        + (
            f"; warm-started from segmenter `{meta['init_version']}`."
            if meta.get("init_version")
            else "; trained from scratch."
        ),
        "",
        "## Legend (index = class)",
        ", ".join(f"{i} {c}" for i, c in enumerate(CROPS)),
        "",
        "## Data",
        *_data_lines(meta, cfg),
        *(
            [
                "",
                f"**Stopped by the time budget** ({cfg['max_minutes']:.0f} min on a shared 2-core "
                f"machine): {meta['steps']} of {meta['planned_steps']} planned steps; the learning "
                "rate follows the share of the budget spent, so it was fully annealed, but a "
                "rerun on a quieter machine takes more steps and gives a different model.",
            ]
            if meta.get("planned_steps", meta["steps"]) > meta["steps"]
            else []
        ),
        "",
        *_real_metric_lines(meta),
        "## Metrics on the held-out generated test regions, by decision stage",
        "Composite up to the stage date (poitou-nord calendar). Parcel accuracy: class of "
        "highest mean probability over the parcel's pixels vs the true crop. ECE: 15 bins.",
        "",
        "| stage | as_of | pixel acc | mIoU | ECE | parcel acc | parcel ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage, m in meta["metrics"].items():
        lines.append(
            f"| {stage} | {STAGE_DATES[stage]} | {m['pixel_accuracy']:.3f} | {m['miou']:.3f} | "
            f"{m['ece']:.3f} | {m['parcel_accuracy']:.3f} | {m['parcel_ece']:.3f} |"
        )
    if meta.get("notes"):
        lines += ["", str(meta["notes"])]
    harvest = meta["metrics"].get("harvest")
    if harvest:
        lines += [
            "",
            "Per-class IoU at harvest: "
            + ", ".join(f"{c} {v:.2f}" for c, v in harvest["iou"].items() if v is not None)
            + ".",
        ]
    lines += [
        "",
        "## Limits",
        "- Real parcels come from one region and year (western France 2023, 307 training "
        "parcels, ~37 % grassland); rare classes (non_crop, potato, spring cereals, soybean, "
        "rapeseed) have a handful of series or none, and Belgium shows how far accuracy falls "
        "out of region. Fine-tune on the lender's own labelled parcels "
        "(`cropcredit train-segmenter --samples FILE` or `--labels PARCELS --imagery DIR`) "
        "before relying on it; `python -m eval finetune` measures what that buys on Belgium.",
        "- Early stages (pre_sowing, sowing) cannot separate summer crops (bare soil): the "
        "probabilities say so, and the credit policy should hold on low confidence.",
        "- The temperature is one number fitted over all stages; parcel-level confidence (mean "
        "pixel probability) is conservative where parcel accuracy exceeds pixel accuracy.",
        "",
        "## Reproduce",
        "```",
        "cropcredit train-segmenter --out data/models/segmenter.pt --seed 0"
        + (f" --init <segmenter {meta['init_version']}>" if meta.get("init_version") else ""),
        "```",
        *(
            [
                f"where `<segmenter {meta['init_version']}>` is the previous shipped "
                "data/models/segmenter.pt (git history; itself reproducible with the command "
                "above without --init on generated scenes only, as its card said)."
            ]
            if meta.get("init_version")
            else []
        ),
        f"(= `vision.train.train_and_save(Path('data/models/segmenter.pt'), seed={cfg['seed']})` "
        "with the `TrainConfig` saved in the weights' `meta['train_config']`; it reads "
        "`../shared/data/worldcereal/france2023_dekad_samples.parquet` when present and trains on "
        "generated scenes only, with a log line, when not. Deterministic for a seed, machine "
        "and thread count when the run completes its planned steps within the budget.) "
        "Evaluate: `python -m eval segmenter`, `python -m eval realcrops`, "
        "`python -m eval finetune`.",
        "",
    ]
    path.write_text("\n".join(lines))


def train_and_save(
    out: Path,
    *,
    seed: int = 0,
    n_regions: int = 16,
    epochs: int = 5,
    size_px: int = 192,
    progress: bool = True,
    card: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Train with :class:`TrainConfig` defaults (plus ``overrides``), save to ``out``.

    Writes the weights (with config, temperature and metrics in their metadata) and, with
    ``card``, ``SEGMENTER_CARD.md`` in the same folder.

    Returns:
        {"version", "path", "temperature", "train_seconds", "metrics": {stage: {...}}}.
    """
    cfg = TrainConfig(seed=seed, n_regions=n_regions, epochs=epochs, size_px=size_px, **overrides)
    result = train_segmenter(cfg, progress=progress)
    seg = result.segmenter
    out = Path(out)
    version = save_segmenter(out, seg.model, seg.cfg, seg.temperature, result.meta)
    seg.meta["version"] = version
    if card:
        write_card(out.parent / "SEGMENTER_CARD.md", result, out)
    return {
        "version": version,
        "path": str(out),
        "temperature": seg.temperature,
        "train_seconds": result.train_seconds,
        "metrics": result.meta["metrics"],
    }


# --- fine-tuning for a lender's region --------------------------------------------------------


class FinetuneConfig(BaseModel):
    """A short fine-tune of a trained segmenter on a lender's labels (saved in the metadata).

    An epoch shows every labelled series about 6 times (once per stage) as uniform images,
    and / or covers the labelled scenes about 6 times with ``patch`` crops.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    epochs: int = Field(default=10, ge=1)
    lr: float = Field(default=3e-4, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    batch: int = Field(default=32, ge=1)
    side: int = Field(default=16, ge=8)
    patch: int = Field(default=64, ge=16)
    scene_batch: int = Field(default=4, ge=1)
    monthly_share: float = Field(default=0.0, ge=0, le=1)
    class_power: float = Field(default=0.5, ge=0, le=1)
    threads: int | None = None
    max_minutes: float = Field(default=10.0, gt=0)


@dataclass
class LabelledScene:
    """A composite with labelled pixels: ``data`` (T, C, H, W) reflectance 0-1 (NaN missing),
    ``observed`` (T, H, W) bool, ``labels`` (H, W) int64 class index of
    :data:`geo.types.CROPS`, :data:`IGNORE_INDEX` where unlabelled (outside parcels)."""

    data: np.ndarray
    observed: np.ndarray
    labels: np.ndarray
    season: Season


def labelled_patches(
    scenes: Sequence[LabelledScene],
    *,
    patch: int,
    batch: int,
    rng: np.random.Generator,
    validity: bool = True,
    multiple: int = 8,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless batches of crops centred near a random labelled pixel, at a random as_of
    (:func:`vision.dataset.sample_as_of`), randomly flipped / rotated.

    Yields:
        (x (batch, in_channels, p, p), y (batch, p, p) int64, :data:`IGNORE_INDEX` unlabelled)
        with p = ``patch`` shrunk to the smallest scene, a multiple of ``multiple``.

    Raises:
        ValueError: no scene has a labelled pixel, or a scene is smaller than ``multiple``.
    """
    side = min([patch, *(min(s.labels.shape) for s in scenes)])
    p = side // multiple * multiple
    labelled = [np.flatnonzero(s.labels.ravel() != IGNORE_INDEX) for s in scenes]
    if p < multiple or not any(len(ix) for ix in labelled):
        raise ValueError(
            f"labelled scenes need >= {multiple} x {multiple} px and a labelled pixel; got "
            f"{[s.labels.shape for s in scenes]} with {sum(map(len, labelled))} labelled pixels"
        )
    usable = [i for i, ix in enumerate(labelled) if len(ix)]
    while True:
        xs, ys = [], []
        for _ in range(batch):
            i = usable[int(rng.integers(len(usable)))]
            sc = scenes[i]
            h, w = sc.labels.shape
            cy, cx = divmod(int(labelled[i][int(rng.integers(len(labelled[i])))]), w)
            y0 = int(np.clip(cy - int(rng.integers(p)), 0, h - p))
            x0 = int(np.clip(cx - int(rng.integers(p)), 0, w - p))
            win = (slice(y0, y0 + p), slice(x0, x0 + p))
            comp = truncate_season(
                sc.data[:, :, win[0], win[1]],
                sc.observed[:, win[0], win[1]],
                sample_as_of(rng, sc.season),
            )
            x = model_input(comp, validity=validity)
            y = sc.labels[win].astype(np.int64)
            k = int(rng.integers(4))
            x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
            if rng.random() < 0.5:
                x, y = x[:, :, ::-1], y[:, ::-1]
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        yield np.stack(xs), np.stack(ys)


def series_loss(seg: Segmenter, series: SampleSeries) -> float:
    """Mean negative log-likelihood of the labels of ``series`` under ``seg``'s calibrated
    probabilities (classify path, whole season)."""
    from vision.classify import classify_series

    assert series.crop is not None
    truth = np.array([CROPS.index(str(c)) for c in series.crop], dtype=np.int64)
    proba = classify_series(seg, series.data, series.observed)
    return float(-np.log(np.clip(proba[np.arange(len(truth)), truth], 1e-12, None)).mean())


def finetune(
    seg: Segmenter,
    *,
    series: SampleSeries | None = None,
    scenes: Sequence[LabelledScene] = (),
    cfg: FinetuneConfig | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune a copy of ``seg`` on labelled ``series`` (uniform images, as classified by
    :mod:`vision.classify`) and / or labelled ``scenes`` (pixels inside labelled parcels).

    Few epochs at a low learning rate from ``seg``'s weights; batch-norm statistics stay
    frozen (a few hundred parcels must not move what whole scenes taught); the temperature is
    kept. ``seg`` itself is not changed.

    Raises:
        ValueError: neither series nor scenes, or nothing labelled in them.
    """
    cfg = cfg or FinetuneConfig()
    t_start = time.perf_counter()
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        _seed_everything(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        model = copy.deepcopy(seg.model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        validity = seg.cfg.validity_channels
        bank = series_bank(series, min_per_class=1) if series is not None else None
        if bank is not None and not len(bank):
            raise ValueError("the samples have no labelled series with a clear observation")
        if bank is None and not scenes:
            raise ValueError("fine-tuning needs labelled series or labelled scenes")
        sources: list[Iterator[tuple[np.ndarray, np.ndarray]]] = []
        steps = 1
        data: dict[str, Any] = {}
        if bank is not None:
            season = series.season if series is not None else Season(2026)
            sources.append(
                uniform_images(
                    bank,
                    side=cfg.side,
                    batch=cfg.batch,
                    rng=rng,
                    season=season,
                    validity=validity,
                    monthly_share=cfg.monthly_share,
                    class_power=cfg.class_power,
                )
            )
            steps = max(steps, math.ceil(6 * len(bank) / cfg.batch))
            data["series"] = _class_counts(series)
        if scenes:
            sources.append(
                labelled_patches(
                    scenes,
                    patch=cfg.patch,
                    batch=cfg.scene_batch,
                    rng=rng,
                    validity=validity,
                    multiple=seg.cfg.size_multiple,
                )
            )
            tiles = sum(math.ceil(s.labels.size / cfg.patch**2) for s in scenes)
            steps = max(steps, math.ceil(6 * tiles / cfg.scene_batch))
            labels = np.concatenate([s.labels.ravel() for s in scenes])
            labels = labels[labels != IGNORE_INDEX]
            names, counts = np.unique(labels, return_counts=True)
            data["scene_pixels"] = {
                CROPS[int(k)]: int(n) for k, n in zip(names, counts, strict=True)
            }

        def next_batches() -> list[Batch]:
            return [(*next(src), 1.0) for src in sources]

        history, steps_done, seconds = _optimise(
            model,
            next_batches,
            total=cfg.epochs * steps,
            steps_per_epoch=steps,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            max_minutes=cfg.max_minutes,
            progress=progress,
            description="fine-tuning segmenter",
            pct_start=0.2,
            freeze_bn=True,
        )
    finally:
        torch.set_num_threads(old_threads)
    base = {k: v for k, v in seg.meta.items() if k != "version"}
    meta: dict[str, Any] = {
        **base,
        "finetune": {
            "finetuned_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "init_version": seg.version,
            "config": cfg.model_dump(mode="json", exclude={"threads"}),
            "data": data,
            "steps": steps_done,
            "planned_steps": cfg.epochs * steps,
            "loss_history": [round(v, 4) for v in history],
            "train_seconds": round(seconds, 1),
            "total_seconds": round(time.perf_counter() - t_start, 1),
        },
    }
    out = Segmenter(model=model, cfg=seg.cfg, temperature=seg.temperature, meta=meta)
    return TrainResult(out, {}, history, seconds, meta)


def write_finetune_card(path: Path, result: TrainResult, weights: Path, command: str) -> None:
    """Model card of a fine-tuned segmenter: its base, the lender's data, how to rebuild."""
    ft = result.meta["finetune"]
    cfg = ft["config"]
    lines = [
        f"# Crop-type segmenter, fine-tuned (`{weights.name}`)",
        "",
        f"Version `{result.segmenter.meta.get('version', '?')}`, fine-tuned {ft['finetuned_at']} "
        f"from segmenter `{ft['init_version']}` in {ft['train_seconds'] / 60:.1f} min "
        f"({ft['steps']} of {ft['planned_steps']} steps, {cfg['epochs']} epochs, AdamW lr "
        f"{cfg['lr']}, one-cycle, batch-norm statistics frozen, temperature kept at "
        f"{result.segmenter.temperature:.3f}). Weights: {weights.stat().st_size / 1e6:.1f} MB.",
        "",
        "## Fine-tuning data",
    ]
    if "series" in ft["data"]:
        lines.append(
            "Labelled parcel series (uniform images, as `vision.classify` presents a parcel): "
            + ", ".join(f"{c} {n}" for c, n in ft["data"]["series"].items())
            + "."
        )
    if "scene_pixels" in ft["data"]:
        lines.append(
            "Labelled pixels inside parcels of the lender's imagery (others ignored): "
            + ", ".join(f"{c} {n}" for c, n in ft["data"]["scene_pixels"].items())
            + "."
        )
    lines += [
        "",
        f"Loss (first batch, then per epoch): {ft['loss_history']}.",
        "",
        "The base model's training data, split contract and metrics are in its own card; its "
        "training metadata is kept in this file's `meta` (key `finetune` adds the above).",
        "No held-out measurement is made here: keep part of your parcels aside (spatially, "
        "e.g. `geo.samples.split_by_block`) and score them with `vision.classify`, as "
        "`python -m eval.finetune` does for Belgium.",
        "",
        "## Reproduce",
        "```",
        command,
        "```",
        "",
    ]
    path.write_text("\n".join(lines))


def finetune_and_save(
    out: Path,
    *,
    init: Path | None = None,
    samples: Path | None = None,
    scenes: Sequence[LabelledScene] = (),
    cfg: FinetuneConfig | None = None,
    command: str = "",
    progress: bool = True,
    card: bool = True,
) -> dict[str, Any]:
    """Fine-tune the segmenter at ``init`` (default: the shipped one) on a lender's labelled
    series (``samples``, WorldCereal long layout read by :func:`geo.samples.read_samples`,
    labels from ``ewoc_code`` via :mod:`geo.legend`) and / or labelled ``scenes``; write the
    weights to ``out`` and, with ``card``, a model card beside them (``out`` with ``.md``).

    Returns:
        {"version", "path", "loss_history", "train_seconds", "data"}.

    Raises:
        geo.samples.SampleError: unreadable samples; ModelError: bad init weights;
        ValueError: nothing labelled to learn from.
    """
    from geo.samples import read_samples
    from vision.model import load_segmenter

    seg = load_segmenter(init)
    series = None
    if samples is not None:
        series = read_samples(Path(samples))
        if series.crop is None:
            raise ValueError(
                f"{samples}: no ewoc_code column; fine-tuning needs labelled samples (the "
                "WorldCereal crop code per sample, see data/legend.csv)"
            )
    result = finetune(seg, series=series, scenes=scenes, cfg=cfg, progress=progress)
    ft = result.segmenter
    out = Path(out)
    version = save_segmenter(out, ft.model, ft.cfg, ft.temperature, result.meta)
    ft.meta["version"] = version
    if card:
        write_finetune_card(out.with_suffix(".md"), result, out, command)
    return {
        "version": version,
        "path": str(out),
        "loss_history": result.meta["finetune"]["loss_history"],
        "train_seconds": result.train_seconds,
        "data": result.meta["finetune"]["data"],
    }


def main(out_path: Path | str = _REPO / "data" / "models" / "segmenter.pt", seed: int = 0) -> None:
    """Entry point for scripts: train the shipped segmenter with the default settings."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    res = train_and_save(Path(out_path), seed=seed)
    log.info("saved %s (version %s)", res["path"], res["version"])


if __name__ == "__main__":
    main()
