"""Sentinel-2 L2A acquisitions of a synthetic region, one :class:`SceneData` at a time.

Frames: the region's UTM CRS and 10 m grid; ``dn`` (10, H, W) uint16 in
:data:`geo.types.BANDS` order (reflectance x 10000, 0 = nodata), ``scl`` (H, W) uint8.
Per pixel: NDVI from the crop curve of its parcel (date and amplitude jitter per parcel,
smooth within-field variation), drought and flood events, then linear spectral mixing
(:mod:`geo.synth.spectra`), a Gaussian point-spread function (sigma 0.5 px: parcel-edge
pixels blend their neighbours), clouds (:mod:`geo.synth.clouds`) and sensor noise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from geo.sources.base import SceneData
from geo.synth.clouds import SCL_BARE, SCL_VEG, SCL_WATER, apply_sky, draw_sky
from geo.synth.layout import COVER_BARE, COVER_BUILT, COVER_WATER
from geo.synth.noise import rng_for, smooth_field
from geo.synth.phenology import CURVE_COLUMNS, DATE_COLUMNS, FOREST_CURVE, ndvi_curve, sigmoid
from geo.synth.region import SynthConfig, SyntheticRegion
from geo.synth.spectra import BUILT, SOIL, mix_reflectance
from geo.types import Season

SOIL_NDVI = float((SOIL[6] - SOIL[2]) / (SOIL[6] + SOIL[2]))


def acquisition_dates(season: Season, revisit_days: int, seed: int) -> list[dt.date]:
    """Acquisition dates over the season: every ``revisit_days`` from a seed-dependent
    offset (0..revisit-1 days after 1 Nov)."""
    day = season.start + dt.timedelta(days=seed % revisit_days)
    out = []
    while day <= season.end:
        out.append(day)
        day += dt.timedelta(days=revisit_days)
    return out


@dataclass
class PixelModel:
    """Per-pixel (H, W) float32 parameter maps of the surface model."""

    params: dict[str, np.ndarray]
    dry_max: np.ndarray
    soil_scale: np.ndarray
    event: np.ndarray
    event_day: np.ndarray
    flood_days: np.ndarray
    flood_level: np.ndarray
    built: np.ndarray
    bare: np.ndarray
    water: np.ndarray


def pixel_model(region: SyntheticRegion, seed: int) -> PixelModel:
    """Gather per-parcel parameters onto pixels and add smooth within-field variation."""
    rng = rng_for(seed, "pixels")
    shape = region.crop_map.shape
    pid = region.parcel_index if region.pheno_index is None else region.pheno_index
    inside = pid >= 0
    idx = np.maximum(pid, 0)
    ph = region.pheno
    w = smooth_field(rng, shape, 6.0, octaves=2)
    wood = smooth_field(rng, shape, 10.0, octaves=2)

    def gather(col: str, other: float) -> np.ndarray:
        vals = ph[col].to_numpy(np.float32) if len(ph) else np.zeros(1, np.float32)
        return np.where(inside, vals[idx], np.float32(other)).astype(np.float32)

    params = {c: gather(c, FOREST_CURVE[c]) for c in CURVE_COLUMNS}
    for c in DATE_COLUMNS:
        params[c] += np.where(inside, 3.0 * w, 6.0 * wood).astype(np.float32)
    for c in ("ndvi_peak", "ndvi_winter"):
        amp = params[c] - params["ndvi_base"]
        params[c] = params["ndvi_base"] + amp * (1.0 + 0.05 * w)
    params["ndvi_base"] = params["ndvi_base"] + 0.015 * w
    wood_gain = np.where(inside, 0.0, 0.06 * wood).astype(np.float32)
    params["ndvi_peak"] = np.minimum(params["ndvi_peak"] + wood_gain, 0.92)
    return PixelModel(
        params=params,
        dry_max=gather("dry_max", 0.0),
        soil_scale=gather("soil_scale", 1.0) * (1.0 + 0.04 * w),
        event=gather("event", 0).astype(np.int8),
        event_day=gather("event_day", 1e4),
        flood_days=gather("flood_days", 0.0),
        flood_level=np.clip(gather("flood_level", 0.0) + 0.35 * w, 0.0, 1.0),
        built=~inside & (region.cover == COVER_BUILT),
        bare=~inside & (region.cover == COVER_BARE),
        water=~inside & (region.cover == COVER_WATER),
    )


def surface(pm: PixelModel, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Clear-sky surface reflectance (10, H, W) float32 and water fraction (H, W) at day of
    season ``t``, before the point-spread function and noise."""
    p = pm.params
    ndvi = ndvi_curve(float(t), p).astype(np.float32)
    harvest = p["senescence"] + 2.5 * p["fall_days"]
    dry = (
        pm.dry_max
        * sigmoid((t - p["senescence"]) / p["fall_days"])
        * (1.0 - sigmoid((t - harvest - 25.0) / 7.0))
    )
    water = np.zeros_like(ndvi)
    # drought: green canopy collapses within weeks, residue dries (SWIR up)
    since = t - pm.event_day
    drought = (pm.event == 1) & (since > 0)
    if drought.any():
        g = np.exp(-np.maximum(since, 0.0) / 15.0)
        stressed = SOIL_NDVI + (ndvi - SOIL_NDVI) * (0.3 + 0.7 * g)
        ndvi = np.where(drought & (ndvi > SOIL_NDVI), stressed, ndvi)
        dry = np.where(drought, np.minimum(1.0, dry + 0.7 * (1.0 - g)), dry)
    flood = pm.event == 2
    if flood.any():
        during = flood & (since >= 0) & (since < pm.flood_days)
        after = flood & (since >= pm.flood_days)
        water = np.where(during, pm.flood_level, 0.0).astype(np.float32)
        weeds = 0.12 * sigmoid((since - pm.flood_days - 35.0) / 8.0)
        ndvi = np.where(during | after, np.minimum(ndvi, p["ndvi_base"] + weeds), ndvi)
        dry = np.where(during | after, 0.0, dry)
    water = np.where(pm.water, 1.0, water).astype(np.float32)
    refl = mix_reflectance(ndvi, dry.astype(np.float32), pm.soil_scale, water)
    if pm.built.any():
        refl = np.where(pm.built[None], BUILT[:, None, None], refl)
    if pm.bare.any():
        refl = np.where(pm.bare[None], 1.1 * SOIL[:, None, None], refl)
    return refl.astype(np.float32), water


