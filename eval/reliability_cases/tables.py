"""Bad tables and config: crop economics (scoring.tables), loan histories (scoring.pd_model),
and unknown config keys (pydantic ``extra="forbid"``).

Each is refused whole, with a :class:`~geo.errors.TableError` (or pydantic's
``ValidationError``) naming the file, line or key and the fix: a table is never half-used.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from eval.reliability_cases.base import Context, case, expect, expect_error
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
