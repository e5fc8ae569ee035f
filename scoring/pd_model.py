"""Probability of default (PD): a monotone gradient-boosted model with isotonic calibration.

``train_pd`` fits an ``xgboost`` booster with monotone constraints (more verified area, better
health, a higher margin ratio and more years with the lender never raise the PD; more debt
service and a bigger declared-vs-seen area gap never lower it) on 75 % of the loans, and an
isotonic calibration of its raw score on the other 25 %. ``PDModel.save`` writes one JSON file
holding the booster, the calibration, the feature list and a version string with a content hash.

Loan history schema (:func:`validate_loans`), one row per farmer-season, CSV or Parquet:

=====================  =======  =====================================================
column                 type     meaning
=====================  =======  =====================================================
verified_share         0-1      share of declared area verified by imagery
area_gap_share         0-1      (declared - seen planted area) / declared, >= 0
health_z               float    area-weighted health, sd vs the crop reference (0 = normal)
margin_ratio           >= 0     expected revenue / cultivation cost
debt_service_ratio     >= 0     annual debt service / expected revenue
years_with_lender      >= 0     whole years as a customer
crop_diversity         >= 1     number of crops grown
default                0/1      1 if the season's loan defaulted (90 days past due)
=====================  =======  =====================================================

Other columns (loan_id, farmer_id, region, season) are kept but not used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from geo.errors import ModelError, TableError
from geo.paths import shipped_file

log = logging.getLogger(__name__)

PD_FEATURES: Final[list[str]] = [
    "verified_share",
    "area_gap_share",
    "health_z",
    "margin_ratio",
    "debt_service_ratio",
    "years_with_lender",
    "crop_diversity",
]
#: +1: PD never falls as the feature rises; -1: never rises; 0: free.
MONOTONE: Final[dict[str, int]] = {
    "verified_share": -1,
    "area_gap_share": 1,
    "health_z": -1,
    "margin_ratio": -1,
    "debt_service_ratio": 1,
    "years_with_lender": -1,
    "crop_diversity": 0,
}
#: Allowed range per feature (lo, hi); None = unbounded.
FEATURE_RANGES: Final[dict[str, tuple[float | None, float | None]]] = {
    "verified_share": (0.0, 1.0),
    "area_gap_share": (0.0, 1.0),
    "health_z": (None, None),
    "margin_ratio": (0.0, None),
    "debt_service_ratio": (0.0, None),
    "years_with_lender": (0.0, None),
    "crop_diversity": (0.0, None),
}
FORMAT: Final[str] = "cropcredit-pd/1"
SHIPPED_PATH: Final[Path] = shipped_file("models/pd_model.json")
#: Above this many rows, contributions use xgboost's fast approximation.
EXACT_CONTRIBS_MAX_ROWS: Final[int] = 2000


@dataclass
class PDParams:
    """Booster hyper-parameters (small on purpose: ships in the repository)."""

    n_estimators: int = 200
    max_depth: int = 4
    learning_rate: float = 0.05
    subsample: float = 0.8
    min_child_weight: float = 5.0
    calibration_share: float = 0.25


@dataclass
class PDModel:
    """A trained PD model: booster + isotonic calibration of its raw probability.

    ``predict`` returns calibrated PDs (0-1); ``contributions`` returns per-feature SHAP
    contributions to the raw log-odds (plus ``bias``), which :mod:`scoring.reasons` turns into
    words.
    """

    booster: xgb.Booster
    calib_x: np.ndarray
    calib_y: np.ndarray
    features: list[str] = field(default_factory=lambda: list(PD_FEATURES))
    trained: dict[str, Any] = field(default_factory=dict)
    _version: str = ""

    @property
    def version(self) -> str:
        """``pd-<trained date>-<sha256 of booster + calibration, 10 hex>``."""
        if not self._version:
            digest = hashlib.sha256(
                bytes(self.booster.save_raw(raw_format="json"))
                + self.calib_x.tobytes()
                + self.calib_y.tobytes()
            ).hexdigest()[:10]
            self._version = f"pd-{self.trained.get('date', 'undated')}-{digest}"
        return self._version

    def _matrix(self, df: pd.DataFrame) -> xgb.DMatrix:
        missing = [c for c in self.features if c not in df.columns]
        if missing:
            raise TableError(
                f"PD features: missing column(s) {', '.join(missing)}; "
                "build them with scoring.features.farmer_features"
            )
        x = df[self.features].astype(float).to_numpy()
        return xgb.DMatrix(x, feature_names=self.features)

    def raw(self, df: pd.DataFrame) -> np.ndarray:
        """Uncalibrated booster probability per row (0-1)."""
        if len(df) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(self._matrix(df)), dtype=float)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of default per row (0-1)."""
        raw = self.raw(df)
        return np.clip(np.interp(raw, self.calib_x, self.calib_y), 0.0, 1.0)

    def contributions(self, df: pd.DataFrame, *, approx: bool | None = None) -> pd.DataFrame:
        """SHAP contributions to the raw log-odds, one column per feature plus ``bias``.

        Exact (TreeSHAP) up to :data:`EXACT_CONTRIBS_MAX_ROWS` rows, xgboost's approximate
        contributions above (about 50x faster); ``approx`` forces either.
        """
        cols = [*self.features, "bias"]
        if len(df) == 0:
            return pd.DataFrame(columns=cols, dtype=float)
        use_approx = len(df) > EXACT_CONTRIBS_MAX_ROWS if approx is None else approx
        contribs = self.booster.predict(
            self._matrix(df), pred_contribs=True, approx_contribs=use_approx
        )
        return pd.DataFrame(np.asarray(contribs), columns=cols, index=df.index)

    def reasons(self, df: pd.DataFrame, top: int = 3) -> list[list[str]]:
        """Top reasons in words per row (see :func:`scoring.reasons.reasons_for`)."""
        from scoring.reasons import reasons_for

        contribs = self.contributions(df)
        return [reasons_for(df.iloc[i], contribs.iloc[i], top=top) for i in range(len(df))]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation (booster embedded as xgboost's JSON model)."""
        return {
            "format": FORMAT,
            "version": self.version,
            "features": self.features,
            "monotone": {f: MONOTONE.get(f, 0) for f in self.features},
            "calibration": {
                "method": "isotonic",
                "x": self.calib_x.tolist(),
                "y": self.calib_y.tolist(),
            },
            "trained": self.trained,
            "booster": json.loads(bytes(self.booster.save_raw(raw_format="json"))),
        }

    def save(self, path: Path | str) -> Path:
        """Write the model as one JSON file; returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), separators=(",", ":")))
        log.info("saved PD model %s to %s", self.version, p)
        return p

    @classmethod
    def load(cls, path: Path | str) -> PDModel:
        """Read a model written by :meth:`save`.

        Raises:
            ModelError: missing file, not a cropcredit PD model, or corrupt booster.
        """
        p = Path(path)
        if not p.exists():
            raise ModelError(
                f"{p}: PD model file not found; train one with `cropcredit train-pd --loans FILE`"
            )
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise ModelError(f"{p}: not valid JSON ({exc}); re-save the model") from exc
        if d.get("format") != FORMAT:
            raise ModelError(
                f"{p}: format {d.get('format')!r}, expected {FORMAT!r}; "
                "retrain with this version of cropcredit"
            )
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(json.dumps(d["booster"]).encode()))
        except (xgb.core.XGBoostError, KeyError) as exc:
            raise ModelError(f"{p}: booster cannot be loaded ({exc}); retrain the model") from exc
        model = cls(
            booster=booster,
            calib_x=np.asarray(d["calibration"]["x"], dtype=float),
            calib_y=np.asarray(d["calibration"]["y"], dtype=float),
            features=list(d["features"]),
            trained=dict(d.get("trained", {})),
        )
        if model.version != d.get("version"):
            raise ModelError(
                f"{p}: content hash {model.version} does not match the recorded version "
                f"{d.get('version')}; the file was edited, retrain or restore it"
            )
        return model


def load_shipped_pd() -> PDModel:
    """The PD model shipped in ``data/models/pd_model.json`` (trained on the simulated book)."""
    return PDModel.load(SHIPPED_PATH)


def _where(df: pd.DataFrame, i: int, source: str) -> str:
    """Where the ``i``-th row (0-based) is: ``line N (row i+1)`` of a CSV read by
    :func:`read_loans` (its index is the line - 2), ``row i+1`` otherwise."""
    if source.lower().endswith(".csv") and pd.api.types.is_integer_dtype(df.index):
        return f"line {int(df.index[i]) + 2} (row {i + 1})"
    return f"row {i + 1}"


def validate_loans(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a lender's loan history against the schema above; return a clean copy.

    Raises:
        TableError: names the file (``source``), the column and, for bad values, the first
            offending row (1-based data row; for a CSV also its line in the file, header = 1)
            with the fix.
    """
    required = [*PD_FEATURES, "default"]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise TableError(
            f"{source}: missing column(s) {', '.join(missing)}; a loan history needs "
            f"{', '.join(required)} (see scoring/pd_model.py for the schema)"
        )
    if len(df) == 0:
        raise TableError(f"{source}: no rows; the loan history must have at least one loan")
    out = df.copy()
    for col in required:
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() & out[col].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise TableError(
                f"{source}: {_where(out, i, source)}, column {col} is {out[col].iloc[i]!r}; "
                "expected a number (digits and a decimal point, no thousands separator)"
            )
        if values.isna().any():
            i = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise TableError(
                f"{source}: {_where(out, i, source)}, column {col} is empty; fill it in or drop "
                "the row"
            )
        infinite = ~np.isfinite(values.to_numpy(dtype=float))
        if infinite.any():
            i = int(np.flatnonzero(infinite)[0])
            raw = out[col].iloc[i]
            shown = repr(raw) if isinstance(raw, str) else str(raw)
            raise TableError(
                f"{source}: {_where(out, i, source)}, column {col} is {shown}, not a finite "
                "number; "
                "replace it with a finite value or drop the row"
            )
        out[col] = values.astype(float)
    for col, (lo, hi) in FEATURE_RANGES.items():
        v = out[col].to_numpy()
        bad_mask = np.zeros(len(v), dtype=bool)
        if lo is not None:
            bad_mask |= v < lo
        if hi is not None:
            bad_mask |= v > hi
        if bad_mask.any():
            i = int(np.flatnonzero(bad_mask)[0])
            raise TableError(
                f"{source}: {_where(out, i, source)}, column {col} is {v[i]}; expected a value in "
                f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            )
    d = out["default"].to_numpy()
    if not np.isin(d, (0.0, 1.0)).all():
        i = int(np.flatnonzero(~np.isin(d, (0.0, 1.0)))[0])
        raise TableError(
            f"{source}: {_where(out, i, source)}, column default is {d[i]}; expected 0 or 1"
        )
    out["default"] = out["default"].astype(int)
    n_def = int(out["default"].sum())
    if n_def < 10 or len(out) - n_def < 10:
        raise TableError(
            f"{source}: column default has {n_def} defaults in {len(out)} loans; "
            "training needs at least 10 defaults and 10 repaid loans"
        )
    return out


def train_pd(loans: pd.DataFrame, *, seed: int = 0, params: PDParams | None = None) -> PDModel:
    """Fit the monotone booster and its isotonic calibration on a held-out quarter.

    Args:
        loans: a validated loan history (:func:`validate_loans`).
        seed: seed of the split and of the booster's row subsampling.
        params: hyper-parameters (default :class:`PDParams`).
    """
    params = params or PDParams()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(loans))
    n_cal = max(int(len(loans) * params.calibration_share), 1)
    cal, fit = loans.iloc[idx[:n_cal]], loans.iloc[idx[n_cal:]]
    y_fit = fit["default"].to_numpy()
    clf = xgb.XGBClassifier(
        n_estimators=params.n_estimators,
        max_depth=params.max_depth,
        learning_rate=params.learning_rate,
        subsample=params.subsample,
        min_child_weight=params.min_child_weight,
        monotone_constraints=tuple(MONOTONE[f] for f in PD_FEATURES),
        tree_method="hist",
        n_jobs=2,
        random_state=seed,
        eval_metric="logloss",
    )
    clf.fit(fit[PD_FEATURES].astype(float), y_fit)
    booster = clf.get_booster()
    booster.feature_names = list(PD_FEATURES)
    raw_cal = booster.predict(
        xgb.DMatrix(cal[PD_FEATURES].astype(float).to_numpy(), feature_names=PD_FEATURES)
    )
    iso = IsotonicRegression(y_min=0.0005, y_max=0.9995, out_of_bounds="clip", increasing=True)
    iso.fit(raw_cal, cal["default"].to_numpy())
    trained = {
        "date": dt.date.today().isoformat(),
        "n_loans": len(loans),
        "n_fit": len(fit),
        "n_calibration": len(cal),
        "default_rate": round(float(loans["default"].mean()), 4),
        "seed": seed,
        "params": params.__dict__,
        "xgboost": xgb.__version__,
    }
    return PDModel(
        booster=booster,
        calib_x=np.asarray(iso.X_thresholds_, dtype=float),
        calib_y=np.asarray(iso.y_thresholds_, dtype=float),
        trained=trained,
    )


