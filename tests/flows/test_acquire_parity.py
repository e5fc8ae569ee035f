"""``cropcredit acquire`` gives the same composite from STAC, Sentinel Hub and a local archive.

The demo parcels and scenes are the generated season of ``small_archive``. The loopback server
(tests/geo/loopback.py) serves those scenes as a STAC API with one COG per band (Earth Search
asset names, read by HTTP range requests) and as Sentinel Hub's OAuth, Catalog and Process
APIs. The catalogue holds the scenes acquired up to ``AS_OF`` with their cloud cover; both
remote sources list only those under the default 80 % limit, so the local archive a lender
would mirror from it holds those same scene files.

Each source runs through the command line as a lender runs it: ``--source stac --catalog-url
...``; ``--source sentinelhub --sh-base-url ... --sh-profile ...`` with the OAuth client in
``SH_CLIENT_ID`` / ``SH_CLIENT_SECRET`` and the token URL in the profile; ``--source local``.
``acquire`` reads the book in chips (``geo.chips``) and caches each chip's dekads; the chips'
composites pasted into the book's box (``<out>/cache/composite-*-book.npz``) are compared, so
parity holds chip by chip, and a second run of each remote source must not send a single HTTP
request.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from fixtures_imagery import EARTH_SEARCH_ASSETS, BuiltScene, ImagerySet, SceneSpec
from loopback import ROUTE_COGS, ROUTE_PROCESS, ROUTE_STAC_SEARCH, LoopbackServer
from typer.testing import CliRunner

from flows.cli import app
from geo.chips import plan_chips
from geo.composite import Composite
from geo.parcels import read_parcels
from geo.sources.base import SCENE_BANDS
from geo.types import BANDS

pytestmark = pytest.mark.network

AS_OF = dt.date(2026, 2, 28)
MAX_CLOUD = 80.0  # percent: SourceParams' default limit, the one the CLI uses
TILE = "31TCJ"
PROFILE = "loopback"


def _write_band(path: Path, band: np.ndarray, profile: dict[str, object]) -> None:
    """One band as a COG, laid out like Earth Search's (512 px blocks, DEFLATE)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open("band", "w", **{**profile, "driver": "MEM", "count": 1}) as mem:
        mem.write(band, 1)
        rasterio.shutil.copy(
            mem, path, driver="COG", blocksize="512", compress="DEFLATE", overviews="NONE"
        )


@pytest.fixture(scope="module")
def catalogue(
    small_archive: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ImagerySet, Path]:
    """The archive's scenes up to ``AS_OF`` as per-band COGs for the loopback server, and a
    local archive of the scenes under the cloud limit (links to the same files)."""
    root = tmp_path_factory.mktemp("catalogue")
    mirror = root / "mirror"
    (mirror / "scenes").mkdir(parents=True)
    scenes: list[BuiltScene] = []
    transform, crs, width, height = None, "", 0, 0
    for path in sorted((small_archive / "scenes").glob("S2L2A_*.tif")):
        with rasterio.open(path) as src:
            date = dt.date.fromisoformat(src.tags()["ACQUISITION_DATE"])
            if date > AS_OF:
                continue
            cloud = 100.0 * float(src.tags()["CLOUD_COVER"])  # the archive keeps a 0-1 fraction
            stack = src.read()
            profile = {k: src.profile[k] for k in ("width", "height", "dtype", "crs", "nodata")}
            profile["transform"] = transform = src.transform
            crs, width, height = src.crs.to_string(), src.width, src.height
        # the server's item datetime puts the index in the seconds: keep it under 60
        assert len(scenes) < 60, "too many scenes for the loopback catalogue; lower AS_OF"
        scene = BuiltScene(
            index=len(scenes),
            spec=SceneSpec(date, cloud, tiles=(TILE,)),
            dn=stack[: len(BANDS)],
            scl=stack[-1].astype(np.uint8),
        )
        for i, band in enumerate(SCENE_BANDS):
            band_file = root / "cogs" / scene.scene_id / f"{EARTH_SEARCH_ASSETS[band]}.tif"
            _write_band(band_file, stack[i], profile)
            scene.band_files[band] = band_file
        scenes.append(scene)
        if cloud <= MAX_CLOUD:
            (mirror / "scenes" / path.name).symlink_to(path)
    assert transform is not None
    imagery = ImagerySet(root, scenes, crs=crs, transform=transform, width=width, height=height)
    return imagery, mirror


@pytest.fixture(scope="module")
def server(catalogue: tuple[ImagerySet, Path]) -> Iterator[LoopbackServer]:
    with LoopbackServer(catalogue[0], page_size=20) as srv:
        yield srv


