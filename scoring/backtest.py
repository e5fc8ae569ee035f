"""Backtest: replay a finished season under this policy and a flat-limit baseline, and score
both on outcomes simulated from the generator's truth.

**Replay.** The per-stage parcel assessments a season run saved
(``<out>/stages/<stage>/assessment.parquet``, written by ``flows.season``) go, stage by stage
in season order, through :func:`scoring.features.farmer_features` -> ``PDModel.predict`` ->
:func:`scoring.policy.decide_batch` with the limits and draws of the stage before; model reasons
are not computed (they never move a limit). The **flat baseline** lends ``eur_per_ha`` per
declared ha, capped at ``cap_eur``, set once before sowing: no PD, no re-limits, no flags.

**Draws.** A farmer asks, at each stage, for ``financing_ratio`` x the cost of the DECLARED
plan paid up to that stage (declared crop and area, ``data/crop_economics.csv``): the same
demand under both policies, whatever the lender believes (an overstated or fictitious parcel
asks for money too). :func:`scoring.drawdown.simulate_draws` caps it by the limit in force and
never lets it fall. When the run stops before harvest, a last draw at harvest is taken under
the last limits, so exposure is always the whole season's.

**Simulated outcomes** (:func:`simulate_outcomes`). Each farmer's default follows the rules of
the simulated loan book the PD model learnt from (``scoring/loanbook.py``, rule 5), fed with
the TRUE farm rather than what imagery saw:

* realised margin ratio = sum(true area x prior yield x event factor x price) / sum(true area
  x cost), all on the TRUE crop, times ``1 + 0.18 e`` (loan book rule 3; ``e ~ N(0, 1)``, the
  farm's yield luck). Event factors: drought 0.5 (the generated canopy collapses to 30 % of
  its green level within weeks of early June, ``geo.synth.scenes.surface``), flood 0.2 (the
  crop is destroyed: the features' ``failed_factor``), none 1;
* health_z: drought -2.5, flood -4 (the loan book's floor), none 0, area-weighted;
* verified share = declared area whose true crop is the declared one (at most its true area)
  / declared area; area gap share = declared area not planted with any crop (non-cropland, or
  beyond the true area) / declared area;
* debt service ratio = annual debt service / revenue expected from the true crops at prior
  yields, clipped to [0, 2]; years with the lender from the farmers table; crop diversity =
  number of true crops (at least 1);
* ``logit = ALPHA + 4.0 max(0, 1.3 - margin) + 0.35 max(0, -health_z) + 3.0 dsr
  + 2.5 (1 - verified) + 2.0 gap - 0.12 min(years, 10) - 0.1 (diversity - 1) + N(0, 0.5)``;
  default if ``U(0, 1) < sigmoid(logit)``.

Overlapping pledges do not change the outcome (the land is farmed; the double pledge is a
collateral problem, not a yield one): the overlap flag is only scored for its hits. The draws
are seeded per farmer (``seed`` and the farmer id), so a farmer's outcome does not depend on
who else is in the book. Draw 0 is THE simulated season; ``outcome_draws`` further draws give
the mean realised loss, a steadier comparison on a small book.

**Losses.** Exposure at default (EAD) = season-end draws of the farmers who default;
realised loss = ``lgd`` x EAD; expected loss = sum(PD x season-end draws x ``lgd``), with the
PD the model gave at the last stage replayed (the same PD prices both books). ``LGD = 0.45``,
the Basel II foundation-IRB value for senior claims without recognised collateral.

**Flag hits** (parcels, flagged at any stage): ``wrong_crop`` vs ``wrong_declaration``,
``overstated_area``, ``not_cropland``, ``overlap`` vs the truth column of the same name, and
``crop_stress`` (stress confirmed on the parcel) vs a drought or flood event. Hit rate =
flagged parcels that are true / flagged parcels; recall = true parcels flagged / true parcels.
"""

from __future__ import annotations

import json
import logging
import math
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from geo.errors import TableError
from geo.types import GrowthStage, Season
from scoring.drawdown import simulate_draws
from scoring.features import FLAGS, farmer_features
from scoring.layout import RunLayout
from scoring.loanbook import ALPHA
from scoring.pd_model import PDModel, load_shipped_pd
from scoring.policy import PolicyConfig, decide_batch
from scoring.tables import Economics, load_economics

log = logging.getLogger(__name__)