def evaluate(model: PDModel, loans: pd.DataFrame, bins: int = 10) -> dict[str, Any]:
    """AUC, Brier score and a decile calibration table on ``loans`` (held out)."""
    pd_hat = model.predict(loans)
    y = loans["default"].to_numpy()
    auc = float(roc_auc_score(y, pd_hat)) if 0 < y.sum() < len(y) else float("nan")
    order = np.argsort(pd_hat, kind="stable")
    table = []
    for k, chunk in enumerate(np.array_split(order, bins)):
        if len(chunk) == 0:
            continue
        table.append(
            {
                "decile": k + 1,
                "n": int(len(chunk)),
                "predicted": float(pd_hat[chunk].mean()),
                "observed": float(y[chunk].mean()),
            }
        )
    return {
        "n": int(len(y)),
        "default_rate": float(y.mean()),
        "auc": auc,
        "brier": float(brier_score_loss(y, pd_hat)),
        "brier_base_rate": float(brier_score_loss(y, np.full(len(y), y.mean()))),
        "calibration": table,
    }


def read_loans(path: Path | str) -> pd.DataFrame:
    """Read a loan history from CSV or Parquet (unvalidated)."""
    p = Path(path)
    if not p.exists():
        raise TableError(f"{p}: loan history file not found; pass an existing CSV or Parquet")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(p)
        # blank lines kept then dropped: a row's index + 2 stays its line in the file
        return pd.read_csv(p, skip_blank_lines=False).dropna(how="all")
    except UnicodeDecodeError as exc:
        raise TableError(
            f"{p}: the loan history is not UTF-8 text ({exc}); save it as UTF-8 CSV "
            "(e.g. `iconv -f latin1 -t utf-8`, or Excel 'CSV UTF-8')"
        ) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise TableError(f"{p}: cannot read the loan history ({exc}); save as CSV") from exc


