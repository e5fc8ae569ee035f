"""Write a generated season to disk in the archive layout of :mod:`geo.sources.base`.

Layout under ``out_dir``: ``parcels.parquet`` (GeoParquet, UTM), ``farmers.csv``,
``scenes/S2L2A_YYYYMMDD.tif`` (Cloud-Optimised GeoTIFF: 11 uint16 bands = BANDS + SCL with
band descriptions, nodata 0, tag ACQUISITION_DATE, deflate + predictor 2, 256 px internal
tiles, overviews), ``truth/parcels_truth.parquet``, ``truth/crop_map.tif`` (uint8 class index)
and ``manifest.json`` (seed, season, size, crs, bounds, generator version, file list).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.shutil import copy as rio_copy

from geo.sources.base import SCENE_BANDS, SceneData
from geo.synth.region import SynthConfig, SyntheticRegion, simulate_region
from geo.synth.scenes import simulate_scenes
from geo.types import CROPS

log = logging.getLogger(__name__)

#: Bump when the generator's output changes for the same config.
GENERATOR_VERSION = "1.1.0"


def _cfg_dict(cfg: SynthConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["season"] = cfg.season.year
    d["origin"] = list(cfg.origin)
    return d


def _write_cog(path: Path, data: np.ndarray, profile: dict[str, Any], descriptions: tuple[str, ...],
               tags: dict[str, str]) -> None:  # fmt: skip
    """Write (C, H, W) ``data`` as a COG: an in-memory tiled GTiff with overviews, copied with
    COPY_SRC_OVERVIEWS so the overviews precede the image data."""
    c, h, w = data.shape
    prof = {
        **profile,
        "driver": "GTiff",
        "count": c,
        "height": h,
        "width": w,
        "dtype": data.dtype.name,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
        "interleave": "pixel",
    }
    with rasterio.MemoryFile() as mem:
        with mem.open(**prof) as tmp:
            tmp.write(data)
            for i, name in enumerate(descriptions, start=1):
                tmp.set_band_description(i, name)
            tmp.update_tags(**tags)
            factors = [f for f in (2, 4) if min(h, w) // f >= 64]
            if factors:
                tmp.build_overviews(factors, Resampling.nearest)
        with mem.open() as src:
            rio_copy(
                src,
                path,
                driver="GTiff",
                copy_src_overviews=True,
                tiled=True,
                blockxsize=256,
                blockysize=256,
                compress="deflate",
                predictor=2,
            )


def write_scene(path: Path, scene: SceneData) -> None:
    """Write one :class:`SceneData` as an archive COG (11 uint16 bands, SCL last)."""
    data = np.concatenate([scene.dn, scene.scl[None].astype(np.uint16)], axis=0)
    profile = {"crs": scene.crs, "transform": scene.transform, "nodata": 0}
    tags = {
        "ACQUISITION_DATE": scene.date.isoformat(),
        **{k.upper(): v for k, v in scene.meta.items()},
    }
    _write_cog(path, data, profile, SCENE_BANDS, tags)


def _manifest(cfg: SynthConfig, region: SyntheticRegion, files: list[str]) -> dict[str, Any]:
    h, w = region.crop_map.shape
    t = region.transform
    return {
        "generator": "geo.synth",
        "generator_version": GENERATOR_VERSION,
        "config": _cfg_dict(cfg),
        "seed": cfg.seed,
        "season": cfg.season.year,
        "crs": cfg.crs,
        "bounds": [t.c, t.f + h * t.e, t.c + w * t.a, t.f],
        "shape": [h, w],
        "n_parcels": len(region.parcels),
        "n_farmers": len(region.farmers),
        "scenes": files,
    }


def _up_to_date(out_dir: Path, cfg: SynthConfig) -> bool:
    path = out_dir / "manifest.json"
    if not path.exists():
        return False
    try:
        man = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if man.get("config") != _cfg_dict(cfg) or man.get("generator_version") != GENERATOR_VERSION:
        return False
    return (
        all((out_dir / "scenes" / f).exists() for f in man.get("scenes", []))
        and (out_dir / "parcels.parquet").exists()
    )


def write_archive(out_dir: Path, cfg: SynthConfig = SynthConfig()) -> Path:
    """Generate the season of ``cfg`` and write it under ``out_dir`` (layout in the module
    docstring). Idempotent: when ``out_dir/manifest.json`` matches ``cfg`` and the generator
    version, nothing is regenerated. The manifest is written last, so an interrupted run is
    redone. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    if _up_to_date(out_dir, cfg):
        log.info("archive %s is up to date (seed %d), skipping", out_dir, cfg.seed)
        return out_dir
    t0 = time.perf_counter()
    (out_dir / "scenes").mkdir(parents=True, exist_ok=True)
    (out_dir / "truth").mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").unlink(missing_ok=True)
    region = simulate_region(cfg)
    region.parcels.to_parquet(out_dir / "parcels.parquet")
    region.farmers.to_csv(out_dir / "farmers.csv", index=False)
    truth = region.truth.copy()
    truth["event_start"] = truth["event_start"].astype("object")
    truth.to_parquet(out_dir / "truth" / "parcels_truth.parquet")
    profile = {"crs": region.crs, "transform": region.transform, "nodata": None}
    _write_cog(
        out_dir / "truth" / "crop_map.tif",
        region.crop_map[None],
        profile,
        ("crop_class",),
        {"CLASSES": ",".join(CROPS)},
    )
    files: list[str] = []
    for scene in simulate_scenes(region, cfg):
        name = f"{scene.scene_id}.tif"
        write_scene(out_dir / "scenes" / name, scene)
        files.append(name)
        if len(files) % 10 == 0:
            log.info(
                "wrote %d scenes (%s), %.0f s", len(files), scene.date, time.perf_counter() - t0
            )
    man = _manifest(cfg, region, files)
    (out_dir / "manifest.json").write_text(json.dumps(man, indent=2))
    log.info("archive %s: %d scenes in %.1f s", out_dir, len(files), time.perf_counter() - t0)
    return out_dir