#: Loss given default: Basel II foundation IRB, senior claims without recognised collateral.
LGD: Final[float] = 0.45
#: Yield of a parcel hit by an event, as a share of the prior yield.
EVENT_YIELD_FACTOR: Final[dict[str, float]] = {"none": 1.0, "drought": 0.5, "flood": 0.2}
#: Crop health (sd below the reference curve) an event leaves.
EVENT_HEALTH_Z: Final[dict[str, float]] = {"none": 0.0, "drought": -2.5, "flood": -4.0}
#: Loan book rule 3: sd of the farm's yield luck on the margin ratio.
YIELD_LUCK_SD: Final[float] = 0.18
#: Loan book rule 5: sd of the unexplained term of the default logit.
LOGIT_NOISE_SD: Final[float] = 0.5
#: Parcel flag -> (truth it is scored against, in words).
FLAG_TRUTH: Final[dict[str, str]] = {
    "overlap": "overlap",
    "wrong_crop": "wrong_declaration",
    "overstated_area": "overstated_area",
    "not_cropland": "not_cropland",
    "crop_stress": "drought or flood",
}
TRUTH_COLUMNS: Final[tuple[str, ...]] = (
    "parcel_id",
    "farmer_id",
    "true_crop",
    "true_area_ha",
    "event",
    "wrong_declaration",
    "overstated_area",
    "overlap",
    "not_cropland",
)
POLICY_NAMES: Final[tuple[str, str]] = ("policy", "flat baseline")
#: Columns of the parcel assessment that hold the farmer's declared plan.
PLAN_COLUMNS: Final[tuple[str, ...]] = (
    "parcel_id",
    "farmer_id",
    "region",
    "declared_crop",
    "declared_area_ha",
)


class BaselineConfig(BaseModel):
    """The flat-limit baseline: ``eur_per_ha`` x declared ha, capped; set once, never moved.

    ``eur_per_ha=None`` uses ``financing_ratio`` x the book's average cost per declared ha
    (declared crops, ``data/crop_economics.csv``), so both books lend about the same volume
    and differ in whom they lend it to.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    eur_per_ha: float | None = Field(default=None, gt=0)
    cap_eur: float = Field(default=150_000.0, gt=0)


@dataclass(frozen=True)
class PolicyOutcome:
    """One lending rule's season, in EUR and farmer counts."""

    name: str
    limits_granted_sum_eur: float
    limits_granted_mean_eur: float
    final_limits_sum_eur: float
    drawn_sum_eur: float
    n_financed: int
    n_defaults_financed: int
    exposure_at_default_eur: float
    expected_loss_eur: float
    realised_loss_eur: float
    realised_loss_mean_eur: float
    flags: dict[str, int] = field(default_factory=dict)
    n_cut: int = 0
    n_held: int = 0
    n_zero: int = 0

    @property
    def loss_rate(self) -> float:
        """Realised loss / season-end draws (0 when nothing was drawn)."""
        return self.realised_loss_eur / self.drawn_sum_eur if self.drawn_sum_eur > 0 else 0.0


@dataclass(frozen=True)
class BacktestResult:
    """What :func:`backtest` measured.

    ``farmers``: one row per farmer (truth labels, simulated outcome, PDs, limits, draws and
    losses under both rules); ``flag_hits``: one row per flag of :data:`FLAG_TRUTH`;
    ``decisions``: the policy's replayed decisions per stage.
    """

    season: int
    stages: tuple[GrowthStage, ...]
    n_farmers: int
    n_defaults: int
    policy_version: str
    model_version: str
    baseline_eur_per_ha: float
    lgd: float
    seed: int
    outcome_draws: int
    policy: PolicyOutcome
    baseline: PolicyOutcome
    flag_hits: pd.DataFrame
    farmers: pd.DataFrame
    decisions: dict[GrowthStage, pd.DataFrame] = field(default_factory=dict)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=float)


def _farmer_noise(farmer_ids: list[str], seed: int, draws: int) -> np.ndarray:
    """(3, draws, farmers): yield luck ``e``, logit noise and the uniform of each draw."""
    out = np.empty((3, draws, len(farmer_ids)))
    for j, fid in enumerate(farmer_ids):
        rng = np.random.default_rng([seed, zlib.crc32(fid.encode())])
        out[0, :, j] = rng.standard_normal(draws)
        out[1, :, j] = rng.normal(0.0, LOGIT_NOISE_SD, draws)
        out[2, :, j] = rng.random(draws)
    return out


