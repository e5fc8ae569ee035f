"""Surface reflectance of the 10 Sentinel-2 bands from cover fractions (linear mixing).

Units: reflectance 0-1, arrays (C, H, W) with C in :data:`geo.types.BANDS` order
(B02 B03 B04 B05 B06 B07 B08 B8A B11 B12). Endmembers are medians of real Sentinel-2 L2A
parcel composites of western France 2023 (WorldCereal samples) binned by NDVI, so that
red-edge (NDRE = (B08-B05)/(B08+B05)) and SWIR (NDMI = (B08-B11)/(B08+B11)) follow NDVI the way
they do on real fields: green vegetation lowers B04/B11/B12 and raises B06-B8A; dry residue is
bright in SWIR; water is dark beyond the visible.
"""

from __future__ import annotations

import numpy as np

from geo.types import BANDS

_B = {b: i for i, b in enumerate(BANDS)}
RED, NIR, REDEDGE, SWIR1 = _B["B04"], _B["B08"], _B["B05"], _B["B11"]

#: Endmember spectra (reflectance 0-1, BANDS order).
GREEN_VEG = np.array([0.021, 0.053, 0.019, 0.090, 0.375, 0.480, 0.510, 0.530, 0.160, 0.072])
SOIL = np.array([0.095, 0.135, 0.180, 0.210, 0.230, 0.245, 0.258, 0.270, 0.350, 0.300])
DRY_VEG = np.array([0.080, 0.110, 0.140, 0.180, 0.235, 0.265, 0.285, 0.300, 0.400, 0.320])
WATER = np.array([0.060, 0.055, 0.035, 0.028, 0.022, 0.018, 0.014, 0.012, 0.006, 0.004])
BUILT = np.array([0.110, 0.125, 0.140, 0.150, 0.160, 0.168, 0.175, 0.178, 0.210, 0.190])
CLOUD = np.array([0.420, 0.410, 0.400, 0.420, 0.440, 0.450, 0.460, 0.460, 0.330, 0.230])
CIRRUS = np.array([0.060, 0.055, 0.050, 0.050, 0.050, 0.048, 0.046, 0.046, 0.030, 0.020])
SNOW = np.array([0.750, 0.740, 0.720, 0.710, 0.690, 0.670, 0.650, 0.640, 0.100, 0.080])

#: Highest NDVI the mixing can reach (pure green vegetation is ~0.93).
MAX_NDVI = 0.92


def ndvi_of(spec: np.ndarray) -> float:
    """NDVI of one spectrum in BANDS order."""
    return float((spec[NIR] - spec[RED]) / (spec[NIR] + spec[RED]))


def mix_reflectance(
    ndvi: np.ndarray,
    dryness: np.ndarray,
    soil_scale: np.ndarray,
    water: np.ndarray,
) -> np.ndarray:
    """Reflectance (10, H, W) of pixels whose green-vegetation fraction gives NDVI ``ndvi``.

    The non-green part is ``dryness * DRY_VEG + (1 - dryness) * soil_scale * SOIL``; the green
    fraction ``fv`` is solved in closed form so that NDVI(B08, B04) of the mixture equals
    ``ndvi`` (clipped to what the endmembers can reach); finally ``water`` (fraction 0-1) of
    open water is mixed in. All inputs are (H, W) arrays.
    """
    ng = dryness[None] * DRY_VEG[:, None, None] + (1.0 - dryness[None]) * (
        soil_scale[None] * SOIL[:, None, None]
    )
    n = np.clip(ndvi, -1.0, MAX_NDVI)
    n8, n4 = ng[NIR], ng[RED]
    g8, g4 = GREEN_VEG[NIR], GREEN_VEG[RED]
    num = n * (n8 + n4) - (n8 - n4)
    den = (g8 - n8) - (g4 - n4) - n * ((g8 - n8) + (g4 - n4))
    fv = np.clip(num / np.maximum(den, 1e-6), 0.0, 1.0)
    refl = ng + fv[None] * (GREEN_VEG[:, None, None] - ng)
    if np.any(water > 0):
        refl = refl + water[None] * (WATER[:, None, None] - refl)
    return np.asarray(refl, dtype=np.float32)


def indices(refl: np.ndarray) -> dict[str, np.ndarray]:
    """NDVI, NDRE (B08/B05) and NDMI (B08/B11) of reflectance (10, ...) in BANDS order."""
    eps = 1e-6
    nir = refl[NIR].astype(np.float64)
    return {
        "ndvi": (nir - refl[RED]) / (nir + refl[RED] + eps),
        "ndre": (nir - refl[REDEDGE]) / (nir + refl[REDEDGE] + eps),
        "ndmi": (nir - refl[SWIR1]) / (nir + refl[SWIR1] + eps),
    }
