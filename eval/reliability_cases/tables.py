"""Bad tables and config: crop economics (scoring.tables), loan histories (scoring.pd_model),
and unknown config keys (pydantic ``extra="forbid"``).

Each is refused whole, with a :class:`~geo.errors.TableError` (or pydantic's
``ValidationError``) naming the file, line or key and the fix: a table is never half-used.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from eval.reliability_cases.base import CaseFailed, Context, case, expect, expect_error
from geo.errors import TableError
from scoring.pd_model import read_loans, train_pd_from_file, validate_loans
from scoring.tables import load_economics


def _economics_error(ctx: Context, name: str, *needles: str) -> str:
    path = ctx.fixture("tables", name)
    return str(expect_error(TableError, lambda: load_economics(path), str(path), *needles))


@case("tables", "economics table missing a crop", "TableError naming the crop: add a '*,*' row")
def economics_missing_crop(ctx: Context) -> str:
    msg = _economics_error(ctx, "economics_missing_crop.csv", "potato", "add a row")
    default = load_economics()
    expect_error(
        TableError, lambda: default.lookup("wheat", "default", 2026), "'wheat'", "expected one of"
    )
    return msg


@case("tables", "negative price", "TableError naming file, line and column: use a value >= 0")
def negative_price(ctx: Context) -> str:
    return _economics_error(
        ctx, "economics_negative_price.csv", "line", "maize", "price_eur_t", "negative", ">= 0"
    )


@case(
    "tables",
    "stage shares not summing to 1",
    "TableError naming the line, the sum and the share columns to fix",
)
def bad_shares(ctx: Context) -> str:
    return _economics_error(ctx, "economics_bad_shares.csv", "sunflower", "sum to", "share_")


@case("tables", "economics table in latin-1", "TableError: save it as UTF-8 CSV")
def economics_latin1(ctx: Context) -> str:
    return _economics_error(ctx, "economics_latin1.csv", "UTF-8")


@case(
    "tables",
    "loan file missing a column",
    "TableError naming the column (validate_loans and train_pd_from_file); no model written",
)
def loans_missing_column(ctx: Context) -> str:
    path = ctx.fixture("tables", "loans_missing_column.csv")
    exc = expect_error(
        TableError,
        lambda: validate_loans(read_loans(path), str(path)),
        str(path),
        "missing column(s) health_z",
    )
    out = ctx.tmp / "pd.json"
    expect_error(TableError, lambda: train_pd_from_file(path, out), "health_z")
    expect(not out.exists(), "a model was written from a broken loan file")
    return str(exc)


@case(
    "tables",
    "loan file with mistyped values",
    "TableError naming column, row and value ('n/a', decimal comma)",
)
def loans_mistyped(ctx: Context) -> str:
    path = ctx.fixture("tables", "loans_mistyped.csv")
    loans = read_loans(path)
    exc = expect_error(
        TableError, lambda: validate_loans(loans, str(path)), str(path), "health_z", "row 8"
    )
    loans.loc[7, "health_z"] = 0.0
    comma = expect_error(
        TableError,
        lambda: validate_loans(loans, str(path)),
        "margin_ratio",
        "row 3",
        "'1,45'",
        "expected a number",
    )
    return f"{exc} / {comma}"


@case("tables", "loan file in latin-1", "TableError: save it as UTF-8 CSV")
def loans_latin1(ctx: Context) -> str:
    path = ctx.fixture("tables", "loans_latin1.csv")
    return str(expect_error(TableError, lambda: read_loans(path), str(path), "UTF-8"))


def _rejected(build: Any, key: str) -> str:
    exc = expect_error(ValidationError, build, key, "extra inputs are not permitted")
    return " ".join(str(exc).split())


@case(
    "tables",
    "unknown key in SeasonParams",
    "rejected, not ignored (also nested and from JSON): pydantic names the key",
)
def season_params_unknown_key(ctx: Context) -> str:
    from flows.settings import SeasonParams, StageParams

    msg = _rejected(lambda: SeasonParams(**{"bogus": 1}), "bogus")
    _rejected(lambda: SeasonParams(**{"imagery": {"sourse": "local"}}), "imagery.sourse")
    _rejected(
        lambda: SeasonParams.model_validate_json('{"season": 2026, "ledgr_url": "x"}'), "ledgr_url"
    )
    _rejected(
        lambda: StageParams(**{"season": {}, "stage": "sowing", "as_off": "2026-05-01"}), "as_off"
    )
    expect(SeasonParams(season=2026).season == 2026, "a valid SeasonParams is refused")
    return msg


@case(
    "tables",
    "unknown key in PolicyConfig",
    "rejected, not ignored (also in the nested feature config and pd_bands); wrong types refused",
)
def policy_unknown_key(ctx: Context) -> str:
    from scoring.policy import PolicyConfig

    msg = _rejected(lambda: PolicyConfig(**{"bogus": 1}), "bogus")
    _rejected(lambda: PolicyConfig(**{"features": {"min_confidense": 0.5}}), "min_confidense")
    bands = [{"name": "A", "max_pd": 0.2, "scale": 1.0, "colour": "green"}]
    _rejected(lambda: PolicyConfig(**{"pd_bands": bands}), "colour")
    expect_error(ValidationError, lambda: PolicyConfig(**{"cap_eur": "lots"}), "cap_eur")
    expect(PolicyConfig(cap_eur=90_000).cap_eur == 90_000, "a valid PolicyConfig is refused")
    return msg


# --------------------------------------------------------------------------------------
# Random tables (hypothesis): accepted whole, or one TableError naming the file and column
# --------------------------------------------------------------------------------------
#: What a lender's spreadsheet puts in a cell instead of a good number.
BAD_CELLS = ("", "n/a", "-1", "-0.5", "1,5", "inf", "-inf", "nan", "NaN", "1e400", " 7 ", "abc")


def _mutations(columns: list[str], n_rows: int, cells: tuple[str, ...] = BAD_CELLS) -> Any:
    """Lists of edits to a table: drop a column, set a cell, drop or repeat a row, empty it."""
    from hypothesis import strategies as st

    column = st.sampled_from(columns)
    row = st.integers(0, max(0, n_rows - 1))
    edit = st.one_of(
        st.tuples(st.just("drop_column"), column, st.none()),
        st.tuples(st.just("cell"), st.tuples(row, column), st.sampled_from(cells)),
        st.tuples(st.just("drop_row"), row, st.none()),
        st.tuples(st.just("repeat_row"), row, st.none()),
        st.tuples(st.just("header_only"), st.none(), st.none()),
        st.tuples(st.just("empty_file"), st.none(), st.none()),
    )
    return st.lists(edit, min_size=1, max_size=3)


def _apply(table: pd.DataFrame, edits: list[tuple[str, Any, Any]], path: Path) -> set[str]:
    """Write ``table`` (all str) with ``edits`` to ``path``; the columns dropped."""
    dropped: set[str] = set()
    for kind, target, value in edits:
        if kind == "drop_column" and target in table.columns:
            table = table.drop(columns=[target])
            dropped.add(target)
        elif kind == "cell" and target[1] in table.columns and target[0] < len(table):
            table.loc[table.index[target[0]], target[1]] = value
        elif kind == "drop_row" and target < len(table):
            table = table.drop(index=table.index[target])
        elif kind == "repeat_row" and target < len(table):
            table = pd.concat([table, table.iloc[[target]]])
        elif kind == "header_only":
            table = table.iloc[:0]
    table.to_csv(path, index=False)
    if any(kind == "empty_file" for kind, _, _ in edits):
        path.write_bytes(b"")
    return dropped


def _refused_clearly(exc: TableError, path: Path, dropped: set[str]) -> None:
    text = str(exc)
    expect(str(path) in text, f"the error does not name the file: {text}")
    if dropped and "missing column" in text:
        expect(all(c in text for c in dropped), f"the error does not name {dropped}: {text}")


def _fuzz_settings(max_examples: int) -> Any:
    """Hypothesis settings of the table fuzz cases: deterministic, no example database."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def check_random_economics(tmp: Path, max_examples: int = 80) -> Counter[str]:
    """``load_economics`` on the shipped table with random edits: accepted with every number
    finite and >= 0, or a ``TableError`` naming the file (and a dropped column)."""
    import math

    from hypothesis import example, given

    from scoring.tables import DEFAULT_PATH, NUMERIC_COLUMNS, REQUIRED_COLUMNS, load_economics

    base = pd.read_csv(DEFAULT_PATH, dtype=str, keep_default_na=False)
    seen: Counter[str] = Counter()

    @_fuzz_settings(max_examples)
    @given(_mutations(list(REQUIRED_COLUMNS), len(base)))
    @example([("cell", (0, "yield_t_ha"), "inf")])  # once accepted as an infinite yield
    @example([("empty_file", None, None)])  # once a pandas EmptyDataError
    def prop(edits: list[tuple[str, Any, Any]]) -> None:
        path = tmp / "economics.csv"
        dropped = _apply(base.copy(), edits, path)
        try:
            economics = load_economics(path)
        except TableError as exc:
            _refused_clearly(exc, path, dropped)
            seen["refused"] += 1
            return
        except Exception as exc:
            raise CaseFailed(f"{edits}: {type(exc).__name__}: {exc}") from exc
        for r in economics.rows():
            values = [r.yield_t_ha, r.yield_cv, r.price_eur_t, *r.costs_eur_ha.values()]
            values += list(r.stage_shares.values())
            bad = [v for v in values if not (math.isfinite(v) and v >= 0)]
            expect(not bad, f"{edits}: accepted {r.crop} with {bad} in {NUMERIC_COLUMNS}")
        seen["accepted"] += 1

    prop()
    return seen