def simulate_outcomes(
    truth: pd.DataFrame,
    farmers: pd.DataFrame,
    economics: Economics,
    season: Season,
    *,
    seed: int = 0,
    draws: int = 200,
) -> pd.DataFrame:
    """Each farmer's simulated season from the truth table (rules in the module docstring).

    Args:
        truth: one row per parcel with :data:`TRUTH_COLUMNS` plus ``region``,
            ``declared_crop`` and ``declared_area_ha`` (ha).
        farmers: farmer_id, annual_debt_service_eur (EUR/year), years_with_lender.
        economics, season: prior yields, prices and costs of the true crops.
        seed: seed of the outcome draws (with each farmer id).
        draws: number of outcome draws (>= 1); draw 0 is the reported season.

    Returns:
        One row per farmer (sorted by id): the loan book inputs (realised_margin_ratio of
        draw 0, health_z, verified_share, area_gap_share, debt_service_ratio, years,
        crop_diversity), ``p_default`` (mean default probability over draws), ``default``
        (bool, draw 0), ``default_rate`` (share of draws that default) and truth labels
        ``drought``, ``flood``, ``wrong_declaration``, ``overstated_area``, ``not_cropland``,
        ``overlap`` (any parcel).

    Raises:
        TableError: a missing column, a draw count below 1, or a farmer absent from
            ``farmers``.
    """
    need = (*TRUTH_COLUMNS, "region", "declared_crop", "declared_area_ha")
    missing = [c for c in need if c not in truth.columns]
    if missing:
        raise TableError(
            f"truth table: missing column(s) {', '.join(missing)}; the backtest needs the "
            "generator's truth/parcels_truth.parquet joined to the parcels"
        )
    if draws < 1:
        raise TableError(f"outcome draws = {draws}; use at least 1")
    t = truth.assign(farmer_id=truth["farmer_id"].astype(str)).reset_index(drop=True)
    crops = t["true_crop"].astype(str).tolist()
    regions = t["region"].astype(str).tolist()
    econ = [economics.lookup(c, r, season) for c, r in zip(crops, regions, strict=True)]
    area = t["true_area_ha"].to_numpy(dtype=float)
    declared = t["declared_area_ha"].to_numpy(dtype=float)
    event = t["event"].astype(str).to_numpy()
    unknown = sorted(set(event) - set(EVENT_YIELD_FACTOR))
    if unknown:
        raise TableError(f"truth table: unknown event(s) {unknown}; expected none/drought/flood")
    cropland = np.array([c != "non_crop" for c in crops])
    prior = area * np.array([e.yield_t_ha * e.price_eur_t for e in econ])
    factor = np.array([EVENT_YIELD_FACTOR[e] for e in event])
    cost = area * np.array([e.cost_eur_ha for e in econ])
    same_crop = t["true_crop"].astype(str).to_numpy() == t["declared_crop"].astype(str).to_numpy()
    verified = np.where(same_crop & cropland, np.minimum(area, declared), 0.0)
    gap = np.maximum(declared - np.where(cropland, area, 0.0), 0.0)

    ids = sorted(set(t["farmer_id"]))
    code = {f: i for i, f in enumerate(ids)}
    g = np.array([code[f] for f in t["farmer_id"]], dtype=np.intp)
    n = len(ids)

    def per_farmer(values: np.ndarray) -> np.ndarray:
        return np.bincount(g, weights=values, minlength=n)

    def ratio(num: np.ndarray, den: np.ndarray, default: float) -> np.ndarray:
        out = np.full(n, default)
        np.divide(num, den, out=out, where=den > 0)
        return out

    f = farmers.assign(farmer_id=farmers["farmer_id"].astype(str)).drop_duplicates(
        "farmer_id", keep="last"
    )
    absent = sorted(set(ids) - set(f["farmer_id"]))
    if absent:
        raise TableError(f"farmers table: no row for farmer(s) {', '.join(absent[:5])}")
    f = f.set_index("farmer_id").loc[ids]
    debt = f["annual_debt_service_eur"].to_numpy(dtype=float)
    years = np.maximum(f["years_with_lender"].to_numpy(dtype=float), 0.0)
    revenue = per_farmer(prior)
    planned_margin = ratio(per_farmer(prior * factor), per_farmer(cost), 0.0)
    weights = np.where(cropland, area, 0.0)
    health = ratio(
        per_farmer(weights * np.array([EVENT_HEALTH_Z[e] for e in event])),
        per_farmer(weights),
        0.0,
    )
    verified_share = np.clip(ratio(per_farmer(verified), per_farmer(declared), 0.0), 0, 1)
    gap_share = np.clip(ratio(per_farmer(gap), per_farmer(declared), 0.0), 0, 1)
    dsr = np.clip(ratio(debt, revenue, 2.0), 0, 2)
    dsr = np.where((revenue <= 0) & (debt <= 0), 0.0, dsr)
    pairs = {(gi, c) for gi, c, ok in zip(g.tolist(), crops, cropland.tolist(), strict=True) if ok}
    diversity = np.maximum(np.bincount([p[0] for p in pairs], minlength=n), 1).astype(float)

    luck, noise, uniform = _farmer_noise(ids, seed, draws)
    realised = planned_margin * (1 + YIELD_LUCK_SD * luck)
    logit = (
        ALPHA
        + 4.0 * np.maximum(0.0, 1.3 - realised)
        + 0.35 * np.maximum(0.0, -health)
        + 3.0 * dsr
        + 2.5 * (1 - verified_share)
        + 2.0 * gap_share
        - 0.12 * np.minimum(years, 10)
        - 0.1 * (diversity - 1)
        + noise
    )
    p = _sigmoid(logit)
    default = uniform < p

    def any_parcel(mask: np.ndarray) -> np.ndarray:
        return per_farmer(mask.astype(float)) > 0

    return pd.DataFrame(
        {
            "farmer_id": ids,
            "true_area_ha": per_farmer(area),
            "realised_margin_ratio": realised[0],
            "health_z": health,
            "verified_share": verified_share,
            "area_gap_share": gap_share,
            "debt_service_ratio": dsr,
            "years_with_lender": years,
            "crop_diversity": diversity,
            "p_default": p.mean(axis=0),
            "default": default[0],
            "default_rate": default.mean(axis=0),
            "drought": any_parcel(event == "drought"),
            "flood": any_parcel(event == "flood"),
            **{c: any_parcel(t[c].to_numpy(dtype=bool)) for c in TRUTH_COLUMNS[5:]},
        }
    )


