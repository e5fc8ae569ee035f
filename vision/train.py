"""Train, calibrate and evaluate the crop-type segmenter on generated regions (CPU).

Data (:mod:`vision.dataset`): ``n_regions`` training regions, ``n_calib_regions`` for the
temperature and ``n_test_regions`` for the reported metrics, each a separate
:mod:`geo.synth` seed (the three sets never share a seed). Training batches are random
``patch`` x ``patch`` crops at random as_of dekads with flips / rotations.

Optimisation: AdamW, one-cycle learning rate, cross-entropy over the 11 classes, from
scratch (no pretrained weights, no network), deterministic for a seed on one machine
(``torch.manual_seed``, a numpy ``Generator``, ``torch.use_deterministic_algorithms``).
Calibration: one temperature fitted by LBFGS on the negative log-likelihood of pixels of the
calibration regions at all six stage dates.

Metrics (:func:`evaluate_segmenter`) per stage date on the test regions: pixel accuracy,
mIoU, ECE (15 bins of the top probability), parcel accuracy and parcel ECE (a parcel's crop
is the class of highest mean probability, as in :mod:`vision.assess`).

CLI: ``cropcredit train-segmenter --out data/models/segmenter.pt --seed 0`` calls
:func:`train_and_save`, which also writes ``SEGMENTER_CARD.md`` beside the weights.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from geo.types import CROPS, Season
from vision.dataset import (
    STAGE_DATES,
    RegionData,
    build_region,
    patches,
    stage_indices,
    truncate_season,
)
from vision.infer import predict_proba
from vision.model import (
    Segmenter,
    SegmenterConfig,
    build_model,
    model_input,
    save_segmenter,
)

log = logging.getLogger(__name__)

_REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = _REPO / "out" / "cache" / "segmenter"
#: Seed offsets keeping training, calibration and test regions apart.
TRAIN_SEEDS, CALIB_SEEDS, TEST_SEEDS = 10_000, 20_000, 30_000
N_BINS = 15


class TrainConfig(BaseModel):
    """Everything that decides a trained segmenter (saved in the weights' metadata)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    season: int = 2026
    n_regions: int = Field(default=16, ge=1)
    n_calib_regions: int = Field(default=2, ge=0)
    n_test_regions: int = Field(default=3, ge=0)
    size_px: int = Field(default=192, ge=32)
    patch: int = Field(default=96, ge=16)
    batch: int = Field(default=8, ge=1)
    epochs: int = Field(default=20, ge=1)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    model: SegmenterConfig = SegmenterConfig()
    cache_dir: Path | None = DEFAULT_CACHE
    threads: int | None = None
    max_minutes: float = Field(default=25.0, gt=0)

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


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature T > 0 minimising the NLL of ``softmax(logits / T)``.

    Args:
        logits: (N, K) float; labels: (N,) int64 class index.
    """
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def calibrate(
    seg: Segmenter, regions: Sequence[RegionData], *, max_pixels: int = 400_000, seed: int = 0
) -> float:
    """Fit ``seg``'s temperature on ``regions`` at all stage dates; returns T (seg unchanged)."""
    if not regions:
        return 1.0
    raw = Segmenter(model=seg.model, cfg=seg.cfg, temperature=1.0, meta=seg.meta)
    rng = np.random.default_rng(seed)
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
    logits = torch.from_numpy(np.concatenate(logs)).float()
    labels = torch.from_numpy(np.concatenate(labs))
    t = fit_temperature(logits, labels)
    log.info("temperature %.3f (NLL fitted on %d pixels)", t, len(labels))
    return t


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


def _train(cfg: TrainConfig, *, progress: bool, t_start: float) -> TrainResult:
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

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
    data_seconds = time.perf_counter() - t0
    log.info(
        "data: %d train / %d calib / %d test regions of %d px in %.0f s",
        len(train_r),
        len(calib_r),
        len(test_r),
        cfg.size_px,
        data_seconds,
    )

    model = build_model(cfg.model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * cfg.steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=total, pct_start=0.1
    )
    batches = patches(
        train_r,
        patch=cfg.patch,
        batch=cfg.batch,
        rng=rng,
        validity=cfg.model.validity_channels,
    )
    history: list[float] = []
    t_train = time.perf_counter()
    deadline = t_train + cfg.max_minutes * 60
    model.train()
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("training segmenter", total=total, loss=float("nan"))
        running = float("nan")
        steps_done = 0
        for step in range(total):
            x, y = next(batches)
            xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(
                model(xt), torch.from_numpy(y), label_smoothing=cfg.label_smoothing
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            val = float(loss.detach())
            if step == 0:
                history.append(val)  # history[0]: loss of the first batch
            running = val if np.isnan(running) else 0.95 * running + 0.05 * val
            if (step + 1) % cfg.steps_per_epoch == 0 or step + 1 == total:
                history.append(running)
                log.info("epoch %d/%d loss %.4f", len(history) - 1, cfg.epochs, running)
            steps_done = step + 1
            bar.update(task, advance=1, loss=running)
            if time.perf_counter() > deadline:
                log.warning(
                    "stopping after %d of %d steps: over the %.0f min budget",
                    step + 1,
                    total,
                    cfg.max_minutes,
                )
                history.append(running)
                break
    train_seconds = time.perf_counter() - t_train
    model.eval()

    seg = Segmenter(model=model, cfg=cfg.model, temperature=1.0)
    seg.temperature = calibrate(seg, calib_r, seed=cfg.seed)
    metrics = evaluate_segmenter(seg, test_r)
    meta: dict[str, Any] = {
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "train_config": cfg.model_dump(mode="json", exclude={"cache_dir", "threads"}),
        "train_seeds": train_s,
        "calib_seeds": calib_s,
        "test_seeds": test_s,
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
        ") + full-resolution 1x1 pixel head; trained from scratch (no pretrained weights).",
        "",
        "## Legend (index = class)",
        ", ".join(f"{i} {c}" for i, c in enumerate(CROPS)),
        "",
        "## Data",
        f"Generated only (`geo.synth`, season {cfg['season']}, western-France crop mix): "
        f"{cfg['n_regions']} training regions of {cfg['size_px']} x {cfg['size_px']} px "
        f"(seeds {meta['train_seeds'][0]}..{meta['train_seeds'][-1]}), "
        f"{cfg['n_calib_regions']} calibration and {cfg['n_test_regions']} test regions "
        "(disjoint seeds). Composites via `geo.composite.composite_dekads`; training sees "
        "random as_of dekads (half near the stage dates), random 96 px crops, flips and "
        f"rotations; {meta['steps']} steps of {cfg['batch']} patches, AdamW lr {cfg['lr']}, "
        "one-cycle schedule, cross-entropy.",
        *(
            [
                "",
                f"**Stopped early by the time budget** ({cfg['max_minutes']:.0f} min, a shared and "
                f"busy 2-core machine): {meta['steps']} of {meta['planned_steps']} planned steps, "
                "so the learning rate had not fully annealed. A rerun that completes all steps "
                "gives a different (likely better) model.",
            ]
            if meta.get("planned_steps", meta["steps"]) > meta["steps"]
            else []
        ),
        "",
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
        "- Trained and measured on generated imagery only: accuracy on real Sentinel-2 will be "
        "lower, and much lower in regions unlike the generator (see ../shared/data/README.md: "
        "a forest fell from 0.78 to 0.30 out of region). Retrain on the lender's own labelled "
        "parcels before relying on it.",
        "- Early stages (pre_sowing, sowing) cannot separate summer crops (bare soil): the "
        "probabilities say so, and the credit policy should hold on low confidence.",
        "- The temperature is one number fitted over all stages; parcel-level confidence (mean "
        "pixel probability) is conservative where parcel accuracy exceeds pixel accuracy.",
        "",
        "## Reproduce",
        "```",
        "cropcredit train-segmenter --out data/models/segmenter.pt --seed 0",
        "```",
        f"(= `vision.train.train_and_save(Path('data/models/segmenter.pt'), seed={cfg['seed']}, "
        f"n_regions={cfg['n_regions']}, epochs={cfg['epochs']}, size_px={cfg['size_px']})`; "
        "deterministic for a seed on one machine and thread count when it is not stopped by "
        "the time budget.) "
        "Evaluate: `python -m eval.segmenter`.",
        "",
    ]
    path.write_text("\n".join(lines))


def train_and_save(
    out: Path,
    *,
    seed: int = 0,
    n_regions: int = 16,
    epochs: int = 20,
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


def main(out_path: Path | str = _REPO / "data" / "models" / "segmenter.pt", seed: int = 0) -> None:
    """Entry point for scripts: train the shipped segmenter with the default settings."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    res = train_and_save(Path(out_path), seed=seed)
    log.info("saved %s (version %s)", res["path"], res["version"])


if __name__ == "__main__":
    main()
