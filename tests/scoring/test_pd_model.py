"""PD model: training, calibration, monotonicity, persistence, loan-file validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo.errors import ModelError, TableError
from scoring.loanbook import simulate_loan_book
from scoring.pd_model import (
    MONOTONE,
    PD_FEATURES,
    PDModel,
    PDParams,
    evaluate,
    load_shipped_pd,
    train_pd_from_file,
    validate_loans,
)


def test_loan_book_rules() -> None:
    a, b = simulate_loan_book(6000, seed=3), simulate_loan_book(6000, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert 0.03 < a["default"].mean() < 0.10
    assert set(PD_FEATURES) <= set(a.columns)
    low = a["verified_share"] < 0.6
    assert a.loc[low, "default"].mean() > a.loc[~low, "default"].mean()
    heavy = a["debt_service_ratio"] > 0.3
    assert a.loc[heavy, "default"].mean() > a.loc[~heavy, "default"].mean()


def test_predict_is_a_probability_and_discriminates(small_model: PDModel) -> None:
    test = simulate_loan_book(3000, seed=12)
    p = small_model.predict(test)
    assert p.shape == (3000,) and (p >= 0).all() and (p <= 1).all()
    m = evaluate(small_model, test)
    assert m["auc"] > 0.65
    assert m["brier"] < m["brier_base_rate"]
    assert abs(np.mean(p) - test["default"].mean()) < 0.03


@pytest.mark.parametrize("feature", [f for f, s in MONOTONE.items() if s != 0])
def test_monotone_constraints_hold(small_model: PDModel, feature: str) -> None:
    rows = simulate_loan_book(40, seed=5)
    grid = np.linspace(rows[feature].min(), rows[feature].max(), 15)
    df = rows.loc[rows.index.repeat(len(grid))].reset_index(drop=True)
    df[feature] = np.tile(grid, len(rows))
    p = small_model.predict(df).reshape(len(rows), len(grid))
    step = np.diff(p, axis=1) * MONOTONE[feature]
    assert (step >= -1e-12).all(), feature


def test_save_load_round_trip(small_model: PDModel, tmp_path: Path) -> None:
    path = small_model.save(tmp_path / "pd.json")
    loaded = PDModel.load(path)
    df = simulate_loan_book(50, seed=9)
    np.testing.assert_allclose(loaded.predict(df), small_model.predict(df))
    assert loaded.version == small_model.version and len(loaded.version.split("-")[-1]) == 10
    assert loaded.features == PD_FEATURES
    d = json.loads(path.read_text())
    d["calibration"]["y"][0] = 0.5
    path.write_text(json.dumps(d))
    with pytest.raises(ModelError, match="does not match the recorded version"):
        PDModel.load(path)
    with pytest.raises(ModelError, match="not found"):
        PDModel.load(tmp_path / "missing.json")


def test_contributions_add_up_to_the_raw_score(small_model: PDModel) -> None:
    df = simulate_loan_book(20, seed=4)
    c = small_model.contributions(df)
    assert list(c.columns) == [*PD_FEATURES, "bias"]
    logit = np.log(small_model.raw(df) / (1 - small_model.raw(df)))
    np.testing.assert_allclose(c.sum(axis=1), logit, atol=1e-4)
    approx = small_model.contributions(df, approx=True)
    np.testing.assert_allclose(approx.sum(axis=1), logit, atol=1e-4)


def test_shipped_model_loads() -> None:
    m = load_shipped_pd()
    assert m.version.startswith("pd-") and m.features == PD_FEATURES
    p = m.predict(simulate_loan_book(200, seed=99))
    assert 0.02 < p.mean() < 0.12


def test_validate_loans_names_the_problem() -> None:
    good = simulate_loan_book(300, seed=1)
    assert len(validate_loans(good, "book.csv")) == 300
    with pytest.raises(TableError, match="book.csv: missing column.*health_z"):
        validate_loans(good.drop(columns="health_z"), "book.csv")
    bad = good.astype({"margin_ratio": object})
    bad.loc[7, "margin_ratio"] = "high"
    with pytest.raises(
        TableError, match=r"line 9 \(row 8\), column margin_ratio is 'high'; expected a number"
    ):
        validate_loans(bad, "book.csv")
    bad = good.copy()
    bad.loc[2, "default"] = 2
    with pytest.raises(TableError, match=r"line 4 \(row 3\), column default is 2"):
        validate_loans(bad, "book.csv")
    bad = good.copy()
    bad.loc[0, "verified_share"] = 1.5
    with pytest.raises(
        TableError, match=r"line 2 \(row 1\), column verified_share is 1.5; expected a value in"
    ):
        validate_loans(bad, "book.csv")


def test_loan_errors_name_the_line_of_the_file_across_blank_lines(tmp_path: Path) -> None:
    from scoring.pd_model import read_loans

    book = simulate_loan_book(30, seed=2).astype({"health_z": object})
    book.loc[5, "health_z"] = "n.a."
    path = tmp_path / "loans.csv"
    text = book.to_csv(index=False).splitlines()
    path.write_text("\n".join([*text[:3], "", *text[3:]]) + "\n", encoding="utf-8")
    with pytest.raises(TableError, match=r"line 8 \(row 6\), column health_z is 'n.a.'"):
        validate_loans(read_loans(path), str(path))


def test_train_pd_from_file(tmp_path: Path) -> None:
    loans = tmp_path / "loans.csv"
    simulate_loan_book(1500, seed=2).to_csv(loans, index=False)
    out = tmp_path / "model" / "pd.json"
    metrics = train_pd_from_file(loans, out, params=PDParams(n_estimators=40))
    assert out.exists() and metrics["version"] == PDModel.load(out).version
    assert 0.5 < metrics["auc"] <= 1 and len(metrics["calibration"]) == 10

    bad = tmp_path / "bad.csv"
    simulate_loan_book(100, seed=2).drop(columns="debt_service_ratio").to_csv(bad, index=False)
    with pytest.raises(TableError, match="bad.csv: missing column.*debt_service_ratio"):
        train_pd_from_file(bad, tmp_path / "x.json")
    with pytest.raises(TableError, match="not found"):
        train_pd_from_file(tmp_path / "nope.csv", tmp_path / "x.json")