def _declared_cost(
    parcels: pd.DataFrame, economics: Economics, season: Season, stages: list[GrowthStage]
) -> tuple[pd.DataFrame, float]:
    """Per farmer, the declared plan's cost paid through each stage (EUR, one column per
    stage, plus ``declared_area_ha``), and the book's declared cost per ha."""
    keys = list(
        zip(parcels["declared_crop"].astype(str), parcels["region"].astype(str), strict=True)
    )
    rows = {k: economics.lookup(k[0], k[1], season) for k in set(keys)}
    declared = parcels["declared_area_ha"].to_numpy(dtype=float)
    cost = declared * np.array([rows[k].cost_eur_ha for k in keys])
    out = pd.DataFrame(
        {"farmer_id": parcels["farmer_id"].astype(str), "declared_area_ha": declared}
    )
    for s in [*stages, GrowthStage.HARVEST]:
        out[s.value] = cost * np.array([rows[k].share_through(s) for k in keys])
    per_ha = float(cost.sum() / declared.sum()) if declared.sum() > 0 else 0.0
    return out.groupby("farmer_id", sort=True).sum(), per_ha


def _merge(old: pd.Series, new: pd.Series) -> pd.Series:
    """``old`` updated with ``new`` (farmers absent from a stage keep their last value)."""
    kept = old[~old.index.isin(new.index)]
    out = pd.concat([kept, new]) if len(kept) else new.copy()
    out.index.name = "farmer_id"
    out = out.sort_index()
    out.name = new.name
    return out


def _draw(
    limits: pd.Series, cost: pd.DataFrame, stage: GrowthStage, ratio: float, drawn: pd.Series
) -> pd.Series:
    """Cumulative draws after ``stage``: ``ratio`` x the declared plan's cost through the
    stage, capped by ``limits`` (farmer_id -> EUR), never below ``drawn``."""
    new = simulate_draws(
        pd.DataFrame({"farmer_id": limits.index, "limit_eur": limits.to_numpy()}),
        pd.DataFrame(
            {"farmer_id": cost.index, "cost_through_stage_eur": cost[stage.value].to_numpy()}
        ),
        stage,
        financing_ratio=ratio,
        previous=drawn,
    )
    return _merge(drawn, new)


