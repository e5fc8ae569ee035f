"""How time enters the segmenter, and how much real data the accuracy targets need (issue #8).

    python -m eval design            (about 5 minutes on 2 cores)

Part 1, design study. Three ways for time to enter, each as the per-pixel temporal part of a
segmenter (what :mod:`vision.classify` relies on when a parcel is one series), trained on the
France ``train`` parcels only (THE SPLIT CONTRACT, :mod:`vision.realdata`) with the segmenter's
own augmentation (:func:`vision.dataset.uniform_images`: monthly forms, shifts, within-field
gain, pixel noise; here always the whole season) and scored on the whole season of France
``cal`` (where a design is chosen) and ``test`` (reported), mean and sd over seeds:

- ``stacked``: the T*C reflectances and T validity flags as one vector, two dense layers (the
  shipped segmenter's stem and pixel head, :class:`vision.model.CropSegmenter`);
- ``tempcnn``: 1-D convolutions over the 36 dekads (Pelletier et al. 2019);
- ``ltae``: a per-date encoder shared over dates plus a learned date embedding, pooled by
  multi-head temporal attention that skips missing dates (a light L-TAE, Sainte Fare Garnot &
  Landrieu 2020).

Part 2, learning curve. Five spatially blocked folds of all France parcels
(:func:`geo.samples.split_by_block`, 10 km blocks); the stacked design and the XGBoost
baseline of :mod:`eval.realcrops` train on 25 %, 50 % and 100 % of four folds and are scored
on the fifth. How fast accuracy grows with labelled parcels says how far the targets
(OA >= 0.85, macro-F1 >= 0.75) are from what ~400 parcels of one region can give.

Skips with a one-line message where ``../shared/data`` is absent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

import numpy as np
import torch
from torch import nn

from eval.realcrops import (
    MIN_SUPPORT,
    TARGET_MACRO_F1,
    TARGET_OA,
    baseline_proba,
    metrics,
    train_baseline,
)
from geo.samples import SampleSeries, read_samples, split_by_block
from geo.types import BANDS, CROPS
from vision.dataset import uniform_images
from vision.model import model_input
from vision.realdata import FRANCE_FILE, bank_of, drop_ignored, france_parts

log = logging.getLogger(__name__)

T: Final[int] = 36
C: Final[int] = len(BANDS)
K: Final[int] = len(CROPS)
STEPS: Final[int] = 1500
BATCH: Final[int] = 64
SEEDS: Final[tuple[int, ...]] = (0, 1, 2)
FOLDS: Final[int] = 5
FRACTIONS: Final[tuple[float, ...]] = (0.25, 0.5, 1.0)


class Stacked(nn.Module):
    """Time as stacked channels: (N, T*C + T) -> two dense layers -> K logits."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(T * C + T, width),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Linear(width, K),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def per_date(x: torch.Tensor) -> torch.Tensor:
    """(N, T*C + T) model input -> (N, T, C + 1): each dekad's bands and its validity flag."""
    n = x.shape[0]
    refl = x[:, : T * C].reshape(n, T, C)
    return torch.cat([refl, x[:, T * C :].reshape(n, T, 1)], dim=2)


class TempCNN(nn.Module):
    """Three 1-D convolutions (kernel 5) over the dekads, then a dense head."""

    def __init__(self, width: int = 64, drop: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = C + 1
        for _ in range(3):
            layers += [nn.Conv1d(cin, width, 5, padding=2), nn.BatchNorm1d(width), nn.ReLU()]
            layers.append(nn.Dropout(drop))
            cin = width
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * T, 128),
            nn.BatchNorm1d(128),
            nn.ReLU(),
            nn.Dropout(drop),
            nn.Linear(128, K),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.conv(per_date(x).transpose(1, 2)))
        return out


