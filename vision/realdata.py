"""The real parcel series (WorldCereal extractions) and the one split every user shares.

THE SPLIT CONTRACT (training, calibration and evaluation all go through here):

- France 2023 = :func:`geo.samples.read_samples` of
  ``../shared/data/worldcereal/france2023_dekad_samples.parquet``; its parts are
  :func:`geo.samples.split_by_block` ``(lonlat, {"train": 0.6, "cal": 0.15, "test": 0.25},
  seed=0)`` (10 km blocks), computed on all samples *before* dropping any;
- samples whose crop is ``"ignore"`` are dropped from every part (and from Belgium);
- the shipped model trains on France ``train`` only, calibrates its temperature on France
  ``cal`` (plus generated regions); France ``test`` and all of Belgium 2021
  (``belgium2021_month_samples.parquet``, monthly) are never used for training or
  calibration of the shipped model.

Frames: :class:`geo.samples.SampleSeries` (``data`` (N, T, C) reflectance 0-1, NaN missing,
T = 36 dekads of the sample's own season, C = :data:`geo.types.BANDS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from geo.legend import IGNORE
from geo.samples import SampleSeries, read_samples, split_by_block
from geo.types import CROP_INDEX

__all__ = [
    "BELGIUM_FILE",
    "FRANCE_FILE",
    "FRANCE_FRACTIONS",
    "FRANCE_SEED",
    "SHARED_WORLDCEREAL",
    "belgium_samples",
    "drop_ignored",
    "france_parts",
]

#: Where the shared real data lives (absent on a user's machine: callers must skip).
SHARED_WORLDCEREAL: Final[Path] = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "worldcereal"
)
FRANCE_FILE: Final[Path] = SHARED_WORLDCEREAL / "france2023_dekad_samples.parquet"
BELGIUM_FILE: Final[Path] = SHARED_WORLDCEREAL / "belgium2021_month_samples.parquet"
#: The France parts and their seed (part of the contract: do not change).
FRANCE_FRACTIONS: Final[dict[str, float]] = {"train": 0.6, "cal": 0.15, "test": 0.25}
FRANCE_SEED: Final[int] = 0


def drop_ignored(series: SampleSeries) -> SampleSeries:
    """``series`` without the samples labelled ``"ignore"`` (or unlabelled)."""
    if series.crop is None:
        raise ValueError("samples have no crop labels (no ewoc_code column)")
    return series.subset(np.asarray(series.crop != IGNORE))


def france_parts(path: Path = FRANCE_FILE) -> dict[str, SampleSeries]:
    """France 2023 split into ``train`` / ``cal`` / ``test`` (the contract above).

    The split is computed on every sample of the file (so it does not depend on the legend's
    ``ignore`` rows), then ``ignore`` samples are dropped from each part.

    Raises:
        geo.samples.SampleError: the file is missing or unreadable.
        ValueError: the file has no labels or no lon/lat.
    """
    series = read_samples(Path(path))
    if series.lonlat is None:
        raise ValueError(f"{path}: no lon/lat columns; the spatial split needs them")
    masks = split_by_block(series.lonlat, FRANCE_FRACTIONS, seed=FRANCE_SEED)
    return {name: drop_ignored(series.subset(mask)) for name, mask in masks.items()}


def belgium_samples(path: Path = BELGIUM_FILE) -> SampleSeries:
    """All of Belgium 2021 (monthly), ``ignore`` dropped: never used to train the shipped model."""
    return drop_ignored(read_samples(Path(path)))


# --- laying real series into generated layouts ------------------------------------------------


@dataclass(frozen=True, eq=False)
class SeriesBank:
    """Labelled parcel series ready to be laid into scenes or fed as uniform images.

    ``data`` (N, T, C) float32 reflectance 0-1 (NaN missing), ``observed`` (N, T) bool,
    ``labels`` (N,) int64 class index of :data:`geo.types.CROPS`; ``monthly_data`` /
    ``monthly_observed`` the same series as a monthly extraction would give them
    (:func:`to_monthly`); ``by_class`` class index -> sample positions, only for classes with
    at least ``min_per_class`` samples (other classes keep generated pixels).
    """

    data: np.ndarray
    observed: np.ndarray
    labels: np.ndarray
    monthly_data: np.ndarray
    monthly_observed: np.ndarray
    by_class: dict[int, np.ndarray]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def series_bank(series: SampleSeries, min_per_class: int = 3) -> SeriesBank:
    """A :class:`SeriesBank` of the labelled, non-``ignore`` samples of ``series``.

    Raises:
        ValueError: ``series`` has no labels.
    """
    series = drop_ignored(series)
    return bank_of(series.data, series.observed, series.class_index(), min_per_class)


def bank_of(
    data: np.ndarray, observed: np.ndarray, labels: np.ndarray, min_per_class: int = 3
) -> SeriesBank:
    """A :class:`SeriesBank` of (N, T, C) series, (N, T) clear dekads and (N,) class indices.

    Series with no clear observation are left out.
    """
    keep = np.asarray(observed).any(axis=1)
    data = np.asarray(data, dtype=np.float32)[keep]
    observed = np.asarray(observed, dtype=bool)[keep]
    labels = np.asarray(labels, dtype=np.int64)[keep]
    m_data, m_obs = to_monthly(data.transpose(1, 2, 0), observed.T)
    by_class = {
        int(k): np.flatnonzero(labels == k)
        for k in np.unique(labels)
        if int((labels == k).sum()) >= min_per_class
    }
    return SeriesBank(
        data=data,
        observed=observed,
        labels=labels,
        monthly_data=np.ascontiguousarray(m_data.transpose(2, 0, 1)),
        monthly_observed=np.ascontiguousarray(m_obs.T),
        by_class=by_class,
    )


def to_monthly(data: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dekad series as a monthly extraction read by :func:`geo.samples.read_samples` gives them.

    Each month (dekads 3m..3m+2 of the season) becomes the mean of its observed dekads, put in
    its middle dekad (3m+1); months with no observation are missing; the two dekads between
    two observed months are filled linearly (``read_samples``' default ``max_gap=3`` fills
    those and nothing across a missing month).

    Args:
        data: (T, C, ...) reflectance, values at observed dekads (NaN elsewhere allowed).
        observed: (T, ...) bool, a clear value fell in that dekad.

    Returns:
        (data, observed) of the same shapes: float32, NaN where missing.
    """
    t = data.shape[0]
    months = t // 3
    shape = data.shape
    obs3 = observed[: months * 3].reshape(months, 3, *observed.shape[1:])
    grouped = data[: months * 3].reshape(months, 3, *shape[1:])
    count = obs3.sum(axis=1)
    total = np.where(obs3[:, :, None], grouped, np.float32(0.0)).sum(axis=1)
    has = count > 0
    mean = np.where(has[:, None], total / np.maximum(count, 1)[:, None], np.float32(np.nan))
    out = np.full(shape, np.nan, dtype=np.float32)
    obs = np.zeros(observed.shape, dtype=bool)
    out[1 : months * 3 : 3] = mean
    obs[1 : months * 3 : 3] = has
    # between the middles of months m and m + 1: dekads 3m + 2 and 3m + 3
    a, b = mean[:-1], mean[1:]
    both = (has[:-1] & has[1:])[:, None]
    for j, w in ((2, np.float32(1 / 3)), (3, np.float32(2 / 3))):
        fill = np.where(both, a * (1 - w) + b * w, np.float32(np.nan))
        out[j : j + 3 * (months - 1) : 3] = fill
    return out, obs


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], scale_px: int, sd: float
) -> np.ndarray:
    """(H, W) float32 ``1 + noise``: Gaussian noise of ``sd`` varying over ``scale_px`` pixels
    (bilinear upsampling of a coarse grid), a field's smooth within-field variation."""
    h, w = shape
    gh, gw = h // scale_px + 2, w // scale_px + 2
    coarse = rng.normal(0.0, sd, size=(gh, gw)).astype(np.float32)
    ys = np.arange(h, dtype=np.float32) / scale_px
    xs = np.arange(w, dtype=np.float32) / scale_px
    y0, x0 = ys.astype(np.int64), xs.astype(np.int64)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    c00 = coarse[y0][:, x0]
    c01 = coarse[y0][:, x0 + 1]
    c10 = coarse[y0 + 1][:, x0]
    c11 = coarse[y0 + 1][:, x0 + 1]
    top = c00 * (1 - fx) + c01 * fx
    bottom = c10 * (1 - fx) + c11 * fx
    return np.float32(1.0) + top * (1 - fy) + bottom * fy