def _parcel_flags(features: pd.DataFrame) -> dict[str, set[str]]:
    """Parcel ids per flag of :data:`FLAG_TRUTH` at one stage."""
    out: dict[str, set[str]] = {f: set() for f in FLAG_TRUTH}
    for parcels in features["evidence"]:
        for e in parcels:
            for f in e["flags"]:
                if f in out:
                    out[f].add(e["parcel_id"])
            if e["stress_confirmed"]:
                out["crop_stress"].add(e["parcel_id"])
    return out


@dataclass
class _Replay:
    """The policy's season: decisions per stage; limits, draws and last PD per farmer."""

    decisions: dict[GrowthStage, pd.DataFrame] = field(default_factory=dict)
    limits: pd.Series = field(default_factory=lambda: pd.Series(dtype=float, name="limit_eur"))
    drawn: pd.Series = field(default_factory=lambda: pd.Series(dtype=float, name="drawn_eur"))
    pd_last: pd.Series = field(default_factory=lambda: pd.Series(dtype=float, name="pd"))
    flagged: dict[str, set[str]] = field(default_factory=lambda: {f: set() for f in FLAG_TRUTH})


def _replay(
    assessments: Mapping[GrowthStage, pd.DataFrame],
    farmers: pd.DataFrame,
    overlaps: pd.DataFrame,
    cost: pd.DataFrame,
    *,
    season: Season,
    policy: PolicyConfig,
    economics: Economics,
    model: PDModel,
) -> _Replay:
    """Features -> PD -> decide_batch -> draws, stage by stage in season order."""
    r = _Replay()
    for stage in sorted(assessments, key=lambda s: s.order):
        feats = farmer_features(
            assessments[stage], farmers, overlaps, economics, season, stage, cfg=policy.features
        )
        pd_ = model.predict(feats)
        no_reasons: list[list[str]] = [[] for _ in range(len(feats))]
        previous = r.limits.reset_index() if r.decisions else None
        dec = decide_batch(feats, pd_, no_reasons, previous, r.drawn, stage, policy)
        r.limits = _merge(r.limits, dec.set_index("farmer_id")["limit_eur"])
        r.drawn = _draw(r.limits, cost, stage, policy.financing_ratio, r.drawn)
        r.pd_last = _merge(r.pd_last, pd.Series(pd_, index=dec["farmer_id"], name="pd"))
        for f, ids in _parcel_flags(feats).items():
            r.flagged[f] |= ids
        r.decisions[stage] = dec
        log.info("backtest %s: %s", stage.value, dec["action"].value_counts().to_dict())
    return r


def _flag_hits(flagged: dict[str, set[str]], truth: pd.DataFrame) -> pd.DataFrame:
    t = truth.set_index(truth["parcel_id"].astype(str))
    labels = {
        "overlap": t["overlap"].astype(bool),
        "wrong_crop": t["wrong_declaration"].astype(bool),
        "overstated_area": t["overstated_area"].astype(bool),
        "not_cropland": t["not_cropland"].astype(bool),
        "crop_stress": t["event"].astype(str).isin(["drought", "flood"]),
    }
    rows = []
    for flag, truth_name in FLAG_TRUTH.items():
        true = set(labels[flag].index[labels[flag].to_numpy()])
        got = flagged[flag] & set(t.index)
        hits = len(got & true)
        rows.append(
            {
                "flag": flag,
                "truth": truth_name,
                "flagged": len(got),
                "true": len(true),
                "hits": hits,
                "hit_rate": hits / len(got) if got else math.nan,
                "recall": hits / len(true) if true else math.nan,
            }
        )
    return pd.DataFrame(rows)


def _outcome(
    name: str,
    granted: pd.Series,
    final: pd.Series,
    drawn: pd.Series,
    book: pd.DataFrame,
    lgd: float,
    **extra: Any,
) -> PolicyOutcome:
    d = drawn.reindex(book.index).fillna(0.0).to_numpy()
    default = book["default"].to_numpy(dtype=bool)
    ead = float(d[default].sum())
    return PolicyOutcome(
        name=name,
        limits_granted_sum_eur=float(granted.sum()),
        limits_granted_mean_eur=float(granted.reindex(book.index).fillna(0.0).mean()),
        final_limits_sum_eur=float(final.sum()),
        drawn_sum_eur=float(d.sum()),
        n_financed=int((d > 0).sum()),
        n_defaults_financed=int((default & (d > 0)).sum()),
        exposure_at_default_eur=ead,
        expected_loss_eur=float((book["pd_last"].to_numpy() * d).sum() * lgd),
        realised_loss_eur=ead * lgd,
        realised_loss_mean_eur=float((book["default_rate"].to_numpy() * d).sum() * lgd),
        **extra,
    )


