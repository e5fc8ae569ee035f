"""Train, calibrate and evaluate the crop-type segmenter (CPU).

Data (:mod:`vision.dataset`): ``n_regions`` generated training regions, ``n_calib_regions``
for the temperature and ``n_test_regions`` for the reported metrics, each a separate
:mod:`geo.synth` seed (the three sets never share a seed). Training batches are random
``patch`` x ``patch`` crops at random as_of dekads with flips / rotations. With real labelled
series (``TrainConfig.real_samples``, THE SPLIT CONTRACT of :mod:`vision.realdata`: France
``train``), each crop gets real series laid into its fields, a share of crops becomes a
monthly extraction, and every step also feeds "uniform images" (one real series over a small
block, as :mod:`vision.classify` presents a parcel). Without the file (a user's machine) the
real part is skipped with a log line.

Optimisation (:mod:`vision.optimise`): AdamW, one-cycle learning rate (by steps, or by the
clock when a busy machine cannot finish the steps within ``max_minutes``), cross-entropy over
the 11 classes, from scratch or warm-started (``init``), deterministic for a seed on one
machine when the run finishes its steps. Then a finishing phase (``finish_epochs``,
:func:`vision.finetune.finetune` at a low learning rate with batch-norm frozen) on the same
training data presented as it is used: the real ``train`` series as uniform images and the
first ``finish_scenes`` generated training regions as they are (no real series laid in).
Labelling only the pixels inside parcels there made the model forget the background (pixel
accuracy at sowing 0.40). Calibration (:mod:`vision.calibration`): the scene temperature
fitted on the calibration regions and, with real data, France ``cal`` parcels; the series
temperature on France ``cal`` parcels alone; the parcel temperature on the calibration
regions' parcels.
Metrics (:mod:`vision.metrics`): per stage date on the test regions and on real parcels.
Model card: :mod:`vision.card`. Fine-tuning for a lender's region: :mod:`vision.finetune`.

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
from pydantic import BaseModel, ConfigDict, Field

from geo.errors import ModelError
from geo.legend import IGNORE
from geo.samples import SampleSeries
from geo.types import CROPS, Season
from vision.calibration import calibrate, calibrate_readings
from vision.card import write_card
from vision.dataset import (
    STAGE_DATES,
    RegionData,
    build_region,
    patches,
    uniform_images,
)
from vision.metrics import evaluate_segmenter, series_metrics
from vision.model import (
    Segmenter,
    SegmenterConfig,
    build_model,
    save_segmenter,
)
from vision.optimise import Batch, _optimise, _seed_everything
from vision.realdata import FRANCE_FILE, SeriesBank, belgium_samples, france_parts, series_bank

log = logging.getLogger(__name__)

_REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = _REPO / "out" / "cache" / "segmenter"
#: Seed offsets keeping training, calibration and test regions apart.
TRAIN_SEEDS, CALIB_SEEDS, TEST_SEEDS = 10_000, 20_000, 30_000
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
    #: 10 x 144 steps (~14 min on 2 quiet cores; 5 epochs gave France cal OA 0.750 warm-started,
    #: 10 from scratch 0.789); on a busy machine the time budget ends the run first.
    epochs: int = Field(default=10, ge=1)
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
    #: Finishing phase (0 = none): epochs of :func:`vision.finetune.finetune` on the real
    #: ``train`` series and the first ``finish_scenes`` generated training regions.
    finish_epochs: int = Field(default=10, ge=0)
    finish_scenes: int = Field(default=4, ge=0)
    finish_lr: float = Field(default=3e-4, gt=0)
    finish_max_minutes: float = Field(default=6.0, gt=0)

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


# --- training --------------------------------------------------------------------------------


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
    finish = _finish(seg, cfg, train_r, real["train"] if real else None, progress=progress)
    if finish:
        seg.model = finish.pop("model")
    seg.temperature = calibrate(seg, calib_r, seed=cfg.seed, series=real["cal"] if real else None)
    temperatures = calibrate_readings(seg, calib_r, real["cal"] if real else None)
    seg.meta.update(temperatures)
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
        **temperatures,
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
        "finish": finish,
        "loss_history": [round(v, 4) for v in history],  # first batch, then per epoch
        "torch": str(torch.__version__),
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
        "legend": list(CROPS),
        "stage_dates": dict(STAGE_DATES),
        "metrics": {
            s: {k: v for k, v in m.items() if k not in ("confusion", "interior_confusion")}
            for s, m in metrics.items()
        },
        "confusion_by_stage": {s: m["confusion"] for s, m in metrics.items()},
        "area_error_by_stage": {s: m["interior_confusion"] for s, m in metrics.items()},
        "confusion": metrics["harvest"]["confusion"] if "harvest" in metrics else None,
    }
    seg.meta = meta
    return TrainResult(seg, metrics, history, train_seconds, meta)


def _finish(
    seg: Segmenter,
    cfg: TrainConfig,
    train_r: Sequence[RegionData],
    train_series: SampleSeries | None,
    *,
    progress: bool,
) -> dict[str, Any]:
    """The finishing phase (see the module docstring); {} when ``cfg.finish_epochs`` is 0.

    Returns:
        {"model": the finished model, "steps", "planned_steps", "seconds", "loss_history",
        "scenes", "series"}.
    """
    if cfg.finish_epochs == 0 or (cfg.finish_scenes == 0 and train_series is None):
        return {}
    # vision.finetune builds on this module (TrainResult), so it is imported here.
    from vision.finetune import FinetuneConfig, LabelledScene, finetune

    scenes = [
        LabelledScene(reg.data, reg.observed, reg.labels.astype(np.int64), reg.season)
        for reg in train_r[: cfg.finish_scenes]
    ]
    ft_cfg = FinetuneConfig(
        seed=cfg.seed,
        epochs=cfg.finish_epochs,
        lr=cfg.finish_lr,
        weight_decay=cfg.weight_decay,
        patch=cfg.patch,
        monthly_share=cfg.monthly_share,
        class_power=cfg.class_power,
        max_minutes=cfg.finish_max_minutes,
        replay=0,  # the finishing phase's scenes are the training regions themselves
    )
    result = finetune(seg, series=train_series, scenes=scenes, cfg=ft_cfg, progress=progress)
    info = result.meta["finetune"]
    log.info(
        "finishing: %d of %d steps in %.0f s",
        info["steps"],
        info["planned_steps"],
        info["train_seconds"],
    )
    return {
        "model": result.segmenter.model,
        "steps": info["steps"],
        "planned_steps": info["planned_steps"],
        "seconds": info["train_seconds"],
        "loss_history": info["loss_history"],
        "scenes": len(scenes),
        "series": len(train_series) if train_series is not None else 0,
    }


def train_and_save(
    out: Path,
    *,
    seed: int = 0,
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
    cfg = TrainConfig(seed=seed, **overrides)
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