@pytest.fixture(scope="module")
def sh_env(server: LoopbackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A sentinelhub ``config.toml`` profile with the token URL and retry settings, and the
    OAuth client in the environment, as a lender sets them (see README, "Imagery sources")."""
    home = tmp_path_factory.mktemp("xdg")
    (home / "sentinelhub").mkdir()
    (home / "sentinelhub" / "config.toml").write_text(
        f'[{PROFILE}]\nsh_base_url = "{server.url}"\nsh_token_url = "{server.token_url}"\n'
        "max_download_attempts = 3\ndownload_sleep_time = 0.05\n"
        "download_timeout_seconds = 10.0\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(home))
        mp.setenv("SH_CLIENT_ID", server.client_id)
        mp.setenv("SH_CLIENT_SECRET", server.client_secret)
        yield


def _acquire(source: str, out: Path, parcels: Path, *options: str) -> tuple[Composite, str]:
    """Run ``cropcredit acquire``; the composite it cached and what it printed."""
    args = [
        "acquire",
        "--source",
        source,
        "--parcels",
        str(parcels / "parcels.parquet"),
        "--farmers",
        str(parcels / "farmers.csv"),
        "--as-of",
        AS_OF.isoformat(),
        "--season",
        "2026",
        "--out",
        str(out),
        *options,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    cached = sorted((out / "cache").glob("composite-*.npz"))
    assert len(cached) == 1, cached
    return Composite.from_npz(cached[0]), result.output


@pytest.fixture(scope="module")
def local(
    catalogue: tuple[ImagerySet, Path],
    small_archive: Path,
    tmp_path_factory: pytest.TempPathFactory,
    prefect_harness: None,
) -> Composite:
    out = tmp_path_factory.mktemp("acquire-local")
    return _acquire("local", out, small_archive, "--archive", str(catalogue[1]))[0]


def _assert_same(remote: Composite, local: Composite) -> None:
    assert remote.dates == local.dates and remote.as_of == local.as_of == AS_OF
    assert remote.crs == local.crs and remote.transform.almost_equals(local.transform)
    np.testing.assert_array_equal(remote.observed, local.observed)
    np.testing.assert_allclose(remote.data, local.data, rtol=0, atol=1e-6, equal_nan=True)


def test_the_local_archive_composite_has_data(local: Composite) -> None:
    observed = local.observed.any(axis=(1, 2))
    assert observed.sum() >= 8  # of the 12 dekads up to AS_OF, those with a clear pixel
    assert np.isfinite(local.data).any()


def test_stac_matches_the_local_archive_and_reruns_from_the_cache(
    server: LoopbackServer,
    local: Composite,
    small_archive: Path,
    tmp_path: Path,
) -> None:
    server.reset_counts()
    catalog = ["--catalog-url", server.stac_url]
    composite, _ = _acquire("stac", tmp_path, small_archive, *catalog)
    assert server.count(ROUTE_STAC_SEARCH) >= 1
    assert server.count(ROUTE_COGS, method="GET") > 0
    _assert_same(composite, local)

    server.reset_counts()
    again, _ = _acquire("stac", tmp_path, small_archive, *catalog)
    assert server.count() == 0, [(r.method, r.path) for r in server.requests[:5]]
    _assert_same(again, local)


def test_sentinelhub_matches_the_local_archive_and_reruns_from_the_cache(
    server: LoopbackServer,
    sh_env: None,
    local: Composite,
    catalogue: tuple[ImagerySet, Path],
    small_archive: Path,
    tmp_path: Path,
) -> None:
    server.reset_counts()
    hub = ["--sh-base-url", server.url, "--sh-profile", PROFILE]
    composite, printed = _acquire("sentinelhub", tmp_path, small_archive, *hub)
    days = {s.date for s in catalogue[0].scenes if s.spec.cloud_cover <= MAX_CLOUD}
    n_chips = len(plan_chips(read_parcels(small_archive / "parcels.parquet").parcels))
    # one Process request per acquisition day and chip window
    assert server.count(ROUTE_PROCESS) == len(days) * n_chips
    assert server.units_served > 0
    spent = re.search(r"'processing_units': ([0-9.]+)", printed)
    assert spent is not None, printed
    assert float(spent[1]) == pytest.approx(server.units_served, rel=1e-3, abs=1e-3)
    _assert_same(composite, local)

    server.reset_counts()
    again, printed = _acquire("sentinelhub", tmp_path, small_archive, *hub)
    assert server.count() == 0, [(r.method, r.path) for r in server.requests[:5]]
    assert "'processing_units': 0.0" in printed, printed
    _assert_same(again, local)
