"""Clouds, shadows, cirrus, snow and nodata of one acquisition, with their SCL classes.

Axis order (H, W), row 0 = north; one pixel = 10 m. Coverage follows a western-France
climatology (about 60 % in December-January, 15 % in July); per-scene cover is Beta-distributed
around the monthly mean, so many scenes are clear and a few almost fully cloudy. Clouds are
thresholded smooth noise fields; their shadows are the cloud mask displaced to the north-west
(sun in the south-east at the 10:30 overpass).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from geo.synth.noise import smooth_field
from geo.synth.spectra import CIRRUS, CLOUD, SNOW

#: SCL classes used by the generator.
SCL_NODATA, SCL_SHADOW, SCL_VEG, SCL_BARE, SCL_WATER = 0, 3, 4, 5, 6
SCL_CLOUD_MED, SCL_CLOUD_HIGH, SCL_CIRRUS, SCL_SNOW = 8, 9, 10, 11
#: Mean cloud cover by month (1..12), western France.
MONTHLY_COVER = (0.60, 0.52, 0.42, 0.38, 0.34, 0.24, 0.16, 0.18, 0.25, 0.42, 0.55, 0.62)


@dataclass
class Sky:
    """Atmospheric layers of a scene, all (H, W): cloud opacity 0-1, cirrus strength 0-1,
    shadow darkening 0-1, snow fraction 0-1, nodata mask, and the target cloud cover."""

    cloud: np.ndarray
    cirrus: np.ndarray
    shadow: np.ndarray
    snow: np.ndarray
    nodata: np.ndarray
    cover: float


def draw_cover(rng: np.random.Generator, day: dt.date, forced_cloudy: bool) -> float:
    """Cloud cover fraction (0-1) of one acquisition."""
    if forced_cloudy:
        return float(rng.uniform(0.96, 1.0))
    mean = MONTHLY_COVER[day.month - 1]
    k = 1.2  # low concentration: U-shaped, many clear and many overcast scenes
    return float(rng.beta(mean * k, (1 - mean) * k))


def draw_sky(rng: np.random.Generator, shape: tuple[int, int], day: dt.date, forced: bool) -> Sky:
    """Draw the cloud, cirrus, shadow, snow and nodata layers of one acquisition."""
    h, w = shape
    cover = draw_cover(rng, day, forced)
    zeros = np.zeros(shape, np.float32)
    cloud = zeros
    shadow = zeros
    if cover > 0.01:
        f = smooth_field(rng, shape, float(rng.uniform(25, 90)), octaves=4)
        thr = float(np.quantile(f, 1.0 - cover))
        cloud = np.clip(1.0 - np.exp(-4.0 * (f - thr)), 0.0, 1.0).astype(np.float32)
        s = float(rng.uniform(8, 35))
        shifted = ndimage.shift(cloud, (-s, -0.6 * s), order=0, mode="constant", cval=0.0)
        shadow = np.clip(shifted - cloud, 0.0, 1.0).astype(np.float32)
    cirrus = zeros
    if rng.random() < 0.25:
        g = smooth_field(rng, shape, float(rng.uniform(60, 150)), octaves=2)
        cirrus = np.clip((g - float(rng.uniform(-0.5, 1.0))) * 0.6, 0.0, 1.0).astype(np.float32)
    snow = zeros
    if day.month in (12, 1, 2) and rng.random() < 0.05:
        g = smooth_field(rng, shape, 40.0, octaves=3)
        snow = np.clip((g - float(rng.uniform(0.0, 1.0))) * 2.0, 0.0, 1.0).astype(np.float32)
    nodata = np.zeros(shape, bool)
    if rng.random() < 0.06:  # swath edge crossing the window
        rows, cols = np.mgrid[0:h, 0:w]
        slope = float(rng.uniform(-0.3, 0.3))
        nodata = cols + slope * rows < float(rng.uniform(0.05, 0.4)) * w
    return Sky(cloud, cirrus, shadow, snow, nodata, cover)


def apply_sky(refl: np.ndarray, surface_scl: np.ndarray, sky: Sky) -> tuple[np.ndarray, np.ndarray]:
    """Put the sky over surface reflectance (10, H, W) and surface SCL (H, W).

    Returns (reflectance, scl); pixels under nodata get reflectance 0 and SCL 0.
    """
    out = refl
    scl = surface_scl.copy()
    if sky.snow.any():
        out = out + sky.snow[None] * (SNOW[:, None, None] - out)
        scl[sky.snow > 0.5] = SCL_SNOW
    if sky.shadow.any():
        out = out * (1.0 - 0.6 * sky.shadow[None])
        scl[sky.shadow > 0.3] = SCL_SHADOW
    if sky.cirrus.any():
        out = out + sky.cirrus[None] * CIRRUS[:, None, None]
        scl[sky.cirrus > 0.5] = SCL_CIRRUS
    if sky.cloud.any():
        out = out + sky.cloud[None] * (CLOUD[:, None, None] - out)
        scl[sky.cloud > 0.15] = SCL_CLOUD_MED
        scl[sky.cloud > 0.7] = SCL_CLOUD_HIGH
    if sky.nodata.any():
        out = np.where(sky.nodata[None], 0.0, out)
        scl[sky.nodata] = SCL_NODATA
    return out.astype(np.float32), scl