class LightTAE(nn.Module):
    """Per-date encoder + date embedding, pooled by multi-head attention over valid dates."""

    def __init__(self, width: int = 64, heads: int = 8) -> None:
        super().__init__()
        self.heads = heads
        self.encode = nn.Sequential(
            nn.Linear(C, width), nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, width)
        )
        self.date = nn.Parameter(torch.randn(T, width) * 0.1)
        self.key = nn.Linear(width, width)
        self.query = nn.Parameter(torch.randn(heads, width // heads) * 0.1)
        self.head = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, K)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = per_date(x)
        valid = d[..., C] > 0.5
        e = self.encode(d[..., :C]) + self.date
        n, t, w = e.shape
        h = self.heads
        keys = self.key(e).view(n, t, h, w // h)
        att = torch.einsum("nthc,hc->nht", keys, self.query) / (w // h) ** 0.5
        att = att.masked_fill(~valid[:, None, :], -1e4).softmax(dim=-1)
        pooled = torch.einsum("nht,nthc->nhc", att, e.view(n, t, h, w // h)).reshape(n, w)
        out: torch.Tensor = self.head(pooled)
        return out


DESIGNS: Final[dict[str, Callable[[], nn.Module]]] = {
    "stacked": Stacked,
    "tempcnn": TempCNN,
    "ltae": LightTAE,
}


def series_input(data: np.ndarray) -> np.ndarray:
    """(N, T, C) series -> (N, T*C + T) model input, as :func:`vision.classify.classify_series`."""
    return model_input(np.ascontiguousarray(data.transpose(1, 2, 0)[:, :, :, None]))[:, :, 0].T


def fit(design: str, train: SampleSeries, seed: int) -> nn.Module:
    """Train one design on labelled series (whole season, the segmenter's augmentation)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    bank = bank_of(train.data, train.observed, train.class_index())
    season = train.season
    batches = uniform_images(
        bank, side=1, batch=BATCH, rng=rng, season=season, full_season_share=1.0
    )
    model = DESIGNS[design]()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=STEPS)
    model.train()
    for _ in range(STEPS):
        x, y = next(batches)
        logits = model(torch.from_numpy(x[:, :, 0, 0]))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(y[:, 0, 0]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def predict(model: nn.Module, data: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        logits = model(torch.from_numpy(series_input(data)))
    return torch.softmax(logits, dim=1).numpy()


def pixels_per_second(model: nn.Module, n: int = 20_000) -> float:
    """Forward throughput of a design on ``n`` random pixels (the temporal part only)."""
    x = torch.rand(n, T * C + T)
    with torch.inference_mode():
        model(x[:256])
        started = time.perf_counter()
        model(x)
    return n / (time.perf_counter() - started)


def design_study() -> list[str]:
    parts = france_parts()
    train = parts["train"]
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {}
    cost: dict[str, tuple[int, float]] = {}
    for design in DESIGNS:
        started = time.perf_counter()
        rows[design] = {"cal": [], "test": []}
        for seed in SEEDS:
            model = fit(design, train, seed)
            for part in ("cal", "test"):
                m = metrics(parts[part].class_index(), predict(model, parts[part].data))
                rows[design][part].append((m.oa, m.macro_f1_large))
        cost[design] = (sum(p.numel() for p in model.parameters()), pixels_per_second(model))
        log.info("design %s: %.0f s", design, time.perf_counter() - started)
    lines = [
        f"Part 1: how time enters (France train {len(train)} parcels -> whole season; "
        f"mean ± sd over seeds {SEEDS}; macro-F1 over classes with >= {MIN_SUPPORT} parcels)",
        f"  {'design':10s} {'cal OA':>13s} {'cal mF1':>13s} {'test OA':>13s} {'test mF1':>13s}"
        f" {'params':>8s} {'pixels/s':>9s}",
    ]
    for design, parts_ in rows.items():
        cells = []
        for part in ("cal", "test"):
            arr = np.array(parts_[part])
            cells += [f"{arr[:, i].mean():.3f} ± {arr[:, i].std():.3f}" for i in (0, 1)]
        n_params, speed = cost[design]
        lines.append(
            f"  {design:10s} "
            + " ".join(f"{c:>13s}" for c in cells)
            + f" {n_params:>8d} {speed:>9.0f}"
        )
    best = max(rows, key=lambda d: float(np.mean([r[0] for r in rows[d]["cal"]])))
    n_cal = len(parts["cal"])
    lines.append(f"  best on cal OA: {best} ({n_cal} cal parcels: one parcel is {1 / n_cal:.3f})")
    return lines


def learning_curve() -> list[str]:
    series = read_samples(FRANCE_FILE)
    assert series.lonlat is not None
    masks = split_by_block(series.lonlat, {f"f{i}": 1 / FOLDS for i in range(FOLDS)}, seed=0)
    lines = [
        f"Part 2: learning curve, {FOLDS} spatially blocked folds of all France parcels "
        f"(targets: OA >= {TARGET_OA}, macro-F1 >= {TARGET_MACRO_F1})",
        f"  {'model':10s} {'share':>5s} {'parcels':>8s} {'OA':>13s} {'macro-F1':>13s}",
    ]
    for name in ("stacked", "xgboost"):
        for share in FRACTIONS:
            scores, sizes = [], []
            for i in range(FOLDS):
                test = drop_ignored(series.subset(masks[f"f{i}"]))
                others = np.zeros(len(series), dtype=bool)
                for j in range(FOLDS):
                    if j != i:
                        others |= masks[f"f{j}"]
                train = drop_ignored(series.subset(others))
                keep = np.random.default_rng(i).random(len(train)) < share
                train = train.subset(keep)
                sizes.append(len(train))
                if name == "stacked":
                    proba = predict(fit(name, train, seed=0), test.data)
                else:
                    xgb = train_baseline(train.data, train.class_index())
                    proba = baseline_proba(xgb, test.data)
                m = metrics(test.class_index(), proba)
                scores.append((m.oa, m.macro_f1_large))
            arr = np.array(scores)
            lines.append(
                f"  {name:10s} {share:5.2f} {np.mean(sizes):8.0f} "
                f"{arr[:, 0].mean():.3f} ± {arr[:, 0].std():.3f} "
                f"{arr[:, 1].mean():.3f} ± {arr[:, 1].std():.3f}"
            )
    return lines


def run() -> str:
    if not FRANCE_FILE.is_file():
        return f"skipped: {FRANCE_FILE} not found (the shared real data is absent)"
    return "\n".join(design_study() + [""] + learning_curve())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(run())