def _boundary(key: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour of another ``key``."""
    edge = np.zeros(key.shape, dtype=bool)
    diff_y = key[1:] != key[:-1]
    diff_x = key[:, 1:] != key[:, :-1]
    edge[1:] |= diff_y
    edge[:-1] |= diff_y
    edge[:, 1:] |= diff_x
    edge[:, :-1] |= diff_x
    return edge


def lay_series(
    data: np.ndarray,
    observed: np.ndarray,
    labels: np.ndarray,
    parcel_index: np.ndarray,
    bank: SeriesBank,
    rng: np.random.Generator,
    *,
    p_real: float = 0.9,
    pixel_noise: float = 0.03,
    field_sd: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Lay real series into the fields of a generated patch, in place.

        A field is the set of pixels of one parcel with one true class (a parcel planted on part
        of its area has two). Each field whose class is in ``bank.by_class`` gets, with
        probability ``p_real``, a random series of that class: every pixel gets the series times a
        smooth multiplicative field (:func:`smooth_field`, one per patch, per band a little
        different) times per-pixel, per-dekad noise (sd ``pixel_noise``, common to the bands as
    haze and view angle are), and the series' own
        clear dekads and gaps (a cloud covers the whole field, as in the extraction). Pixels on a
        laid field's edge are then mixed with their 3 x 3 neighbourhood (weight of the own value
        0.5-0.9), like the mixed pixels of a 10 m grid over a field boundary. Other pixels keep
        their generated values.

        Args:
            data: (T, C, H, W) float32 reflectance 0-1 of the patch (NaN missing), changed in place.
            observed: (T, H, W) bool, changed in place.
            labels: (H, W) class index; parcel_index: (H, W) parcel row, -1 outside parcels.

        Returns:
            (data, observed, number of fields laid).
    """
    t, c, h, w = data.shape
    inside = parcel_index >= 0
    if not inside.any() or not bank.by_class:
        return data, observed, 0
    k = len(CROP_INDEX)
    key = np.where(inside, parcel_index.astype(np.int64) * k + labels, -1)
    groups, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.reshape(h, w)
    chosen = np.full(len(groups), -1, dtype=np.int64)
    for g, gk in enumerate(groups):
        if gk < 0:
            continue
        members = bank.by_class.get(int(gk % k))
        if members is not None and rng.random() < p_real:
            chosen[g] = members[int(rng.integers(len(members)))]
    pick = chosen[inverse]
    laid = pick >= 0
    n_laid = int((chosen >= 0).sum())
    if not n_laid:
        return data, observed, 0
    flat = np.flatnonzero(laid)
    rows = pick.ravel()[flat]
    field = smooth_field(rng, (h, w), int(rng.integers(4, 16)), field_sd).ravel()[flat]
    band_gain = 1.0 + rng.normal(0.0, field_sd / 3, size=(1, c)).astype(np.float32)
    noise = rng.standard_normal(size=(len(flat), t, 1), dtype=np.float32)
    noise *= np.float32(pixel_noise)
    noise += np.float32(1.0)
    noise *= field[:, None, None]
    values = bank.data[rows] * band_gain[None]  # (n, T, C) pixel-major
    values *= noise
    data.reshape(t, c, h * w)[:, :, flat] = values.transpose(1, 2, 0)
    observed.reshape(t, h * w)[:, flat] = bank.observed[rows].T

    edge = _boundary(key) & laid
    if edge.any():
        ey, ex = np.nonzero(edge)
        pixels = np.ascontiguousarray(data.reshape(t * c, h * w).T)  # (H*W, T*C) pixel-major
        total = np.zeros((len(ey), t * c), dtype=np.float32)
        count = np.zeros((len(ey), t * c), dtype=np.float32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                v = pixels[np.clip(ey + dy, 0, h - 1) * w + np.clip(ex + dx, 0, w - 1)]
                ok = np.isfinite(v)
                total += np.where(ok, v, np.float32(0.0))
                count += ok
        own = pixels[ey * w + ex]
        alpha = rng.uniform(0.5, 0.9, size=(len(ey), 1)).astype(np.float32)
        mixed = alpha * own + (1 - alpha) * total / np.maximum(count, 1)
        data.reshape(t * c, h * w)[:, ey * w + ex] = np.where(np.isfinite(own), mixed, own).T
    return data, observed, n_laid
