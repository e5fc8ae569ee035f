"""The ``cropcredit`` command line: a thin layer over the flows and libraries."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, cast

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

import flows  # noqa: F401  (offline Prefect defaults)
from flows import progress
from flows.settings import SeasonParams, SourceParams
from geo.errors import CropCreditError
from geo.types import GrowthStage
from scoring.layout import RunLayout

app = typer.Typer(
    help="Seasonal agricultural credit limits from Sentinel-2 imagery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
log = logging.getLogger("flows.cli")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("prefect", "httpx", "rasterio", "urllib3", "distributed", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RichBars:
    """A :class:`flows.progress.Watcher` drawing one rich bar per running step; a finished
    step's bar is removed, so only what is still running stays on screen."""

    def __init__(self, bars: Progress) -> None:
        self.bars = bars

    def start(self, description: str, total: int) -> object:
        return self.bars.add_task(description, total=total)

    def advance(self, handle: object, n: int) -> None:
        self.bars.advance(cast(TaskID, handle), n)

    def stop(self, handle: object) -> None:
        self.bars.remove_task(cast(TaskID, handle))


@contextmanager
def progress_bars(out: Console | None = None) -> Iterator[bool]:
    """Progress bars for the flows' long loops on ``out`` (default: the CLI's console).

    Only on a terminal: piped or redirected output (CI, cron, a Prefect worker) gets the log
    lines and no bars. Log lines printed through the same console go above the bars. Yields
    whether bars are shown.
    """
    out = out or console
    if not out.is_terminal:
        yield False
        return
    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=True,
    )
    with bars, progress.watching(RichBars(bars)):
        yield True


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


def _season_params(**kwargs: object) -> SeasonParams:
    try:
        return SeasonParams.model_validate(kwargs)
    except ValidationError as exc:
        raise _fail(f"bad parameters:\n{exc}") from None


Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
Out = Annotated[Path, typer.Option(help="Output folder.")]