def backtest_frames(
    assessments: Mapping[GrowthStage, pd.DataFrame],
    farmers: pd.DataFrame,
    overlaps: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    season: Season,
    policy: PolicyConfig | None = None,
    economics: Economics | None = None,
    model: PDModel | None = None,
    baseline: BaselineConfig | None = None,
    lgd: float = LGD,
    seed: int = 0,
    outcome_draws: int = 200,
) -> BacktestResult:
    """The backtest over in-memory tables (see :func:`backtest` for the files).

    Args:
        assessments: parcel assessment (DESIGN.md contract) per stage; replayed in season order.
        farmers: farmer_id, region, annual_debt_service_eur, years_with_lender.
        overlaps: ``geo.parcels.find_overlaps`` of the pledged parcels.
        truth: the generator's per-parcel truth (:data:`TRUTH_COLUMNS`).
        season: the season replayed.
        policy: the limit policy (default :class:`PolicyConfig`).
        economics: crop economics (default ``data/crop_economics.csv``).
        model: PD model (default the shipped one).
        baseline: the flat-limit baseline (default :class:`BaselineConfig`).
        lgd: loss given default (0-1).
        seed, outcome_draws: see :func:`simulate_outcomes`.

    Raises:
        TableError: no stage, a parcel of the assessments missing from the truth table, or a
            table :func:`farmer_features` / :func:`simulate_outcomes` refuses.
    """
    if not assessments:
        raise TableError("backtest: no stage assessment to replay; run the season first")
    if not 0 <= lgd <= 1:
        raise TableError(f"backtest: lgd = {lgd}; give a share between 0 and 1 (0.45)")
    policy = policy or PolicyConfig()
    economics = economics or load_economics()
    model = model or load_shipped_pd()
    baseline = baseline or BaselineConfig()
    stages = sorted(assessments, key=lambda s: s.order)
    parcels = assessments[stages[0]][list(PLAN_COLUMNS)].astype(
        {"parcel_id": str, "farmer_id": str}
    )
    t = truth.astype({"parcel_id": str})
    t = t[t["parcel_id"].isin(parcels["parcel_id"])]
    unknown = sorted(set(parcels["parcel_id"]) - set(t["parcel_id"]))
    if unknown:
        raise TableError(
            f"truth table: no row for parcel(s) {', '.join(unknown[:5])}; the backtest needs "
            "the truth of every assessed parcel (a generated archive's truth/)"
        )
    plan = parcels.merge(t.drop(columns=["farmer_id"], errors="ignore"), on="parcel_id")
    book = simulate_outcomes(plan, farmers, economics, season, seed=seed, draws=outcome_draws)
    book = book.set_index("farmer_id")
    cost, cost_per_ha = _declared_cost(parcels, economics, season, stages)
    rate = baseline.eur_per_ha or policy.financing_ratio * cost_per_ha

    started = time.perf_counter()
    r = _replay(
        assessments,
        farmers,
        overlaps,
        cost,
        season=season,
        policy=policy,
        economics=economics,
        model=model,
    )
    step = policy.rounding_eur
    flat = (cost["declared_area_ha"] * rate).clip(upper=baseline.cap_eur) // step * step
    flat_drawn = pd.Series(dtype=float, name="drawn_eur")
    for stage in stages:
        flat_drawn = _draw(flat, cost, stage, policy.financing_ratio, flat_drawn)
    if stages[-1] != GrowthStage.HARVEST:  # the rest of the season draws at the last limits
        harvest = GrowthStage.HARVEST
        r.drawn = _draw(r.limits, cost, harvest, policy.financing_ratio, r.drawn)
        flat_drawn = _draw(flat, cost, harvest, policy.financing_ratio, flat_drawn)
    log.info("backtest: %d stage(s) replayed in %.1f s", len(stages), time.perf_counter() - started)

    first = r.decisions[stages[0]].set_index("farmer_id")
    book["pd_first"] = first["pd"].reindex(book.index)
    book["pd_last"] = r.pd_last.reindex(book.index).fillna(1.0)
    actions = pd.DataFrame(
        {s.value: d.set_index("farmer_id")["action"] for s, d in r.decisions.items()}
    ).reindex(book.index)
    flagged: dict[str, set[str]] = {f: set() for f in (*FLAGS, "held_for_review", "at_drawn")}
    for dec in r.decisions.values():
        for fid, flags in zip(dec["farmer_id"], dec["flags"], strict=True):
            for f in flags:
                flagged.setdefault(f, set()).add(str(fid))
    policy_out = _outcome(
        POLICY_NAMES[0],
        first["limit_eur"],
        r.limits,
        r.drawn,
        book,
        lgd,
        flags={f: len(ids) for f, ids in flagged.items()},
        n_cut=int((actions == "cut").any(axis=1).sum()),
        n_held=int((actions == "hold").any(axis=1).sum()),
        n_zero=int((actions == "zero").any(axis=1).sum()),
    )
    farmers_out = book.assign(
        policy_limit_granted_eur=first["limit_eur"].reindex(book.index),
        policy_limit_final_eur=r.limits.reindex(book.index),
        policy_drawn_eur=r.drawn.reindex(book.index).fillna(0.0),
        baseline_limit_eur=flat.reindex(book.index),
        baseline_drawn_eur=flat_drawn.reindex(book.index).fillna(0.0),
        actions=pd.Series(actions.to_numpy().tolist(), index=book.index, dtype=object),
    )
    for name in ("policy", "baseline"):
        drawn = farmers_out[f"{name}_drawn_eur"]
        farmers_out[f"{name}_loss_eur"] = lgd * drawn * farmers_out["default"]
        farmers_out[f"{name}_loss_mean_eur"] = lgd * drawn * farmers_out["default_rate"]
    return BacktestResult(
        season=season.year,
        stages=tuple(stages),
        n_farmers=len(book),
        n_defaults=int(book["default"].sum()),
        policy_version=policy.version,
        model_version=model.version,
        baseline_eur_per_ha=float(rate),
        lgd=lgd,
        seed=seed,
        outcome_draws=outcome_draws,
        policy=policy_out,
        baseline=_outcome(POLICY_NAMES[1], flat, flat, flat_drawn, book, lgd),
        flag_hits=_flag_hits(r.flagged, t),
        farmers=farmers_out.reset_index(),
        decisions=r.decisions,
    )


