"""Decision ledger on a real SQLite file and a real PostgreSQL server: idempotency,
overrides, draws, runs."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from geo.errors import LedgerError
from geo.types import Season
from scoring.ledger import Ledger

S = Season(2026)


def decisions(stage: str = "pre_sowing", limits=(10_000.0, 20_000.0)) -> pd.DataFrame:
    n = len(limits)
    return pd.DataFrame(
        {
            "farmer_id": [f"F{i}" for i in range(n)],
            "stage": [stage] * n,
            "limit_eur": list(limits),
            "previous_limit_eur": [float("nan")] * n,
            "drawn_eur": [0.0] * n,
            "action": ["set"] * n,
            "pd": [0.02] * n,
            "pd_band": ["A"] * n,
            "reasons": [["limited by the cap", "new customer (raises risk)"]] * n,
            "flags": [["overlap"]] * n,
            "counterfactual": [""] * n,
            "needs_review": [False] * n,
            "evidence": [{"parcels": [{"parcel_id": "P1", "health_since": None}]}] * n,
        }
    )


@pytest.fixture()
def ledger(ledger_url: str) -> Ledger:
    led = Ledger(ledger_url)
    led.create()
    led.create()  # idempotent
    return led


def record(led: Ledger, run: str, df: pd.DataFrame) -> int:
    return led.record_decisions(
        run, S, df, model_version="pd-x", policy_version="policy-1", config={"cap_eur": 1.0}
    )


def test_record_is_idempotent_per_key(ledger: Ledger, caplog) -> None:
    assert record(ledger, "run-1", decisions()) == 2
    assert record(ledger, "run-1", decisions()) == 0
    with caplog.at_level(logging.WARNING, logger="scoring.ledger"):
        assert record(ledger, "run-2", decisions(limits=(1.0, 2.0, 3.0))) == 1
    assert "already recorded by run run-1" in caplog.text
    got = ledger.decisions(S)
    assert len(got) == 3
    assert got.loc[got.farmer_id == "F0", "limit_eur"].item() == 10_000  # first one kept
    assert got["reasons"].iloc[0] == ["limited by the cap", "new customer (raises risk)"]
    assert got["evidence"].iloc[0]["parcels"][0]["parcel_id"] == "P1"
    assert got["config"].iloc[0] == {"cap_eur": 1.0}
    # a new ledger object on the same file sees the same rows (a resumed process)
    again = Ledger(ledger.url.render_as_string(hide_password=False))
    assert record(again, "run-1", decisions()) == 0
    assert set(ledger.runs()["run_id"]) == {"run-1", "run-2"}


def test_current_limits_latest_stage_then_override(ledger: Ledger) -> None:
    record(ledger, "r1", decisions("pre_sowing", (10_000.0, 20_000.0)))
    record(ledger, "r2", decisions("vegetative", (8_000.0, 21_000.0)))
    record(ledger, "r3", decisions("sowing", (9_000.0, 20_500.0)))  # late, earlier stage
    cur = ledger.current_limits(S).set_index("farmer_id")
    assert cur.loc["F0", "limit_eur"] == 8_000 and cur.loc["F0", "stage"] == "vegetative"
    oid = ledger.record_override(S, "F0", 12_000, "field visit: maize fine", "officer.dupont")
    assert oid >= 1
    cur = ledger.current_limits(S).set_index("farmer_id")
    assert cur.loc["F0", "limit_eur"] == 12_000 and cur.loc["F0", "source"] == "override"
    assert cur.loc["F1", "source"] == "decision"
    assert list(ledger.decisions(S, "F0")["stage"]) == ["pre_sowing", "sowing", "vegetative"]


def test_override_needs_reason_and_respects_cap(ledger: Ledger) -> None:
    for reason in ("", "   "):
        with pytest.raises(ValueError, match="reason is mandatory"):
            ledger.record_override(S, "F0", 1000, reason, "officer")
    with pytest.raises(ValueError, match="cap"):
        ledger.record_override(S, "F0", 10_000_000, "big farm", "officer")
    ledger.record_override(S, "F0", 1000, "first", "a")
    ledger.record_override(S, "F0", 2000, "second", "b")
    ov = ledger.overrides(S, "F0")
    assert list(ov["limit_eur"]) == [1000, 2000] and list(ov["reason"]) == ["first", "second"]


def test_draws_idempotent_and_latest(ledger: Ledger) -> None:
    assert ledger.record_draw(S, "sowing", "F0", 500.0) == 1
    assert ledger.record_draw(S, "sowing", "F0", 900.0) == 0
    assert ledger.record_draws(S, "vegetative", pd.Series({"F0": 800.0, "F1": 50.0})) == 2
    assert ledger.drawn(S).to_dict() == {"F0": 800.0, "F1": 50.0}
    assert ledger.drawn(Season(2027)).empty


def test_password_is_never_shown() -> None:
    url = "postgresql+psycopg://user:s3cret@db.example/credit"
    try:
        led = Ledger(url)
    except LedgerError as exc:  # no driver installed: the error must hide the password too
        assert "s3cret" not in str(exc) and "user:***@db.example" in str(exc)
    else:
        assert "s3cret" not in led.safe_url and "s3cret" not in repr(led)
