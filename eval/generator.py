"""How close is the generated season to real crops? RMSE of median NDVI curves per crop.

    python -m eval.generator [--archive out/demo] [--size 480] [--seed 7]

Generates the demo season in memory (or reads an archive written by ``write_archive``), takes
for every parcel without an event the mean NDVI of its interior pixels that SCL calls clear
(4 vegetation, 5 bare, 6 water) in each scene, the median of those per dekad, and per crop the
median over parcels per dekad. The real curve is the per-crop median NDVI per dekad of the
WorldCereal France 2023 parcels (season 2023, aligned dekad by dekad with season 2026). Prints
the RMSE over dekads where both exist; target < 0.08 for every crop.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from eval.calibrate_generator import SHARED, load_real, median_curve, real_median_curves
from geo.sources.base import SceneData
from geo.synth import SynthConfig, SyntheticRegion, simulate_region, simulate_scenes
from geo.types import Season

TARGET_RMSE = 0.08
CLEAR_SCL = (4, 5, 6)


def _interior(parcel_index: np.ndarray) -> np.ndarray:
    """Parcel id per pixel, -1 where a 3x3 neighbourhood touches another parcel or none."""
    lo = ndimage.minimum_filter(parcel_index, size=3, mode="nearest")
    hi = ndimage.maximum_filter(parcel_index, size=3, mode="nearest")
    return np.where((lo == hi) & (parcel_index >= 0), parcel_index, -1)


def generated_curves(
    region: SyntheticRegion, scenes: Iterable[SceneData], season: Season
) -> dict[str, np.ndarray]:
    """Median NDVI per dekad (36,) per true crop over event-free parcels."""
    pid = _interior(region.parcel_index)
    n = int(pid.max()) + 1
    flat = pid.ravel()
    inside = flat >= 0
    counts = np.bincount(flat[inside], minlength=n).astype(float)
    obs: list[list[list[float]]] = [[[] for _ in range(36)] for _ in range(n)]
    for sc in scenes:
        dn = sc.dn.astype(np.float64)
        ndvi = ((dn[6] - dn[2]) / np.maximum(dn[6] + dn[2], 1.0)).ravel()
        clear = np.isin(sc.scl.ravel(), CLEAR_SCL) & inside
        s = np.bincount(flat[clear], weights=ndvi[clear], minlength=n)
        c = np.bincount(flat[clear], minlength=n).astype(float)
        d = season.dekad_index(sc.date)
        good = np.flatnonzero((c >= 0.5 * counts) & (counts > 0))
        for i in good:
            obs[i][d].append(s[i] / c[i])
    truth = region.truth.iloc[:n]
    keep = (truth["event"] == "none") & ~truth["not_cropland"]
    out: dict[str, np.ndarray] = {}
    for crop, g in truth[keep].groupby("true_crop"):
        per = np.full((len(g), 36), np.nan)
        for r, i in enumerate(g.index):
            for d in range(36):
                if obs[i][d]:
                    per[r, d] = np.median(obs[i][d])
        out[str(crop)] = median_curve(per)
    return out


def _read_archive(path: Path) -> tuple[SyntheticRegion, list[SceneData], Season]:
    import json

    import geopandas as gpd
    import rasterio
    from rasterio import features

    man = json.loads((path / "manifest.json").read_text())
    season = Season(int(man["season"]))
    parcels = gpd.read_parquet(path / "parcels.parquet")
    truth = pd.read_parquet(path / "truth" / "parcels_truth.parquet")
    with rasterio.open(path / "truth" / "crop_map.tif") as src:
        crop_map = src.read(1)
        transform, crs = src.transform, str(src.crs)
    pidx = features.rasterize(
        ((g, i) for i, g in enumerate(parcels.geometry)),
        out_shape=crop_map.shape,
        transform=transform,
        fill=-1,
        dtype="int32",
    )
    region = SyntheticRegion(parcels, pd.DataFrame(), truth, crop_map, transform, crs, season, pidx)
    scenes = []
    for f in sorted((path / "scenes").glob("S2L2A_*.tif")):
        with rasterio.open(f) as src:
            arr = src.read()
            day = dt.date.fromisoformat(src.tags()["ACQUISITION_DATE"])
        scenes.append(SceneData(f.stem, day, arr[:10], arr[10].astype(np.uint8), transform, crs))
    return region, scenes, season


def rmse_table(generated: dict[str, np.ndarray], real: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per crop present in both: RMSE, max abs difference, dekads compared."""
    rows = []
    for crop in sorted(set(generated) & set(real)):
        g, r = generated[crop], real[crop]
        ok = np.isfinite(g) & np.isfinite(r)
        if ok.sum() < 5:
            continue
        diff = g[ok] - r[ok]
        rmse = float(np.sqrt(np.mean(diff**2)))
        rows.append(
            {
                "crop": crop,
                "rmse": round(rmse, 4),
                "max_abs": round(float(np.max(np.abs(diff))), 4),
                "dekads": int(ok.sum()),
                "pass": rmse < TARGET_RMSE,
            }
        )
    return pd.DataFrame(rows)


def run(
    archive: Path | None = None, size_px: int = 480, seed: int = 7, shared: Path = SHARED
) -> str:
    """Generate (or read) the demo season, compare with the real curves, return the table."""
    if not (shared / "worldcereal").exists():
        return f"eval.generator: {shared} not found, skipped (needs the real reference data)"
    if archive is not None:
        region, scenes, season = _read_archive(archive)
        gen = generated_curves(region, scenes, season)
    else:
        cfg = SynthConfig(seed=seed, size_px=size_px)
        region = simulate_region(cfg)
        gen = generated_curves(region, simulate_scenes(region, cfg), cfg.season)
    table = rmse_table(gen, real_median_curves(load_real(shared)))
    worst = table["rmse"].max() if len(table) else float("nan")
    head = (
        f"Generator vs real median NDVI per dekad (target RMSE < {TARGET_RMSE}); worst {worst:.3f}"
    )
    return head + "\n" + table.to_string(index=False)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, default=None)
    ap.add_argument("--size", type=int, default=480)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    print(run(args.archive, args.size, args.seed))


if __name__ == "__main__":
    main()