@app.command()
def demo(
    out: Out = Path("out/demo"),
    seed: Annotated[int, typer.Option(help="Seed of the generated region.")] = 7,
    keep_ledger: Annotated[
        bool, typer.Option(help="Keep an existing ledger (default: start a fresh one).")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Run a whole generated season end to end and write limits, a report and maps."""
    _setup_logging(verbose)
    ledger = RunLayout(out).ledger
    if ledger.exists() and not keep_ledger:
        ledger.unlink()
    params = _season_params(
        out=out,
        imagery={"source": "generated", "archive": out / "archive", "seed": seed},
        run_id=f"demo-{seed}",
    )
    _run_season(params)


@app.command()
def season(
    parcels: Annotated[Path | None, typer.Option(help="Parcels (GeoParquet/GeoPackage).")] = None,
    farmers: Annotated[Path | None, typer.Option(help="Farmers table (CSV).")] = None,
    source: Annotated[str, typer.Option(help="generated | local | stac | sentinelhub")] = "local",
    archive: Annotated[Path, typer.Option(help="Local archive / generated root.")] = Path(
        "out/demo/archive"
    ),
    catalog_url: Annotated[str | None, typer.Option(help="STAC API URL.")] = None,
    sh_base_url: Annotated[str | None, typer.Option(help="Sentinel Hub base URL.")] = None,
    sh_profile: Annotated[str | None, typer.Option(help="sentinelhub config profile.")] = None,
    season_year: Annotated[int, typer.Option("--season", help="Season year.")] = 2026,
    stage: Annotated[
        list[GrowthStage] | None, typer.Option(help="Only these stages (repeatable).")
    ] = None,
    ledger_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the ledger.")] = None,
    run_id: Annotated[str | None, typer.Option(help="Run id (re-use it to resume).")] = None,
    region: Annotated[list[str] | None, typer.Option(help="Only these regions.")] = None,
    batch_size: Annotated[int, typer.Option(help="Farmers per committed batch.")] = 200,
    throttle: Annotated[float, typer.Option(help="Seconds to pause after each batch.")] = 0.0,
    task_runner: Annotated[str, typer.Option(help="thread | dask")] = "thread",
    dask_address: Annotated[
        str | None, typer.Option(help="Dask scheduler (default: a LocalCluster).")
    ] = None,
    dask_workers: Annotated[int, typer.Option(help="LocalCluster workers.")] = 2,
    sentinelhub_concurrency: Annotated[
        int | None,
        typer.Option(
            help="Set the Prefect server's limit on concurrent Sentinel Hub task runs "
            "(default: leave it as it is).",
            min=1,
        ),
    ] = None,
    segmenter: Annotated[
        Path | None, typer.Option(help="U-Net weights (default: data/models/segmenter.pt).")
    ] = None,
    pd_model: Annotated[
        Path | None, typer.Option(help="PD model from train-pd (default: the shipped one).")
    ] = None,
    economics: Annotated[
        Path | None, typer.Option(help="The lender's crop economics table (overrides rows).")
    ] = None,
    out: Out = Path("out/season"),
    verbose: Verbose = False,
) -> None:
    """Run the season flow (or some of its stages) on a lender's parcels and imagery."""
    _setup_logging(verbose)
    kwargs: dict[str, object] = {
        "season": season_year,
        "parcels": parcels,
        "farmers": farmers,
        "imagery": {
            "source": source,
            "archive": archive,
            "catalog_url": catalog_url,
            "sh_base_url": sh_base_url,
            "sh_profile": sh_profile,
        },
        "ledger_url": ledger_url,
        "run_id": run_id,
        "out": out,
        "simulate_draws": source == "generated",
        "regions": tuple(region or ()),
        "batch_size": batch_size,
        "throttle_s": throttle,
        "task_runner": task_runner,
        "dask_address": dask_address,
        "dask_workers": dask_workers,
        "sentinelhub_concurrency": sentinelhub_concurrency,
        "segmenter": segmenter,
        "pd_model": pd_model,
        "economics": economics,
    }
    if stage:
        kwargs["stages"] = tuple(stage)
    _run_season(_season_params(**kwargs))


def _run_season(params: SeasonParams) -> None:
    from flows.season import default_outputs
    from flows.season import season as season_flow

    started = time.perf_counter()
    try:
        with progress_bars():
            outcomes = season_flow(params)
    except CropCreditError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"season {params.season}: limits by stage")
    for col in ("stage", "farmers", "total limit EUR", "cut", "hold", "zero", "new in ledger"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for o in outcomes:
        acts = o.decisions["action"].value_counts()
        table.add_row(
            o.stage.value,
            str(len(o.decisions)),
            f"{o.decisions['limit_eur'].sum():,.0f}",
            str(acts.get("cut", 0)),
            str(acts.get("hold", 0)),
            str(acts.get("zero", 0)),
            str(o.written),
        )
    console.print(table)
    console.print(f"done in {time.perf_counter() - started:.0f} s. Outputs:")
    for name, path in default_outputs(params.out).items():
        console.print(f"  {name:18} {path}")


@app.command()
def generate(
    out: Out = Path("out/demo/archive"),
    seed: Annotated[int, typer.Option(help="Seed.")] = 7,
    size_px: Annotated[int, typer.Option(help="Region size in 10 m pixels.")] = 480,
    verbose: Verbose = False,
) -> None:
    """Write the generated region and season as a local archive (COGs + parcels)."""
    from geo.synth import SynthConfig, write_archive

    _setup_logging(verbose)
    path = write_archive(out, SynthConfig(seed=seed, size_px=size_px))
    console.print(f"archive written to {path}")


@app.command()
def acquire(
    source: Annotated[str, typer.Option(help="generated | local | stac | sentinelhub")] = "local",
    archive: Annotated[Path, typer.Option(help="Local archive root.")] = Path("out/demo/archive"),
    parcels: Annotated[Path | None, typer.Option(help="Parcels file.")] = None,
    farmers: Annotated[Path | None, typer.Option(help="Farmers table.")] = None,
    catalog_url: Annotated[str | None, typer.Option(help="STAC API URL.")] = None,
    sh_base_url: Annotated[str | None, typer.Option(help="Sentinel Hub base URL.")] = None,
    sh_profile: Annotated[str | None, typer.Option(help="sentinelhub config profile.")] = None,
    as_of: Annotated[str, typer.Option(help="Composite up to this date (YYYY-MM-DD).")] = (
        "2026-09-30"
    ),
    season_year: Annotated[int, typer.Option("--season", help="Season year.")] = 2026,
    out: Out = Path("out/acquire"),
    verbose: Verbose = False,
) -> None:
    """Fetch, cloud-mask and composite the parcels' imagery up to a date."""
    from flows.season import acquire as acquire_flow

    _setup_logging(verbose)
    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError:
        raise _fail(f"--as-of {as_of!r} is not a date YYYY-MM-DD") from None
    params = _season_params(
        season=season_year,
        parcels=parcels or archive / "parcels.parquet",
        farmers=farmers or archive / "farmers.csv",
        imagery=SourceParams(
            source=source,  # type: ignore[arg-type]
            archive=archive,
            catalog_url=catalog_url,
            sh_base_url=sh_base_url,
            sh_profile=sh_profile,
            cache_dir=RunLayout(out).cache,
        ),
        out=out,
    )
    try:
        with progress_bars():
            summary = acquire_flow(params, day)
    except CropCreditError as exc:
        raise _fail(str(exc)) from None
    console.print(summary)


@app.command()
def plan(
    parcels: Annotated[Path | None, typer.Option(help="Parcels (GeoParquet/GeoPackage).")] = None,
    archive: Annotated[Path, typer.Option(help="Archive holding parcels.parquet.")] = Path(
        "out/demo/archive"
    ),
    source: Annotated[str, typer.Option(help="generated | local | stac | sentinelhub")] = "local",
    scenes: Annotated[
        int, typer.Option(help="Scenes per chip over the season (Sentinel-2: ~73 a year).")
    ] = 73,
    show: Annotated[int, typer.Option(help="Chips listed (the largest first).")] = 30,
    verbose: Verbose = False,
) -> None:
    """Plan the book into chips: parcels per chip, pixels to read against the bounding box's,
    and for Sentinel Hub the estimated processing units."""
    from geo.chips import plan_chips, sentinelhub_units
    from geo.parcels import read_parcels

    _setup_logging(verbose)
    try:
        book = read_parcels(parcels or archive / "parcels.parquet").parcels
        chip_plan = plan_chips(book)
    except CropCreditError as exc:
        raise _fail(str(exc)) from None
    counts = chip_plan.counts()
    table = Table(title=f"{len(chip_plan)} chips, {len(book)} parcels")
    for col in ("chip", "zone", "parcels", "window px"):
        table.add_column(col, justify="right" if col != "chip" else "left")
    for chip in sorted(chip_plan.chips, key=lambda c: -int(counts[c.chip_id]))[:show]:
        h, w = chip.shape
        table.add_row(chip.chip_id, chip.crs, str(counts[chip.chip_id]), f"{w} x {h}")
    console.print(table)
    window, bbox = chip_plan.window_pixels, chip_plan.bbox_pixels
    console.print(
        f"pixels to read per scene: {window:,} in chip windows against {bbox:,} in the bounding "
        f"box ({window / max(bbox, 1):.3f}x)"
    )
    units = sentinelhub_units(chip_plan, scenes)
    line = (
        f"Sentinel Hub: ~{units:,.0f} processing units for {scenes} scenes per chip "
        "(per request: width x height / 512^2 x 12 bands / 3, at least 0.005)"
    )
    console.print(line if source == "sentinelhub" else f"(if read from {line})")


def _labelled_scene(labels: Path, imagery: Path, season_year: int, cache: Path) -> object:
    """Composite of a local archive over labelled parcels as a
    :class:`vision.finetune.LabelledScene` (:func:`vision.finetune.scene_from_parcels`). The
    composite is cached under ``cache`` (never inside the lender's archive, which may be
    read-only)."""
    from flows.settings import SourceParams
    from flows.tasks import acquire_composite
    from geo.parcels import parcels_bounds, read_parcels
    from geo.sources.factory import open_source
    from geo.types import Season
    from vision.finetune import scene_from_parcels

    season = Season(season_year)
    parcels = read_parcels(labels).parcels
    source = open_source(SourceParams(source="local", archive=imagery))
    comp = acquire_composite.fn(source, parcels_bounds(parcels), season, season.end, cache)
    return scene_from_parcels(comp, parcels, season)


@app.command("train-segmenter")
def train_segmenter(
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the weights [default: data/models/segmenter.pt, or "
            "out/segmenter_finetuned.pt when fine-tuning]."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    samples: Annotated[
        Path | None,
        typer.Option(
            help="Fine-tune on labelled parcel series (WorldCereal long layout: sample_id, "
            "timestamp, S2-L2A-B02..B12, ewoc_code)."
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="Fine-tune on labelled parcels (parcel file; crop = declared_crop)."),
    ] = None,
    imagery: Annotated[
        Path | None,
        typer.Option(help="Local archive (<root>/scenes/*.tif) over the --labels parcels."),
    ] = None,
    season_year: Annotated[
        int, typer.Option("--season", help="Season of the --imagery (1 Nov - 31 Oct).")
    ] = 2026,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Weights to fine-tune [default: the shipped ones]; when training, warm-start "
            "from them."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Fine-tuning epochs.")] = None,
    verbose: Verbose = False,
) -> None:
    """Train the crop-type U-Net (generated scenes + real France parcels, CPU), or fine-tune
    it on a lender's labelled parcels (--samples, or --labels with --imagery)."""
    import shlex

    from vision.finetune import FinetuneConfig, finetune_and_save
    from vision.train import train_and_save

    _setup_logging(verbose)
    if (labels is None) != (imagery is None):
        raise _fail("--labels and --imagery go together: the parcels and their imagery")
    if samples is None and labels is None:
        if epochs is not None:
            raise _fail("--epochs is for fine-tuning: add --samples or --labels")
        weights = out or Path("data/models/segmenter.pt")
        if init is not None:  # training continues from --init
            console.print(train_and_save(weights, seed=seed, init=init))
        else:
            console.print(train_and_save(weights, seed=seed))
        return
    weights = out or Path("out/segmenter_finetuned.pt")
    # The card's reproduce line, from the parsed options (sys.argv is not the command when
    # the CLI is called from Python).
    command = ["cropcredit", "train-segmenter", "--out", str(weights), "--seed", str(seed)]
    if samples is not None:
        command += ["--samples", str(samples)]
    if labels is not None and imagery is not None:
        command += ["--labels", str(labels), "--imagery", str(imagery)]
        command += ["--season", str(season_year)]
    if init is not None:
        command += ["--init", str(init)]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    try:
        scenes = (
            [_labelled_scene(labels, imagery, season_year, weights.parent / "cache")]
            if labels and imagery
            else []
        )
        cfg = FinetuneConfig(seed=seed, **({"epochs": epochs} if epochs else {}))
        result = finetune_and_save(
            weights,
            init=init,
            samples=samples,
            scenes=scenes,  # type: ignore[arg-type]
            cfg=cfg,
            command=shlex.join(command),
            replay_cache=weights.parent / "cache",
        )
    except (CropCreditError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(result)


@app.command("train-pd")
def train_pd(
    loans: Annotated[Path, typer.Option(help="Loan history (CSV or Parquet), see README.")],
    out: Annotated[Path, typer.Option(help="Where to write the model.")] = Path(
        "out/pd_model.json"
    ),
    verbose: Verbose = False,
) -> None:
    """Retrain the probability-of-default model on a lender's own loan history."""
    from scoring.pd_model import train_pd_from_file

    _setup_logging(verbose)
    try:
        metrics = train_pd_from_file(loans, out)
    except CropCreditError as exc:
        raise _fail(str(exc)) from None
    console.print(metrics)


@app.command()
def review(
    out: Out = Path("out/demo"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    ledger_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the ledger.")] = None,
    verbose: Verbose = False,
) -> None:
    """Serve the loan officers' review pages for a season run's outputs."""
    from flows.review import serve

    _setup_logging(verbose)
    if not RunLayout(out).run_json.exists():
        raise _fail(f"{out} holds no season run (run.json missing); run `make demo` first")
    serve(out, host, port, ledger_url=ledger_url)


@app.command()
def schedule(
    season_year: Annotated[int, typer.Option("--season", help="Season year.")] = 2026,
    region: Annotated[list[str] | None, typer.Option(help="Region (repeatable).")] = None,
    timezone: Annotated[str, typer.Option(help="Lender's IANA time zone.")] = "Europe/Paris",
    acquisitions: Annotated[bool, typer.Option(help="List acquisition runs too.")] = False,
) -> None:
    """Print the season's calendar of runs: re-limits by stage and region, acquisitions."""
    from flows.schedule import season_runs
    from geo.types import Season

    try:
        runs = season_runs(Season(season_year), regions=region, timezone=timezone)
    except (ValueError, CropCreditError) as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"season {season_year} runs ({timezone})")
    for col in ("when", "flow", "region", "stage", "cron"):
        table.add_column(col)
    shown = [r for r in runs if acquisitions or r.flow != "acquire"]
    for r in shown:
        table.add_row(
            r.when.strftime("%Y-%m-%d %H:%M %Z"),
            r.flow,
            r.region,
            r.stage.value if r.stage else "",
            r.cron,
        )
    console.print(table)
    n_acq = sum(r.flow == "acquire" for r in runs)
    console.print(f"{len(runs) - n_acq} limit runs, {n_acq} acquisition runs")


@app.command("serve-flows")
def serve_flows(
    archive: Annotated[Path, typer.Option(help="Local archive root.")] = Path("out/demo/archive"),
    source: Annotated[str, typer.Option(help="generated | local | stac | sentinelhub")] = "local",
    season_year: Annotated[int, typer.Option("--season", help="Season year.")] = 2026,
    ledger_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the ledger.")] = None,
    timezone: Annotated[str, typer.Option(help="Lender's IANA time zone.")] = "Europe/Paris",
    sentinelhub_concurrency: Annotated[
        int, typer.Option(help="Sentinel Hub task runs allowed at once, across runs.", min=1)
    ] = 2,
    out: Out = Path("out/season"),
) -> None:
    """Serve the season's deployments on their schedules (needs PREFECT_API_URL set to a
    server started with `prefect server start`); sets the Sentinel Hub concurrency limit."""
    from prefect import serve

    from flows.deploy import apply_concurrency_limits, build_deployments

    params = _season_params(
        season=season_year,
        imagery={"source": source, "archive": archive},
        ledger_url=ledger_url,
        out=out,
        simulate_draws=False,
    )
    apply_concurrency_limits(sentinelhub=sentinelhub_concurrency)
    serve(*build_deployments(params, timezone=timezone))


@app.command("sentinelhub-limit")
def sentinelhub_limit(
    limit: Annotated[
        int, typer.Argument(help="Task runs calling Sentinel Hub allowed at once.", min=1)
    ] = 2,
) -> None:
    """Create or update the Prefect server's concurrency limit on task runs tagged
    `sentinelhub` (the server of PREFECT_API_URL): it throttles Sentinel Hub calls across
    every flow run, scheduled or not."""
    from flows.deploy import apply_concurrency_limits

    apply_concurrency_limits(sentinelhub=limit)
    console.print(f"at most {limit} Sentinel Hub task runs at once (tag 'sentinelhub')")


@app.command("deployments-yaml")
def deployments_yaml(
    season_year: Annotated[int, typer.Option("--season", help="Season year.")] = 2026,
    timezone: Annotated[str, typer.Option(help="Lender's IANA time zone.")] = "Europe/Paris",
) -> None:
    """Print prefect.yaml for the season's deployments (the repository ships 2026's)."""
    from flows.deploy import deployments_yaml as render

    params = _season_params(
        season=season_year,
        imagery={"source": "local"},
        out=Path("out/season"),
        simulate_draws=False,
    )
    typer.echo(render(params, timezone=timezone), nl=False)


@app.command()
def backtest(out: Out = Path("out/demo"), verbose: Verbose = False) -> None:
    """Replay a finished season stage by stage: this policy against a flat-limit baseline,
    scored on the simulated outcomes."""
    from scoring.backtest import run_backtest_cli

    _setup_logging(verbose)
    if not RunLayout(out).run_json.exists():
        raise _fail(f"{out} holds no season run (run.json missing); run `make demo` first")
    try:
        console.print(run_backtest_cli(out))
    except CropCreditError as exc:
        raise _fail(str(exc)) from None


@app.command("classify-samples")
def classify_samples(
    samples: Annotated[
        Path, typer.Option(help="Parcel series, WorldCereal long format (Parquet or CSV).")
    ],
    out: Annotated[Path, typer.Option(help="Output table: *.csv or *.parquet.")],
    segmenter: Annotated[
        Path | None, typer.Option(help="U-Net weights (default: data/models/segmenter.pt).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Classify with what was known on this date (YYYY-MM-DD).")
    ] = None,
    season_year: Annotated[
        int | None, typer.Option("--season", help="Season year (default: from the dates).")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Crop type of each parcel time series in a WorldCereal-layout file (one row per sample:
    sample_id, crop, confidence, p_<class>)."""
    from geo.samples import SampleError, read_samples
    from geo.types import Season
    from vision.classify import classify_samples as classify
    from vision.classify import write_table
    from vision.model import load_segmenter

    _setup_logging(verbose)
    day = None
    if as_of is not None:
        try:
            day = dt.date.fromisoformat(as_of)
        except ValueError:
            raise _fail(f"--as-of {as_of!r} is not a date YYYY-MM-DD") from None
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise _fail(f"--out {out}: name the output *.csv or *.parquet")
    layout = (
        "expected long format with columns sample_id, timestamp and S2-L2A-B02 ... "
        "S2-L2A-B12 (uint16 reflectance x 10000), as Parquet or CSV"
    )
    try:
        series = read_samples(samples, Season(season_year) if season_year else None)
        table = classify(load_segmenter(segmenter), series, as_of=day)
        path = write_table(table, out)
    except SampleError as exc:
        raise _fail(f"{exc}\n({layout})") from None
    except (CropCreditError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"{len(table)} samples classified -> {path}")


@app.command()
def clean(out: Out = Path("out/demo")) -> None:
    """Remove a run's outputs."""
    shutil.rmtree(out, ignore_errors=True)
    console.print(f"removed {out}")


if __name__ == "__main__":
    app()