def backtest(
    out_dir: Path,
    archive: Path,
    *,
    season: Season,
    policy: PolicyConfig | None = None,
    economics: Economics | None = None,
    model: PDModel | None = None,
    baseline: BaselineConfig | None = None,
    lgd: float = LGD,
    seed: int = 0,
    outcome_draws: int = 200,
) -> BacktestResult:
    """Replay the season run in ``out_dir`` against the generated ``archive``'s truth.

    Reads ``out_dir/stages/<stage>/assessment.parquet`` (every stage present),
    ``archive/farmers.csv``, ``archive/parcels.parquet`` (for
    ``geo.parcels.find_overlaps``, as the season flow does) and
    ``archive/truth/parcels_truth.parquet``; the rest is :func:`backtest_frames`.

    Raises:
        TableError: no stage output in ``out_dir``, or a missing archive file.
    """
    from geo.parcels import find_overlaps, read_parcels
    from scoring.farmers import read_farmers

    out_dir, archive = Path(out_dir), Path(archive)
    layout = RunLayout(out_dir)
    found = {s: layout.assessment(s) for s in GrowthStage if layout.assessment(s).is_file()}
    if not found:
        raise TableError(
            f"{out_dir}: no stages/<stage>/assessment.parquet; run the season first "
            "(`cropcredit demo` or `cropcredit season --out DIR`)"
        )
    paths = {
        "farmers": archive / "farmers.csv",
        "parcels": archive / "parcels.parquet",
        "truth": archive / "truth" / "parcels_truth.parquet",
    }
    for what, path in paths.items():
        if not path.is_file():
            raise TableError(
                f"{path}: {what} file not found; the backtest needs a generated archive "
                "(`cropcredit generate`), whose truth/ holds the simulated outcomes' inputs"
            )
    assessments = {s: pd.read_parquet(p) for s, p in found.items()}
    farmers, _ = read_farmers(paths["farmers"])  # the lines onboarding accepted
    overlaps = find_overlaps(read_parcels(paths["parcels"]).parcels)
    truth = pd.read_parquet(paths["truth"])
    return backtest_frames(
        assessments,
        farmers,
        overlaps,
        truth,
        season=season,
        policy=policy,
        economics=economics,
        model=model,
        baseline=baseline,
        lgd=lgd,
        seed=seed,
        outcome_draws=outcome_draws,
    )


