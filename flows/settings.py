"""One validated parameter model per flow (pydantic, unknown keys rejected)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from geo.types import STAGES, GrowthStage
from scoring.layout import RunLayout

SourceName = Literal["generated", "local", "stac", "sentinelhub"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceParams(_Params):
    """Where imagery comes from (see README, "Imagery sources")."""

    source: SourceName = "generated"
    archive: Path = Path("out/demo/archive")
    catalog_url: str | None = None
    collection: str = "sentinel-2-l2a"
    max_cloud_cover: float = Field(80.0, ge=0, le=100)
    sh_profile: str | None = None
    sh_base_url: str | None = None
    cache_dir: Path | None = None
    seed: int = 7  # generated source: seed of the region
    size_px: int = Field(480, ge=32, le=4096)  # generated source: side of the region, 10 m px


class SeasonParams(_Params):
    """Parameters of the ``season`` flow: a whole season, stage by stage."""

    season: int = Field(2026, ge=2000, le=2100)
    parcels: Path | None = None  # default: the archive's parcels.parquet
    farmers: Path | None = None  # default: the archive's farmers.csv
    imagery: SourceParams = SourceParams()
    out: Path = Path("out/demo")
    ledger_url: str | None = None  # default: sqlite:///<out>/ledger.sqlite
    run_id: str | None = None
    stages: tuple[GrowthStage, ...] = STAGES
    regions: tuple[str, ...] = ()  # only farmers of these regions (default: all)
    simulate_draws: bool = True
    economics: Path | None = None  # a lender's override of data/crop_economics.csv
    segmenter: Path | None = None  # default: data/models/segmenter.pt
    pd_model: Path | None = None  # default: data/models/pd_model.json (train-pd writes others)
    task_runner: Literal["thread", "dask"] = "thread"
    dask_address: str | None = None  # an existing scheduler; default: a LocalCluster
    dask_workers: int = Field(2, ge=1)
    batch_size: int = Field(200, ge=1)  # farmers scored and committed together
    throttle_s: float = Field(0.0, ge=0)  # pause after each batch commit (shared databases)
    # Sentinel Hub source: set the Prefect server's limit on concurrent task runs tagged
    # ``sentinelhub`` to this at the start of each flow (default: leave the server's as is)
    sentinelhub_concurrency: int | None = Field(None, ge=1)

    @field_serializer("ledger_url", when_used="json")
    def _masked_url(self, url: str | None) -> str | None:
        """A JSON copy (Prefect's stored flow-run parameters, run.json) masks the password;
        the live attribute keeps it."""
        from sqlalchemy.engine import make_url

        return None if url is None else make_url(url).render_as_string(hide_password=True)

    @field_validator("stages")
    @classmethod
    def _ordered(cls, v: tuple[GrowthStage, ...]) -> tuple[GrowthStage, ...]:
        order = [s.order for s in v]
        if order != sorted(order) or len(set(order)) != len(order):
            raise ValueError("stages must be distinct and in season order")
        return v

    def ledger(self) -> str:
        """The ledger's SQLAlchemy URL. A masked password (``***``, as stored with a scheduled
        run's parameters) is left out, so the driver takes it from its own place
        (``PGPASSWORD`` or ``~/.pgpass`` for PostgreSQL)."""
        if not self.ledger_url:
            return RunLayout(self.out).ledger_url()
        from sqlalchemy.engine import make_url

        url = make_url(self.ledger_url)
        if url.password == "***":
            return url._replace(password=None).render_as_string(hide_password=False)
        return self.ledger_url

    def parcels_path(self) -> Path:
        return self.parcels or self.imagery.archive / "parcels.parquet"

    def farmers_path(self) -> Path:
        return self.farmers or self.imagery.archive / "farmers.csv"


class StageParams(_Params):
    """Parameters of one stage's ``relimit`` batch."""

    season: SeasonParams
    stage: GrowthStage
    as_of: dt.date | None = None