def train_pd_from_file(
    loans_path: Path | str,
    out_path: Path | str,
    *,
    seed: int = 0,
    params: PDParams | None = None,
) -> dict[str, Any]:
    """Validate a lender's loan history, train, save the model, return metrics.

    The metrics (AUC, Brier, calibration) are measured on a 20 % hold-out of the file that the
    model (booster and calibration) never saw; the saved model is then refit on all rows.

    Returns:
        dict with version, path, n_loans, default_rate, auc, brier, brier_base_rate,
        calibration (list of decile dicts).

    Raises:
        TableError: the file is missing, unreadable or breaks the schema (names the column).
    """
    loans = validate_loans(read_loans(loans_path), str(loans_path))
    rng = np.random.default_rng(seed + 1)
    idx = rng.permutation(len(loans))
    n_test = int(len(loans) * 0.2)
    metrics: dict[str, Any] = {}
    test, train = loans.iloc[idx[:n_test]], loans.iloc[idx[n_test:]]
    if n_test >= 20 and 0 < test["default"].sum() < n_test:
        metrics = evaluate(train_pd(train, seed=seed, params=params), test)
    else:
        log.warning("%s: too few loans for a hold-out; metrics not measured", loans_path)
    model = train_pd(loans, seed=seed, params=params)
    path = model.save(out_path)
    return {"version": model.version, "path": str(path), "n_loans": len(loans), **metrics}