def format_backtest(result: BacktestResult) -> str:
    """The backtest as plain text tables (no markup: safe to print through rich)."""
    p, b = result.policy, result.baseline
    stages = ", ".join(s.value for s in result.stages)
    head = [
        f"Backtest of season {result.season}: {result.n_farmers} farmers, stages {stages}",
        f"policy {result.policy_version}, PD model {result.model_version}; flat baseline "
        f"EUR {result.baseline_eur_per_ha:,.0f} per declared ha",
        f"simulated outcomes: seed {result.seed}, {result.n_defaults} defaults in the season "
        f"drawn; mean over {result.outcome_draws} draws also shown; LGD {result.lgd:.0%}",
        "",
    ]

    def money(x: float) -> str:
        return f"{x:,.0f}"

    def share(x: float) -> str:
        return f"{x:.2%}"

    metrics: list[tuple[str, str, Any]] = [
        ("limits granted at the first stage, sum (EUR)", "limits_granted_sum_eur", money),
        ("limits granted at the first stage, mean (EUR)", "limits_granted_mean_eur", money),
        ("limits at season end, sum (EUR)", "final_limits_sum_eur", money),
        ("drawn at season end, sum (EUR)", "drawn_sum_eur", money),
        ("farmers financed (drew > 0)", "n_financed", str),
        ("financed farmers who default", "n_defaults_financed", str),
        ("exposure at default (EUR)", "exposure_at_default_eur", money),
        ("expected loss, PD x drawn x LGD (EUR)", "expected_loss_eur", money),
        ("realised loss (EUR)", "realised_loss_eur", money),
        ("realised loss, mean over draws (EUR)", "realised_loss_mean_eur", money),
        ("loss rate (realised loss / drawn)", "loss_rate", share),
    ]
    rows = [(label, fmt(getattr(p, a)), fmt(getattr(b, a))) for label, a, fmt in metrics]
    rows.append(
        (
            "farmers cut / held / zeroed",
            f"{p.n_cut} / {p.n_held} / {p.n_zero}",
            f"{b.n_cut} / {b.n_held} / {b.n_zero}",
        )
    )
    for flag, n in p.flags.items():
        rows.append((f"farmers flagged {flag}", str(n), str(b.flags.get(flag, 0))))
    w = max(len(r[0]) for r in rows) + 2
    lines = [*head, f"{'':<{w}}{POLICY_NAMES[0]:>16}{POLICY_NAMES[1]:>16}"]
    lines += [f"{a:<{w}}{x:>16}{y:>16}" for a, x, y in rows]
    lines += [
        "",
        "Flags against truth (parcels flagged at any stage; hit rate = flagged that are true)",
        f"{'flag':<18}{'truth':<20}{'flagged':>8}{'true':>6}{'hits':>6}{'hit rate':>10}"
        f"{'recall':>8}",
    ]
    for r in result.flag_hits.to_dict("records"):
        hit = "-" if math.isnan(r["hit_rate"]) else f"{r['hit_rate']:.0%}"
        rec = "-" if math.isnan(r["recall"]) else f"{r['recall']:.0%}"
        lines.append(
            f"{r['flag']:<18}{r['truth']:<20}{r['flagged']:>8}{r['true']:>6}{r['hits']:>6}"
            f"{hit:>10}{rec:>8}"
        )
    return "\n".join(lines)


def run_backtest_cli(out_dir: Path) -> str:
    """``cropcredit backtest --out DIR``: read ``DIR/run.json`` (archive, season, economics
    override and PD model of the run), backtest, and return the tables as text.

    Raises:
        TableError: ``run.json`` missing or unreadable, or what :func:`backtest` raises.
    """
    out_dir = Path(out_dir)
    path = RunLayout(out_dir).run_json
    try:
        params = json.loads(path.read_text())["params"]
        archive = Path(params["imagery"]["archive"])
        season = Season(int(params["season"]))
    except FileNotFoundError as exc:
        raise TableError(f"{path} not found; run the season into {out_dir} first") from exc
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise TableError(
            f"{path}: cannot read params.imagery.archive and params.season ({exc}); "
            "re-run the season to rewrite it"
        ) from exc
    economics = load_economics(override=params.get("economics"))
    model = PDModel.load(params["pd_model"]) if params.get("pd_model") else None
    result = backtest(out_dir, archive, season=season, economics=economics, model=model)
    return format_backtest(result)