def _forced_cloudy(cfg: SynthConfig, dates: list[dt.date]) -> set[int]:
    """Indices of the few (3) almost fully overcast acquisitions, chosen in Nov-Mar."""
    winter = [i for i, d in enumerate(dates) if d.month in (11, 12, 1, 2, 3)]
    rng = rng_for(cfg.seed, "overcast")
    k = min(3, len(winter))
    return {int(i) for i in rng.choice(winter, size=k, replace=False)} if k else set()


def render_scene(
    pm: PixelModel, region: SyntheticRegion, cfg: SynthConfig, k: int, day: dt.date, overcast: bool
) -> SceneData:
    """Render acquisition ``k`` on ``day``: surface, PSF, sky, noise, DN and SCL."""
    rng = rng_for(cfg.seed, "scene", k)
    t = float((day - cfg.season.start).days)
    refl, water = surface(pm, t)
    refl = ndimage.gaussian_filter(refl, sigma=(0.0, 0.5, 0.5), mode="nearest")
    red, nir = refl[2], refl[6]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    scl = np.where(ndvi > 0.4, SCL_VEG, SCL_BARE).astype(np.uint8)
    scl[(water > 0.5) | (ndvi < -0.05)] = SCL_WATER
    sky = draw_sky(rng, refl.shape[1:], day, overcast)
    # residual atmospheric-correction error of the scene, per band
    refl = refl * (1.0 + rng.normal(0.0, 0.015, (10, 1, 1))).astype(np.float32)
    refl, scl = apply_sky(refl, scl, sky)
    noise = rng.standard_normal(refl.shape, dtype=np.float32)
    refl = refl + noise * (0.002 + 0.01 * refl)
    dn = np.clip(np.rint(refl * 10000.0), 1, 65535).astype(np.uint16)
    dn[:, sky.nodata] = 0
    valid = ~sky.nodata
    cloudy = float(np.isin(scl[valid], (8, 9, 10)).mean()) if valid.any() else 1.0
    return SceneData(
        scene_id=f"S2L2A_{day:%Y%m%d}",
        date=day,
        dn=dn,
        scl=scl,
        transform=region.transform,
        crs=region.crs,
        meta={"cloud_cover": f"{cloudy:.3f}", "generator": "geo.synth", "seed": str(cfg.seed)},
    )


def simulate_scenes(region: SyntheticRegion, cfg: SynthConfig) -> Iterator[SceneData]:
    """Yield one :class:`SceneData` per acquisition date (every ``cfg.revisit_days``) over the
    full region window, in date order. Deterministic in (region, cfg); each scene has its own
    random stream, so scenes can be regenerated independently. Holds one scene at a time."""
    dates = acquisition_dates(cfg.season, cfg.revisit_days, cfg.seed)
    overcast = _forced_cloudy(cfg, dates)
    pm = pixel_model(region, cfg.seed)
    for k, day in enumerate(dates):
        yield render_scene(pm, region, cfg, k, day, k in overcast)
