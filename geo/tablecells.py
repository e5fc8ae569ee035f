"""Cells of a lender's tables: CSV rows with the line they came from, and checked numbers.

A lender's CSV (farmers, labels...) is read as text: every cell a ``str``, nothing guessed
(pandas would read ``1,980`` quoted as text, a blank as NaN, ``inf`` as infinity), and each
row keeps the line of the file it came from (the header is line 1; blank lines are counted
and skipped), so that a message can point where a user looks: ``farmers.csv line 4, column
annual_debt_service_eur: '1,980' is not a number``.

:func:`parse_numbers` checks one numeric column cell by cell. A number is written plainly:
digits with an optional sign, a decimal point and an exponent (``1980``, ``0.25``,
``1.5e3``); surrounding spaces are ignored. Refused, each as one :class:`CellProblem`:

* text that is not such a number (``1,980``: a thousands separator or a decimal comma,
  which cannot be told apart; ``n/a``; ``1_000``);
* ``inf``, ``nan`` or a number too large to be finite (``1e400``);
* a blank cell where the column is required;
* a negative number where the column cannot be negative.

The checks are pure (text in, floats and problems out); only :func:`read_csv_lines` touches
a file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from geo.errors import CropCreditError, TableError

__all__ = ["LINE", "CellProblem", "parse_numbers", "read_csv_lines"]

#: Column added by :func:`read_csv_lines`: the line of the file each row came from (1-based).
LINE: Final[str] = "__line__"
_NUMBER: Final[re.Pattern[str]] = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class CellProblem:
    """One refused cell.

    Attributes:
        line: line of the file (1-based, header = 1).
        column: the column's name.
        value: the cell as written (``""`` when blank).
        problem: what is wrong, in words ("is not a number").
        fix: how to fix it.
    """

    line: int
    column: str
    value: str
    problem: str
    fix: str

    def message(self, source: str) -> str:
        """``<source> line N, column C: 'value' <problem>; <fix>`` (``column C is blank``)."""
        where = f"{source} line {self.line}, column {self.column}"
        if not self.value.strip():
            return f"{where} is blank; {self.fix}"
        return f"{where}: {self.value!r} {self.problem}; {self.fix}"


def read_csv_lines(
    path: Path, *, what: str, required: Sequence[str], error: type[CropCreditError] = TableError
) -> pd.DataFrame:
    """Read a CSV as text, one row per non-blank line, with the line in column :data:`LINE`.

    Args:
        path: the CSV file (UTF-8, a header line).
        what: what the file is, for messages ("farmers table").
        required: columns the header must hold.
        error: the error type raised (a :class:`~geo.errors.CropCreditError`).

    Raises:
        error: the file is missing, empty, not UTF-8, not parseable as CSV, or its header lacks
            a column of ``required`` (all named, with the columns found).
    """
    if not path.is_file():
        raise error(f"{path}: {what} file not found; pass an existing CSV file")
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8"
        )
    except pd.errors.EmptyDataError as exc:
        raise error(
            f"{path}: the {what} is empty; expected a CSV whose header holds {', '.join(required)}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: the {what} is not UTF-8 text ({exc}); save it as UTF-8 CSV "
            "(e.g. `iconv -f latin1 -t utf-8`, or Excel 'CSV UTF-8')"
        ) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise error(
            f"{path}: cannot read the {what} as CSV ({' '.join(str(exc).split())}); check "
            "that every line has as many fields as the header (quote a cell holding a comma)"
        ) from exc
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        semicolons = any(";" in str(c) for c in frame.columns)
        raise error(
            f"{path}: the {what} lacks column(s) {', '.join(missing)}; its header must hold "
            f"{', '.join(required)} (found: {', '.join(map(str, frame.columns))}): "
            + (
                "the file looks semicolon-separated: save it as comma-separated CSV"
                if semicolons
                else "add or rename the column(s)"
            )
        )
    frame[LINE] = np.arange(2, len(frame) + 2)
    cells = frame.drop(columns=[LINE])
    blank = (cells.apply(lambda col: col.str.strip()) == "").all(axis=1) if len(cells) else []
    return frame[~np.asarray(blank, dtype=bool)].reset_index(drop=True)


def parse_numbers(
    cells: Sequence[str] | pd.Series | np.ndarray,
    lines: Sequence[int] | pd.Series | np.ndarray,
    column: str,
    *,
    required: bool = True,
    minimum: float | None = 0.0,
    unit: str = "",
    blank_fix: str | None = None,
) -> tuple[np.ndarray, list[CellProblem]]:
    """Parse a column of text cells as numbers (see the module docstring for what is refused).

    Args:
        cells: the column's cells as written.
        lines: the line of the file of each cell.
        column: the column's name (for messages).
        required: a blank cell is a problem (else it becomes NaN).
        minimum: smallest allowed value (``0.0``: no negative), or None for no bound.
        unit: the column's unit, for the fix ("EUR/year").
        blank_fix: the fix for a blank cell (default: fill it in).

    Returns:
        (values, problems): float64 values (NaN where blank or refused) and one
        :class:`CellProblem` per refused cell, in row order.
    """
    texts = [str(c) if c is not None else "" for c in cells]
    values = np.full(len(texts), np.nan, dtype=np.float64)
    problems: list[CellProblem] = []
    units = f" in {unit}" if unit else ""
    for i, (text, line) in enumerate(zip(texts, lines, strict=True)):
        cell = text.strip()
        if not cell:
            if required:
                fix = blank_fix or f"fill in a number{units}"
                problems.append(CellProblem(int(line), column, text, "is blank", fix))
            continue
        if not _NUMBER.fullmatch(cell):
            problems.append(
                CellProblem(int(line), column, text, "is not a number", _plain(cell, units))
            )
            continue
        value = float(cell)
        if not math.isfinite(value):
            problems.append(
                CellProblem(int(line), column, text, "is not a finite number", _plain("", units))
            )
            continue
        if minimum is not None and value < minimum:
            what = "is negative" if minimum == 0 else f"is below {minimum:g}"
            problems.append(
                CellProblem(int(line), column, text, what, f"use a value >= {minimum:g}{units}")
            )
            continue
        values[i] = value
    return values, problems


def _plain(cell: str, units: str) -> str:
    """How to write ``cell`` as a plain number (a comma: the reading it most likely meant)."""
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", cell):
        return (
            f"write a plain number{units}: {cell.replace(',', '')} if the comma separates "
            "thousands (no thousands separator; decimals with a point)"
        )
    if re.fullmatch(r"[+-]?\d+,\d+", cell):
        return (
            f"write a plain number{units} with a decimal point: {cell.replace(',', '.')} "
            "(a decimal comma is not read)"
        )
    return (
        f"write a plain number{units} (digits, an optional decimal point and exponent, "
        "e.g. 1980 or 0.25; no thousands separator, no text)"
    )
