"""Scoring throughput: a re-limit of 100k farmers / 300k parcels from cached features.

    python -m bench.scoring [--farmers 100000] [--parcels 300000] [--seed 0]

No imagery: a synthetic parcel assessment (DESIGN.md contract, vectorised numpy, plausible
values: 93 % of parcels confirmed, some low-confidence, wrong-crop, not-cropland, overstated and
overlapping pledges, 5 % of farmers in drought with stress confirmed) stands for the cached
output of ``vision.assess.assess_parcels``. A pre-sowing pass sets the limits and simulated
draws; the timed re-limit then runs at flowering, step by step:

1. ``scoring.features.farmer_features`` (parcels -> farmers);
2. ``PDModel.predict`` (shipped model), against a bare ``Booster.predict`` on the same matrix
   (a fresh ``DMatrix`` per call, built outside the timer; goal: >= 0.8x its rows/s);
3. ``scoring.policy.decide_batch`` (limits, counterfactuals, evidence);
4. reasons only for the decisions that changed (action not ``keep``), from xgboost's
   approximate contributions (``PDModel.contributions(approx=True)`` + ``reasons_for``).

Prints one table: wall seconds, rows/s and CPU seconds per step and the total (on a shared
machine, CPU seconds of the single-threaded steps are closer to an unloaded wall time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import xgboost as xgb

from geo.types import CROP_INDEX, CROPS, GrowthStage, Season
from scoring.drawdown import simulate_draws
from scoring.features import farmer_features, records
from scoring.pd_model import PDModel, load_shipped_pd
from scoring.policy import PolicyConfig, decide_batch
from scoring.reasons import reasons_for
from scoring.tables import load_economics

log = logging.getLogger(__name__)

T = TypeVar("T")
#: The feature columns that scoring.reasons phrases (a narrow row is cheaper to copy).
REASON_COLUMNS: tuple[str, ...] = (
    "health_z",
    "health_worst_z",
    "health_worst_crop",
    "health_since",
    "main_crop",
    "verified_share",
    "area_gap_share",
    "margin_ratio",
    "debt_service_ratio",
    "years_with_lender",
    "crop_diversity",
)
SEASON = Season(2026)
AS_OF = dt.date(2026, 7, 1)
REGIONS = ("poitou-nord", "poitou-sud")
#: Declared crop mix (share of parcels), as in the generated demo region.
CROP_MIX: dict[str, float] = {
    "winter_cereals": 0.30,
    "grassland": 0.14,
    "maize": 0.13,
    "sunflower": 0.12,
    "rapeseed": 0.09,
    "spring_cereals": 0.06,
    "other_annual": 0.05,
    "soybean": 0.04,
    "permanent": 0.04,
    "potato": 0.03,
}


def synthetic_assessment(
    n_farmers: int, n_parcels: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A plausible flowering-stage parcel assessment, its farmers table and overlaps.

    Returns:
        (assessment with every DESIGN.md column, farmers, overlaps in the
        ``geo.parcels.find_overlaps`` layout). Areas in ha, money in EUR.
    """
    if n_parcels < n_farmers:
        raise ValueError(f"{n_parcels} parcels for {n_farmers} farmers; give each at least one")
    rng = np.random.default_rng(seed)
    n = n_parcels
    farmer_of = np.sort(
        np.concatenate([np.arange(n_farmers), rng.integers(0, n_farmers, n - n_farmers)])
    )
    fids = np.array([f"F-{i:06d}" for i in range(n_farmers)], dtype=object)
    pids = np.array([f"P-{i:07d}" for i in range(n)], dtype=object)
    farmer_region = rng.integers(0, len(REGIONS), n_farmers)
    region = np.asarray(REGIONS, dtype=object)[farmer_region[farmer_of]]
    crops = np.asarray(list(CROP_MIX), dtype=object)
    shares = np.asarray(list(CROP_MIX.values()))
    declared_crop = rng.choice(crops, n, p=shares / shares.sum())
    area = np.clip(rng.lognormal(np.log(3.0), 0.8, n), 0.2, 60.0)
    declared = np.round(area * (1 + rng.normal(0, 0.01, n)), 2)
    over_farmer = rng.random(n_farmers) < 0.03
    over = over_farmer[farmer_of]
    declared[over] = np.round(area[over] * rng.uniform(1.3, 1.8, int(over.sum())), 2)

    u = rng.random(n)
    detected = declared_crop.copy()
    confidence = rng.beta(12, 1.5, n)
    low = (u >= 0.93) & (u < 0.97)
    confidence[low] = rng.uniform(0.3, 0.59, int(low.sum()))
    wrong = (u >= 0.97) & (u < 0.995)
    others = rng.choice(crops, n)
    detected[wrong] = np.where(others[wrong] == declared_crop[wrong], "maize", others[wrong])
    detected[wrong & (detected == declared_crop)] = "sunflower"
    detected[u >= 0.995] = "non_crop"

    planted = area * rng.uniform(0.9, 1.0, n)
    planted[over] = area[over] * rng.uniform(0.95, 1.0, int(over.sum()))
    observed = rng.beta(8, 1.5, n)
    dark = rng.random(n) < 0.03
    observed[dark] = rng.uniform(0.0, 0.5, int(dark.sum()))
    drought_farmer = rng.random(n_farmers) < 0.05
    z = rng.normal(0.0, 0.8, n) - 2.5 * drought_farmer[farmer_of] * rng.uniform(0.6, 1.4, n)
    z[rng.random(n) < 0.01] = np.nan
    health = np.full(n, "good", dtype=object)
    health[z <= -1] = "watch"
    health[z <= -2] = "stressed"
    health[z <= -3] = "failed"
    health[np.isnan(z)] = "unknown"
    stressed = np.isin(health, ("stressed", "failed"))
    since_days = rng.choice([0, 10, 20, 30], n)
    since = pd.Series(
        [
            AS_OF - dt.timedelta(days=d) if s else None
            for d, s in zip(since_days.tolist(), stressed.tolist(), strict=True)
        ],
        dtype=object,
    )
    ndvi = np.clip(0.72 + 0.06 * np.nan_to_num(z) + rng.normal(0, 0.05, n), 0.05, 0.95)

    frac = rng.dirichlet(np.full(len(CROPS), 0.3), n) * 0.2
    det_idx = pd.Series(detected).map(CROP_INDEX).to_numpy()
    frac[np.arange(n), det_idx] += 0.8
    table: dict[str, Any] = {
        "parcel_id": pids,
        "farmer_id": fids[farmer_of],
        "region": region,
        "declared_crop": declared_crop,
        "declared_area_ha": declared,
        "area_ha": np.round(area, 4),
        "detected_crop": detected,
        "confidence": confidence,
        "crop_fraction": frac[np.arange(n), det_idx],
        **{f"frac_{c}": frac[:, i] for i, c in enumerate(CROPS)},
        "planted_area_ha": planted,
        "planted_area_lo_ha": planted * 0.93,
        "planted_area_hi_ha": np.minimum(planted * 1.05, area),
        "observed_fraction": observed,
        "ndvi_last": ndvi,
        "health_z": z,
        "health_class": health,
        "health_since": since,
        "growth_stage": GrowthStage.FLOWERING.value,
        "as_of": AS_OF,
    }
    assessment = pd.DataFrame(table)
    farmers = pd.DataFrame(
        {
            "farmer_id": fids,
            "region": np.asarray(REGIONS, dtype=object)[farmer_region],
            "annual_debt_service_eur": np.round(
                np.bincount(farmer_of, weights=area, minlength=n_farmers)
                * rng.uniform(180, 520, n_farmers)
                + rng.uniform(500, 3000, n_farmers),
                -1,
            ),
            "years_with_lender": rng.integers(0, 26, n_farmers),
        }
    )
    # ~0.2 % of parcels overlap a parcel of the next farmer (listed in both directions)
    a = rng.choice(np.flatnonzero(farmer_of < n_farmers - 1), max(1, n // 500), replace=False)
    b = np.searchsorted(farmer_of, farmer_of[a] + 1)
    ha = np.round(area[a] * rng.uniform(0.06, 0.3, len(a)), 3)
    one = pd.DataFrame(
        {
            "parcel_id": pids[a],
            "farmer_id": fids[farmer_of[a]],
            "other_parcel_id": pids[b],
            "other_farmer_id": fids[farmer_of[b]],
            "overlap_ha": ha,
            "overlap_share": ha / area[a],
        }
    )
    back = one.rename(
        columns={
            "parcel_id": "other_parcel_id",
            "other_parcel_id": "parcel_id",
            "farmer_id": "other_farmer_id",
            "other_farmer_id": "farmer_id",
        }
    ).assign(overlap_share=ha / area[b])
    overlaps = pd.concat([one, back[one.columns]], ignore_index=True)
    return assessment, farmers, overlaps


@dataclass
class Step:
    name: str
    rows: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def _timed(name: str, rows: int, fn: Callable[[], T], steps: list[Step]) -> T:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    steps.append(Step(name, rows, time.perf_counter() - t0, time.process_time() - c0))
    log.info("%s: %.2f s", name, steps[-1].seconds)
    return out


def _pd_vs_booster(model: PDModel, features: pd.DataFrame, repeat: int = 5) -> tuple[float, float]:
    """Best-of-``repeat`` seconds of a bare ``Booster.predict`` and of ``PDModel.predict``.

    Each bare call gets a fresh ``DMatrix`` built outside the timer: xgboost caches the
    predictions of a DMatrix it has seen, so re-using one would time a cache lookup.
    """
    x = features[model.features].astype(float).to_numpy()
    bare = pdm = float("inf")
    for _ in range(repeat):
        dmat = xgb.DMatrix(x, feature_names=model.features)
        t0 = time.perf_counter()
        model.booster.predict(dmat)
        bare = min(bare, time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.predict(features)
        pdm = min(pdm, time.perf_counter() - t0)
    return bare, pdm


def _reasons_for_changed(
    model: PDModel, features: pd.DataFrame, decisions: pd.DataFrame
) -> pd.DataFrame:
    """Append the model's reasons to the decisions whose action is not ``keep``."""
    changed = np.flatnonzero(decisions["action"].to_numpy() != "keep")
    sub = features.iloc[changed]
    contribs = model.contributions(sub, approx=True)
    cols = list(contribs.columns)
    values = contribs.to_numpy()
    feats = records(sub[[c for c in REASON_COLUMNS if c in sub.columns]])
    out = decisions["reasons"].to_list()
    for k, i in enumerate(changed):
        out[i] = [*out[i], *reasons_for(feats[k], dict(zip(cols, values[k], strict=True)))]
    return decisions.assign(reasons=out)


def run(n_farmers: int = 100_000, n_parcels: int = 300_000, seed: int = 0) -> str:
    """Run the benchmark; returns the result table as text."""
    started = time.perf_counter()
    assessment, farmers, overlaps = synthetic_assessment(n_farmers, n_parcels, seed)
    t_gen = time.perf_counter() - started
    economics = load_economics()
    model = load_shipped_pd()
    policy = PolicyConfig()
    cfg = policy.features

    # pre-sowing pass: the limits in force and the draws before the re-limit
    t0 = time.perf_counter()
    pre = farmer_features(
        assessment, farmers, overlaps, economics, SEASON, GrowthStage.PRE_SOWING, cfg=cfg
    )
    pre_pd = model.predict(pre)
    empty: list[list[str]] = [[] for _ in range(len(pre))]
    no_draws = pd.Series(dtype=float)
    pre_dec = decide_batch(pre, pre_pd, empty, None, no_draws, GrowthStage.PRE_SOWING, policy)
    drawn = simulate_draws(pre_dec, pre, GrowthStage.SOWING)
    previous = pre_dec[["farmer_id", "limit_eur"]]
    t_pre = time.perf_counter() - t0

    stage = GrowthStage.FLOWERING
    steps: list[Step] = []
    features = _timed(
        "farmer_features",
        n_parcels,
        lambda: farmer_features(assessment, farmers, overlaps, economics, SEASON, stage, cfg=cfg),
        steps,
    )
    nf = len(features)
    pd_ = _timed("PDModel.predict", nf, lambda: model.predict(features), steps)
    reasons: list[list[str]] = [[] for _ in range(nf)]
    decisions = _timed(
        "decide_batch",
        nf,
        lambda: decide_batch(features, pd_, reasons, previous, drawn, stage, policy),
        steps,
    )
    n_changed = int((decisions["action"] != "keep").sum())
    decisions = _timed(
        "reasons (changed only)",
        n_changed,
        lambda: _reasons_for_changed(model, features, decisions),
        steps,
    )
    total = sum(s.seconds for s in steps)

    t_booster, t_pd = _pd_vs_booster(model, features)
    ratio = t_booster / t_pd

    lines = [
        f"re-limit at {stage.value}: {nf:,} farmers, {n_parcels:,} parcels "
        f"(synthetic assessment built in {t_gen:.1f} s; pre-sowing pass {t_pre:.1f} s)",
        "",
        f"{'step':<26}{'rows':>10}{'seconds':>10}{'rows/s':>12}{'CPU s':>8}",
    ]
    for s in steps:
        lines.append(
            f"{s.name:<26}{s.rows:>10,}{s.seconds:>10.2f}{s.rate:>12,.0f}{s.cpu_seconds:>8.2f}"
        )
    cpu = sum(s.cpu_seconds for s in steps)
    lines.append(f"{'total re-limit':<26}{nf:>10,}{total:>10.2f}{nf / total:>12,.0f}{cpu:>8.2f}")
    lines += [
        "",
        f"PD step (best of 5, interleaved): PDModel.predict {nf / t_pd:,.0f} rows/s, bare "
        f"Booster.predict {nf / t_booster:,.0f} rows/s on the same matrix: ratio {ratio:.2f}x "
        "(goal >= 0.8x)",
        f"full re-limit throughput / bare Booster.predict: {(nf / total) / (nf / t_booster):.3f}x",
        f"actions: {decisions['action'].value_counts().to_dict()}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farmers", type=int, default=100_000)
    parser.add_argument("--parcels", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(run(args.farmers, args.parcels, args.seed))


if __name__ == "__main__":
    main()
