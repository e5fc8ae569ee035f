"""The optimisation loop shared by training and fine-tuning (CPU).

:func:`_optimise`: AdamW with a one-cycle learning rate (:func:`one_cycle_lr`, by steps, or
by the clock when a busy machine cannot finish the steps within ``max_minutes``), weighted
cross-entropy over the 11 classes with :data:`IGNORE_INDEX` targets ignored, optionally with
batch-norm statistics frozen. :func:`_seed_everything` makes a run deterministic for a seed on
one machine when it finishes its steps (``torch.manual_seed``,
``torch.use_deterministic_algorithms``; numpy goes through a ``Generator``).

Used by :func:`vision.train.train_segmenter` and :func:`vision.finetune.finetune`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

#: Target value of pixels that carry no label (outside labelled parcels when fine-tuning).
IGNORE_INDEX = -100


def _seed_everything(seed: int) -> None:
    """Seed torch and ask for deterministic kernels; numpy goes through a ``Generator``.

    ``use_deterministic_algorithms`` cost nothing measurable here (0.78 vs 0.84 s per step of
    8 x 96 px on 2 threads); step time is dominated by the machine's load.
    """
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


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
