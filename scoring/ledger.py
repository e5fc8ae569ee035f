"""The decision ledger: every limit, override, draw and run, appended to SQL (SQLAlchemy Core).

SQLite by default (``sqlite:///out/ledger.db``); any SQLAlchemy URL with a synchronous driver
works (PostgreSQL: ``postgresql+psycopg://user:pw@host/db``). Passwords are never logged: URLs
are rendered with ``hide_password=True``, and passwords in URLs (``scheme://user:pw@host``, this
ledger's own above all) are masked in every config or params value the ledger stores. SQLite
waits up to 30 s for another writer's lock (``?timeout=<seconds>`` in the URL sets another
wait), then the write fails with a :class:`LedgerError`; a SQLite file that disappeared is never
silently recreated by a write.

Tables:

* ``runs``: run_id (key), flow, started, finished, params (JSON), code/model/policy versions.
* ``decisions``: one row per (season, stage, farmer_id) - UNIQUE, so re-running a run, or
  resuming a crashed one, writes nothing twice. reasons / flags / evidence / config are JSON.
  Rows are inserted with insert-or-ignore on that key (SQLite and PostgreSQL ``ON CONFLICT DO
  NOTHING``), so two processes recording the same stage at once both finish and each farmer is
  decided once: the first commit wins.
* ``overrides``: officers' limits with a mandatory reason; appended, never updated.
* ``draws``: cumulative EUR drawn per (season, stage, farmer_id), unique.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from geo.errors import LedgerError
from geo.types import GrowthStage, Season
from scoring.features import records

log = logging.getLogger(__name__)

#: The unique key of a decision: one per farmer, stage and season.
DECISION_KEY: Final[list[str]] = ["season", "stage", "farmer_id"]
STAGE_ORDER: Final[dict[str, int]] = {s.value: s.order for s in GrowthStage}
#: The password of a ``scheme://user:password@host`` URL inside a string.
_URL_PASSWORD = re.compile(r"(?<=://)([^/\s:@]*):[^@\s/]+@")
metadata = sa.MetaData()

runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("flow", sa.String(64), nullable=False),
    sa.Column("started", sa.DateTime, nullable=False),
    sa.Column("finished", sa.DateTime, nullable=True),
    sa.Column("params", sa.Text, nullable=False, default="{}"),
    sa.Column("code_version", sa.String(64), nullable=True),
    sa.Column("model_version", sa.String(64), nullable=True),
    sa.Column("policy_version", sa.String(64), nullable=True),
)

decisions_table = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("season", sa.Integer, nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("farmer_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("limit_eur", sa.Float, nullable=False),
    sa.Column("previous_limit_eur", sa.Float, nullable=True),
    sa.Column("drawn_eur", sa.Float, nullable=False),
    sa.Column("action", sa.String(8), nullable=False),
    sa.Column("pd", sa.Float, nullable=False),
    sa.Column("pd_band", sa.String(16), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("flags", sa.Text, nullable=False),
    sa.Column("counterfactual", sa.Text, nullable=False),
    sa.Column("needs_review", sa.Boolean, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("season", "stage", "farmer_id", name="uq_decision_key"),
)

overrides_table = sa.Table(
    "overrides",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("season", sa.Integer, nullable=False),
    sa.Column("farmer_id", sa.String(64), nullable=False),
    sa.Column("limit_eur", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("officer", sa.String(128), nullable=False),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
)

draws_table = sa.Table(
    "draws",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("season", sa.Integer, nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("farmer_id", sa.String(64), nullable=False),
    sa.Column("drawn_eur", sa.Float, nullable=False),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("season", "stage", "farmer_id", name="uq_draw_key"),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _json_default(o: Any) -> Any:
    if isinstance(o, dt.date | dt.datetime | pd.Timestamp):
        return o.isoformat()
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if math.isnan(float(o)) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)


def to_json(value: Any) -> str:
    """JSON text for the ledger (dates ISO, numpy scalars as numbers, NaN as null)."""
    return json.dumps(value, default=_json_default, sort_keys=True, allow_nan=False)


def _clean_float(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def _season_year(season: Season | int) -> int:
    return season.year if isinstance(season, Season) else int(season)


class Ledger:
    """Append-only store of limit decisions, overrides, draws and runs.

    Args:
        url: any SQLAlchemy URL; ``sqlite:///path.db`` by default in the flows.
        cap_eur: the largest limit an override may set (the policy cap), EUR.
    """

    def __init__(self, url: str, *, cap_eur: float = 150_000.0) -> None:
        self.url = sa.make_url(url)
        self.cap_eur = cap_eur
        try:
            self.engine = sa.create_engine(self.url, future=True)
        except (ImportError, SQLAlchemyError, ValueError) as exc:
            detail = str(exc)
            if self.url.password:
                detail = detail.replace(str(self.url.password), "***")
            raise LedgerError(
                f"ledger {self.safe_url}: cannot open the database "
                f"({type(exc).__name__}: {detail}); check the URL and install its driver "
                "(e.g. pip install psycopg for postgresql+psycopg)"
            ) from exc
        if self.engine.dialect.is_async:
            raise LedgerError(
                f"ledger {self.safe_url}: driver {self.url.get_driver_name()!r} is asynchronous; "
                "the ledger needs a synchronous driver, e.g. postgresql+psycopg://..."
            )
        if self.url.get_backend_name() == "sqlite" and "timeout" not in self.url.query:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    def __repr__(self) -> str:
        return f"Ledger({self.safe_url!r})"

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for logs and reports."""
        return self.url.render_as_string(hide_password=True)

    @property
    def sqlite_file(self) -> Path | None:
        """The database file of a file-based SQLite ledger, else None."""
        database = self.url.database or ""
        if self.url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
            return None
        if database.startswith("file:"):  # sqlite URI filename (?uri=true)
            database = database[len("file:") :].split("?", 1)[0]
        return Path(database)

    def _mask(self, value: Any) -> Any:
        """``value`` (JSON-like) with URL passwords, this ledger's above all, masked."""
        if isinstance(value, str):
            password = self.url.password
            if password:
                value = value.replace(str(password), "***")
            return _URL_PASSWORD.sub(r"\1:***@", value)
        if isinstance(value, dict):
            return {k: self._mask(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._mask(v) for v in value]
        return value

    def create(self) -> None:
        """Create the tables if missing (idempotent)."""
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"ledger {self.safe_url}: cannot create tables ({type(exc).__name__}); check "
                "the URL, the database permissions and that the directory exists"
            ) from exc
        log.info("ledger ready at %s", self.safe_url)

    # -- runs -----------------------------------------------------------------------------
    def start_run(
        self,
        run_id: str,
        flow: str,
        params: dict[str, Any] | None = None,
        *,
        code_version: str | None = None,
        model_version: str | None = None,
        policy_version: str | None = None,
    ) -> bool:
        """Record a run's start; returns False (and changes nothing) if it exists."""
        with self._begin() as conn:
            if conn.execute(
                sa.select(runs_table.c.run_id).where(runs_table.c.run_id == run_id)
            ).first():
                return False
            row = {
                "run_id": run_id,
                "flow": flow,
                "started": _now(),
                "params": to_json(self._mask(params or {})),
                "code_version": code_version,
                "model_version": model_version,
                "policy_version": policy_version,
            }
            return _insert_ignore(conn, runs_table, [row], ["run_id"]) == 1

    def finish_run(self, run_id: str) -> None:
        """Stamp a run's finish time."""
        with self._begin() as conn:
            conn.execute(
                runs_table.update().where(runs_table.c.run_id == run_id).values(finished=_now())
            )

    def runs(self) -> pd.DataFrame:
        """All runs, oldest first; params parsed from JSON."""
        with self.engine.connect() as conn:
            df = pd.read_sql(sa.select(runs_table).order_by(runs_table.c.started), conn)
        df["params"] = [json.loads(p) for p in df["params"]]
        return df

    # -- decisions ------------------------------------------------------------------------
    def record_decisions(
        self,
        run_id: str,
        season: Season | int,
        decisions: pd.DataFrame,
        *,
        model_version: str,
        policy_version: str,
        config: dict[str, Any],
    ) -> int:
        """Append decisions in ONE transaction; keys already recorded are skipped.

        A (season, stage, farmer_id) already present - from this run (a re-run or a resumed
        crash) or from another run (logged as a warning) - is not written again.

        Returns:
            The number of rows actually written.

        Raises:
            LedgerError: the database refused the write (nothing of the batch is kept).
        """
        year = _season_year(season)
        if decisions.empty:
            return 0
        dup = decisions.duplicated(["stage", "farmer_id"])
        if dup.any():
            first = decisions.loc[dup].iloc[0]
            raise LedgerError(
                f"record_decisions run {run_id}: farmer {first['farmer_id']} appears twice at "
                f"stage {first['stage']}; decide each farmer once per stage"
            )
        now = _now()
        cfg_json = to_json(self._mask(config))
        try:
            with self._begin() as conn:
                if not conn.execute(
                    sa.select(runs_table.c.run_id).where(runs_table.c.run_id == run_id)
                ).first():
                    run_row = {
                        "run_id": run_id,
                        "flow": "record_decisions",
                        "started": now,
                        "params": cfg_json,
                        "model_version": model_version,
                        "policy_version": policy_version,
                    }
                    _insert_ignore(conn, runs_table, [run_row], ["run_id"])
                stages = sorted({str(s) for s in decisions["stage"]})
                existing = {
                    (r.stage, r.farmer_id): r.run_id
                    for r in conn.execute(
                        sa.select(
                            decisions_table.c.stage,
                            decisions_table.c.farmer_id,
                            decisions_table.c.run_id,
                        ).where(
                            decisions_table.c.season == year,
                            decisions_table.c.stage.in_(stages),
                        )
                    )
                }
                rows: list[dict[str, Any]] = []
                other_runs: dict[str, int] = {}
                for d in records(decisions):
                    key = (str(d["stage"]), str(d["farmer_id"]))
                    if key in existing:
                        if existing[key] != run_id:
                            other_runs[existing[key]] = other_runs.get(existing[key], 0) + 1
                        continue
                    rows.append(
                        self._decision_row(
                            run_id, year, d, now, cfg_json, model_version, policy_version
                        )
                    )
                for other, n in other_runs.items():
                    log.warning(
                        "record_decisions run %s: %d decision(s) already recorded by run %s "
                        "for season %d; kept the earlier ones",
                        run_id,
                        n,
                        other,
                        year,
                    )
                # Key order: two writers sharing keys wait on each other, never deadlock.
                rows.sort(key=lambda r: (r["stage"], r["farmer_id"]))
                written = _insert_ignore(conn, decisions_table, rows, DECISION_KEY)
        except SQLAlchemyError as exc:
            gone = self.sqlite_file is not None and not self.sqlite_file.exists()
            raise LedgerError(
                f"ledger {self.safe_url}: writing {len(decisions)} decision(s) of run {run_id} "
                f"failed ({type(exc).__name__}: {exc.orig if hasattr(exc, 'orig') else exc}); "
                + (
                    f"the database file {self.sqlite_file} was deleted or moved: restore it "
                    "from a backup, then re-run the same run id"
                    if gone
                    else "nothing was written, re-run the same run id to retry"
                )
            ) from exc
        if written < len(rows):
            log.warning(
                "record_decisions run %s: %d decision(s) were recorded meanwhile by another "
                "process for season %d; kept those",
                run_id,
                len(rows) - written,
                year,
            )
        log.info("run %s: %d of %d decision(s) written", run_id, written, len(decisions))
        return written

    @staticmethod
    def _decision_row(
        run_id: str,
        year: int,
        d: dict[str, Any],
        now: dt.datetime,
        cfg_json: str,
        model_version: str,
        policy_version: str,
    ) -> dict[str, Any]:
        return {
            "season": year,
            "stage": str(d["stage"]),
            "farmer_id": str(d["farmer_id"]),
            "run_id": run_id,
            "limit_eur": float(d["limit_eur"]),
            "previous_limit_eur": _clean_float(d.get("previous_limit_eur")),
            "drawn_eur": float(d.get("drawn_eur") or 0.0),
            "action": str(d["action"]),
            "pd": float(d["pd"]),
            "pd_band": str(d["pd_band"]),
            "reasons": to_json(list(d.get("reasons") or [])),
            "flags": to_json(list(d.get("flags") or [])),
            "counterfactual": str(d.get("counterfactual") or ""),
            "needs_review": bool(d.get("needs_review", False)),
            "evidence": to_json(d.get("evidence") or {}),
            "model_version": model_version,
            "policy_version": policy_version,
            "config": cfg_json,
            "recorded_at": now,
        }

    def decisions(self, season: Season | int, farmer_id: str | None = None) -> pd.DataFrame:
        """Recorded decisions of a season (optionally one farmer), in stage order.

        JSON columns (reasons, flags, evidence, config) come back parsed.
        """
        q = sa.select(decisions_table).where(decisions_table.c.season == _season_year(season))
        if farmer_id is not None:
            q = q.where(decisions_table.c.farmer_id == farmer_id)
        with self.engine.connect() as conn:
            df = pd.read_sql(q, conn)
        for col in ("reasons", "flags", "evidence", "config"):
            df[col] = [json.loads(v) for v in df[col]]
        df["needs_review"] = df["needs_review"].astype(bool)
        df["_order"] = df["stage"].map(STAGE_ORDER)
        return df.sort_values(["farmer_id", "_order"]).drop(columns="_order").reset_index(drop=True)

    def current_limits(self, season: Season | int) -> pd.DataFrame:
        """The limit in force per farmer: the latest stage's decision, unless an officer
        override was recorded after it.

        Returns:
            farmer_id, stage, limit_eur, source ("decision" or "override"), decided_at,
            officer, override_reason.
        """
        cols = [
            "farmer_id",
            "stage",
            "limit_eur",
            "source",
            "decided_at",
            "officer",
            "override_reason",
        ]
        dec = self.decisions(season)
        if dec.empty:
            return pd.DataFrame(columns=cols)
        dec["_order"] = dec["stage"].map(STAGE_ORDER)
        latest = dec.sort_values(["farmer_id", "_order"]).groupby("farmer_id").tail(1)
        ovr = self.overrides(season)
        last_ovr = ovr.sort_values("id").groupby("farmer_id").tail(1) if len(ovr) else ovr
        ovr_map = {r["farmer_id"]: r for r in last_ovr.to_dict("records")}
        out = []
        for r in latest.to_dict("records"):
            o = ovr_map.get(r["farmer_id"])
            if o is not None and pd.Timestamp(o["recorded_at"]) >= pd.Timestamp(r["recorded_at"]):
                out.append(
                    [
                        r["farmer_id"],
                        r["stage"],
                        float(o["limit_eur"]),
                        "override",
                        o["recorded_at"],
                        o["officer"],
                        o["reason"],
                    ]
                )
            else:
                out.append(
                    [
                        r["farmer_id"],
                        r["stage"],
                        float(r["limit_eur"]),
                        "decision",
                        r["recorded_at"],
                        None,
                        None,
                    ]
                )
        return pd.DataFrame(out, columns=cols).reset_index(drop=True)

    # -- overrides ------------------------------------------------------------------------
    def record_override(
        self,
        season: Season | int,
        farmer_id: str,
        limit_eur: float,
        reason: str,
        officer: str,
    ) -> int:
        """Append an officer's limit for a farmer; returns the override's id.

        Raises:
            ValueError: empty reason or officer, negative limit, or limit above the cap.
        """
        if not reason or not reason.strip():
            raise ValueError(
                f"override for {farmer_id}: a reason is mandatory; say why the limit changes"
            )
        if not officer or not officer.strip():
            raise ValueError(f"override for {farmer_id}: name the officer who decides it")
        if not (0 <= float(limit_eur) <= self.cap_eur):
            raise ValueError(
                f"override for {farmer_id}: limit EUR {limit_eur:,.0f} outside 0..cap "
                f"EUR {self.cap_eur:,.0f}; the policy cap cannot be overridden here"
            )
        with self._begin() as conn:
            res = conn.execute(
                overrides_table.insert().values(
                    season=_season_year(season),
                    farmer_id=farmer_id,
                    limit_eur=float(limit_eur),
                    reason=reason.strip(),
                    officer=officer.strip(),
                    recorded_at=_now(),
                )
            )
            new_id = int(res.inserted_primary_key[0])  # type: ignore[index]
        log.info("override %d for %s by %s recorded", new_id, farmer_id, officer)
        return new_id

    def overrides(self, season: Season | int, farmer_id: str | None = None) -> pd.DataFrame:
        """Officers' overrides of a season, oldest first."""
        q = sa.select(overrides_table).where(overrides_table.c.season == _season_year(season))
        if farmer_id is not None:
            q = q.where(overrides_table.c.farmer_id == farmer_id)
        with self.engine.connect() as conn:
            return pd.read_sql(q.order_by(overrides_table.c.id), conn)

    # -- draws ----------------------------------------------------------------------------
    def record_draw(
        self, season: Season | int, stage: GrowthStage | str, farmer_id: str, drawn_eur: float
    ) -> int:
        """Record the cumulative EUR drawn by a farmer at a stage; 0 if already recorded."""
        return self.record_draws(season, stage, {farmer_id: drawn_eur})

    def record_draws(
        self, season: Season | int, stage: GrowthStage | str, drawn: pd.Series | dict[str, float]
    ) -> int:
        """Record many draws (farmer_id -> cumulative EUR) in one transaction; rows written."""
        year, st = _season_year(season), str(GrowthStage(stage).value)
        items: Iterable[tuple[Any, Any]] = drawn.items()
        with self._begin() as conn:
            have = {
                r.farmer_id
                for r in conn.execute(
                    sa.select(draws_table.c.farmer_id).where(
                        draws_table.c.season == year, draws_table.c.stage == st
                    )
                )
            }
            rows = [
                {
                    "season": year,
                    "stage": st,
                    "farmer_id": str(f),
                    "drawn_eur": float(v),
                    "recorded_at": _now(),
                }
                for f, v in items
                if str(f) not in have
            ]
            rows.sort(key=lambda r: str(r["farmer_id"]))
            return _insert_ignore(conn, draws_table, rows, ["season", "stage", "farmer_id"])

    def drawn(self, season: Season | int) -> pd.Series:
        """Cumulative EUR drawn per farmer_id at the latest recorded stage."""
        q = sa.select(draws_table).where(draws_table.c.season == _season_year(season))
        with self.engine.connect() as conn:
            df = pd.read_sql(q, conn)
        if df.empty:
            return pd.Series(dtype=float, name="drawn_eur")
        df["_order"] = df["stage"].map(STAGE_ORDER)
        last = df.sort_values(["farmer_id", "_order"]).groupby("farmer_id").tail(1)
        s = last.set_index("farmer_id")["drawn_eur"].astype(float)
        s.index.name = "farmer_id"
        return s.sort_index()

    def _begin(self) -> Any:
        path = self.sqlite_file
        if path is not None and not path.exists():
            # SQLite would quietly create an empty file: the history would be lost.
            raise LedgerError(
                f"ledger {self.safe_url}: the database file {path} is gone (deleted or moved); "
                "restore it from a backup, or call Ledger.create() to start an empty ledger "
                "(earlier decisions would then be forgotten)"
            )
        return self.engine.begin()


def _insert_ignore(
    conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], key: list[str]
) -> int:
    """Insert ``rows`` into ``table``, skipping at the database any whose unique ``key`` is
    already there (``ON CONFLICT DO NOTHING``); returns the number of rows written.

    Another process may commit the same keys between a caller's check and this insert: the
    database, not the check, decides. Dialects other than SQLite and PostgreSQL get a plain
    insert (the caller's check only).
    """
    if not rows:
        return 0
    dialect = conn.dialect.name
    if dialect == "sqlite":
        stmt: Any = sqlite.insert(table).on_conflict_do_nothing(index_elements=key)
    elif dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=key)
    else:
        conn.execute(table.insert(), rows)
        return len(rows)
    # RETURNING lists exactly the rows written (rowcount of a multi-row insert is not portable).
    return len(conn.execute(stmt.returning(table.c[key[0]]), rows).all())


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout = 30000")
    cur.close()