def check_random_loans(
    tmp: Path, max_examples: int = 80, cells: tuple[str, ...] = BAD_CELLS
) -> Counter[str]:
    """``validate_loans(read_loans(...))`` on a good loan file with random edits: accepted
    (every feature a finite float, ``default`` 0/1) or a ``TableError`` naming the file."""
    from hypothesis import example, given

    from scoring.pd_model import PD_FEATURES

    rng = np.random.default_rng(0)
    n = 30
    base = pd.DataFrame(
        {
            "loan_id": [f"L-{i:04d}" for i in range(n)],
            "farmer_id": [f"F-{i:04d}" for i in range(n)],
            "verified_share": rng.uniform(0, 1, n).round(3),
            "area_gap_share": rng.uniform(0, 0.5, n).round(3),
            "health_z": rng.normal(0, 1, n).round(3),
            "margin_ratio": rng.uniform(0.5, 3, n).round(3),
            "debt_service_ratio": rng.uniform(0, 0.6, n).round(3),
            "years_with_lender": rng.integers(0, 12, n).astype(float),
            "crop_diversity": rng.integers(1, 4, n).astype(float),
            "default": [i % 2 for i in range(n)],
        }
    ).astype(str)
    seen: Counter[str] = Counter()

    @_fuzz_settings(max_examples)
    @given(_mutations([*PD_FEATURES, "default"], n, cells))
    @example([("cell", (0, "health_z"), "inf")])
    def prop(edits: list[tuple[str, Any, Any]]) -> None:
        path = tmp / "loans.csv"
        dropped = _apply(base.copy(), edits, path)
        try:
            loans = validate_loans(read_loans(path), str(path))
        except TableError as exc:
            _refused_clearly(exc, path, dropped)
            seen["refused"] += 1
            return
        except Exception as exc:
            raise CaseFailed(f"{edits}: {type(exc).__name__}: {exc}") from exc
        values = loans[[*PD_FEATURES, "default"]].to_numpy(dtype=float)
        expect(bool(np.isfinite(values).all()), f"{edits}: accepted a non-finite value")
        expect(set(loans["default"]) <= {0, 1}, f"{edits}: default {set(loans['default'])}")
        seen["accepted"] += 1

    prop()
    return seen


@case(
    "tables",
    "random economics tables (hypothesis)",
    "dropped columns, bad cells (NaN, inf, negative, text, decimal comma), dropped or repeated "
    "rows, empty file: accepted with finite numbers >= 0, or TableError naming the file",
)
def random_economics(ctx: Context) -> str:
    seen = check_random_economics(ctx.tmp)
    return f"80 edited tables: {seen['accepted']} accepted, {seen['refused']} refused clearly"


@case(
    "tables",
    "random loan files (hypothesis)",
    "dropped columns, bad cells (NaN, inf, negative, text, decimal comma), dropped or repeated "
    "rows, empty file: accepted with finite numbers, or TableError naming the file",
)
def random_loans(ctx: Context) -> str:
    seen = check_random_loans(ctx.tmp)
    return f"80 edited loan files: {seen['accepted']} accepted, {seen['refused']} refused clearly"
