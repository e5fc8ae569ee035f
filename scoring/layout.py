"""Where a season run's outputs live: one object owns the paths under ``--out``.

::

    <out>/run.json                         run id, versions, parameters
    <out>/ledger.sqlite                    the default ledger (any SQLAlchemy URL may replace it)
    <out>/limits.csv, limits.parquet       the last stage's limits
    <out>/report/index.html, map.html, maps/
    <out>/cache/                           imagery caches (chips per dekad, remote responses)
    <out>/stages/<stage>/assessment.parquet, curves.parquet, decisions.parquet, summary.json
    <out>/stages/<stage>/chips/<run id>/<chip id>.parquet (+ _curves)   finished chips

Plain paths, no I/O except :meth:`RunLayout.stage_dir` creating nothing either: callers make
the directories they write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from geo.types import GrowthStage

__all__ = ["RunLayout"]


@dataclass(frozen=True)
class RunLayout:
    """The output layout of one run folder ``out``."""

    out: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))

    @property
    def run_json(self) -> Path:
        return self.out / "run.json"

    @property
    def ledger(self) -> Path:
        """The default SQLite ledger file."""
        return self.out / "ledger.sqlite"

    def ledger_url(self) -> str:
        """``sqlite:///<out>/ledger.sqlite`` (absolute)."""
        return f"sqlite:///{self.ledger.resolve()}"

    @property
    def cache(self) -> Path:
        """The default imagery cache directory."""
        return self.out / "cache"

    @property
    def report(self) -> Path:
        return self.out / "report"

    @property
    def limits_csv(self) -> Path:
        return self.out / "limits.csv"

    @property
    def limits_parquet(self) -> Path:
        return self.out / "limits.parquet"

    @property
    def stages_dir(self) -> Path:
        return self.out / "stages"

    def stage_dir(self, stage: GrowthStage) -> Path:
        return self.stages_dir / stage.value

    def assessment(self, stage: GrowthStage) -> Path:
        return self.stage_dir(stage) / "assessment.parquet"

    def curves(self, stage: GrowthStage) -> Path:
        return self.stage_dir(stage) / "curves.parquet"

    def decisions(self, stage: GrowthStage) -> Path:
        return self.stage_dir(stage) / "decisions.parquet"

    def summary(self, stage: GrowthStage) -> Path:
        return self.stage_dir(stage) / "summary.json"

    def chips_dir(self, stage: GrowthStage, run_id: str) -> Path:
        """Where a stage keeps its finished chips for ``run_id`` (a re-run skips them)."""
        return self.stage_dir(stage) / "chips" / run_id

    def chip_result(self, stage: GrowthStage, run_id: str, chip_id: str) -> tuple[Path, Path]:
        """(assessment, curves) files of one finished chip."""
        d = self.chips_dir(stage, run_id)
        return d / f"{chip_id}.parquet", d / f"{chip_id}_curves.parquet"

    def outputs(self) -> dict[str, Path]:
        """What a season run writes, by name (the CLI prints it)."""
        return {
            "limits (CSV)": self.limits_csv,
            "limits (Parquet)": self.limits_parquet,
            "report": self.report / "index.html",
            "maps": self.report / "maps",
            "ledger": self.ledger,
            "run manifest": self.run_json,
        }
