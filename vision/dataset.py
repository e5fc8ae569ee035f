"""Training data for the segmenter: generated regions, cached composites, random patches.

Each region comes from :mod:`geo.synth` (``simulate_region`` -> ``simulate_scenes``) and is
composited once over the full season (:func:`geo.composite.composite_dekads`, as_of = the
season's end). A composite *as of* an earlier dekad ``a`` is then derived exactly by
:func:`truncate_season`: values after each pixel's last clear observation up to ``a`` become
NaN (gap filling never extrapolates, so this equals compositing with ``as_of`` in dekad
``a``, up to the scenes of the as_of dekad itself). Training thus sees partial seasons at
random as_of dates (later dekads missing) and learns to be less confident early.

Frames: composites (T, C, H, W) reflectance 0-1 (T = 36, C = 10 bands), labels (H, W) uint8
class index of :data:`geo.types.CROPS`, 10 m pixels.

Cache: one ``.npz`` per region in ``cache_dir`` (float16 reflectance, observed mask, labels,
parcel raster, truth crops), keyed by the generator settings and a fingerprint of the
generator and compositing code, so a changed generator never serves stale data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from geo.types import CROP_INDEX, Season
from vision.model import model_input
from vision.realdata import SeriesBank, lay_series, smooth_field, to_monthly

if TYPE_CHECKING:
    from geo.synth.region import SynthConfig

log = logging.getLogger(__name__)

#: Nominal decision dates (MM-DD) of the stages, from data/stage_calendar.csv (poitou-nord).
STAGE_DATES: Final[dict[str, str]] = {
    "pre_sowing": "02-20",
    "sowing": "04-20",
    "vegetative": "05-31",
    "flowering": "06-30",
    "grain_fill": "07-31",
    "harvest": "09-30",
}
_CACHE_VERSION = 1
_REPO = Path(__file__).resolve().parents[1]


def stage_as_of(season: Season, stage: str) -> dt.date:
    """Decision date of ``stage`` in ``season`` (:data:`STAGE_DATES`; Nov-Dec = year - 1)."""
    return season.date(STAGE_DATES[stage])


def _code_fingerprint() -> str:
    digest = hashlib.sha256()
    files = sorted((_REPO / "geo" / "synth").glob("*.py")) + [
        _REPO / "geo" / "composite.py",
        _REPO / "geo" / "masking.py",
    ]
    for f in files:
        if f.is_file():
            digest.update(f.read_bytes())
    return digest.hexdigest()[:10]


@dataclass
class RegionData:
    """A generated region composited over its full season.

    ``data`` (T, C, H, W) float16 reflectance (NaN = missing), ``observed`` (T, H, W) bool,
    ``labels`` (H, W) uint8 true class, ``parcel_index`` (H, W) int32 parcel row (-1 none),
    ``parcel_crops`` (n,) uint8 true class per parcel row, ``dates`` the T dekad starts.
    """

    seed: int
    season: Season
    data: np.ndarray
    observed: np.ndarray
    labels: np.ndarray
    parcel_index: np.ndarray
    parcel_crops: np.ndarray
    dates: list[dt.date]

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.labels.shape[0]), int(self.labels.shape[1]))


def synth_config(seed: int, size_px: int, season: Season) -> SynthConfig:
    """The :class:`geo.synth.region.SynthConfig` of a training region (farmers ~ area)."""
    from geo.synth.region import SynthConfig

    n_farmers = max(4, round(320 * (size_px / 480) ** 2))
    return SynthConfig(seed=seed, season=season, size_px=size_px, n_farmers=n_farmers)


def build_region(
    seed: int,
    size_px: int,
    *,
    season: Season = Season(2026),
    cache_dir: Path | None = None,
) -> RegionData:
    """Generate (or load from ``cache_dir``) one region composited over the full season."""
    key = f"region_s{seed}_px{size_px}_y{season.year}_{_code_fingerprint()}_v{_CACHE_VERSION}"
    path = Path(cache_dir) / f"{key}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            return _load_region(path, seed, season)
        except (OSError, KeyError, ValueError) as exc:
            log.warning("ignoring unreadable region cache %s (%s)", path, exc)
    from geo.composite import composite_dekads
    from geo.synth.region import simulate_region
    from geo.synth.scenes import simulate_scenes

    cfg = synth_config(seed, size_px, season)
    region = simulate_region(cfg)
    comp = composite_dekads(simulate_scenes(region, cfg), season, season.end)
    crops = np.array([CROP_INDEX[c] for c in region.truth["true_crop"].astype(str)], dtype=np.uint8)
    out = RegionData(
        seed=seed,
        season=season,
        data=comp.data.astype(np.float16),
        observed=comp.observed.astype(bool),
        labels=region.crop_map.astype(np.uint8),
        parcel_index=region.parcel_index.astype(np.int32),
        parcel_crops=crops,
        dates=list(comp.dates),
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            data=out.data,
            observed=out.observed,
            labels=out.labels,
            parcel_index=out.parcel_index,
            parcel_crops=out.parcel_crops,
            dates=np.array([d.isoformat() for d in out.dates]),
        )
        tmp.replace(path)
    return out


def _load_region(path: Path, seed: int, season: Season) -> RegionData:
    with np.load(path, allow_pickle=False) as z:
        return RegionData(
            seed=seed,
            season=season,
            data=z["data"],
            observed=z["observed"],
            labels=z["labels"],
            parcel_index=z["parcel_index"],
            parcel_crops=z["parcel_crops"],
            dates=[dt.date.fromisoformat(str(s)) for s in z["dates"]],
        )


def truncate_season(data: np.ndarray, observed: np.ndarray, as_of_index: int) -> np.ndarray:
    """A full-season composite as it would look with information up to dekad ``as_of_index``.

    Args:
        data: (T, C, H, W) reflectance (any float dtype), NaN = missing.
        observed: (T, H, W) bool clear observations.
        as_of_index: last dekad with information (0..T-1).

    Returns:
        (T, C, H, W) float32: NaN after each pixel's last observed dekad <= as_of_index.
    """
    t = data.shape[0]
    a = int(np.clip(as_of_index, -1, t - 1))
    keep = np.zeros(observed.shape, dtype=bool)
    if a >= 0:
        obs = observed[: a + 1]
        keep[: a + 1] = np.logical_or.accumulate(obs[::-1], axis=0)[::-1]
    out = np.where(keep[:, None], data, np.float32(np.nan)).astype(np.float32, copy=False)
    return out


def stage_indices(season: Season) -> dict[str, int]:
    """Dekad index of each stage date (Nov 1 = 0): 02-20 -> 10, ..., 09-30 -> 32."""
    return {s: season.dekad_index(stage_as_of(season, s)) for s in STAGE_DATES}


def sample_as_of(rng: np.random.Generator, season: Season) -> int:
    """A random as_of dekad: half the time a stage date +/- 1 dekad, else uniform 9..35."""
    if rng.random() < 0.5:
        idx = list(stage_indices(season).values())
        return int(np.clip(rng.choice(idx) + rng.integers(-1, 2), 0, 35))
    return int(rng.integers(9, 36))


def augment(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random quarter-turn and horizontal flip of input ``x`` (C, H, W) and labels ``y``
    (H, W) together, contiguous."""
    k = int(rng.integers(4))
    x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def patches(
    regions: Sequence[RegionData],
    *,
    patch: int,
    batch: int,
    rng: np.random.Generator,
    validity: bool = True,
    bank: SeriesBank | None = None,
    p_real: float = 0.9,
    monthly_share: float = 0.5,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless random training batches.

    Each item: a region, a random as_of (:func:`sample_as_of`), a random ``patch`` x ``patch``
    crop, a random flip / 90-degree rotation. With a ``bank`` of real series, the fields of
    each crop get real series of their class first (:func:`vision.realdata.lay_series`, with
    probability ``p_real`` per field), and a share ``monthly_share`` of the crops is then
    turned into a monthly extraction (:func:`vision.realdata.to_monthly`, every pixel) so the
    model also reads monthly series.

    Yields:
        (x, y): x (batch, in_channels, patch, patch) float32 from :func:`model_input`,
        y (batch, patch, patch) int64 class index.
    """
    while True:
        xs, ys = [], []
        for _ in range(batch):
            reg = regions[int(rng.integers(len(regions)))]
            h, w = reg.shape
            p = min(patch, h, w)
            y0 = int(rng.integers(0, h - p + 1))
            x0 = int(rng.integers(0, w - p + 1))
            a = sample_as_of(rng, reg.season)
            win = (slice(y0, y0 + p), slice(x0, x0 + p))
            data = reg.data[:, :, win[0], win[1]]
            observed = reg.observed[:, win[0], win[1]]
            y = reg.labels[win].astype(np.int64)
            if bank is not None:
                data = data.astype(np.float32)  # a copy: lay_series writes in place
                observed = observed.copy()
                lay_series(data, observed, y, reg.parcel_index[win], bank, rng, p_real=p_real)
                if rng.random() < monthly_share:
                    data, observed = to_monthly(data, observed)
            comp = truncate_season(data, observed, a)
            x = model_input(comp, validity=validity)
            x, y = augment(x, y, rng)
            xs.append(x)
            ys.append(y)
        yield np.stack(xs), np.stack(ys)


def class_weights(bank: SeriesBank, power: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Classes of ``bank.by_class`` and their sampling probabilities (count ** ``power``).

    ``power`` 1 samples series as they come (France: ~40 % grassland), 0 every class alike;
    0.5 sits between, so rare classes are seen more often without repeating a handful of
    series to death.
    """
    classes = np.array(sorted(bank.by_class), dtype=np.int64)
    counts = np.array([len(bank.by_class[int(c)]) for c in classes], dtype=np.float64)
    prob = counts**power
    return classes, prob / prob.sum()


def uniform_images(
    bank: SeriesBank,
    *,
    side: int,
    batch: int,
    rng: np.random.Generator,
    season: Season,
    validity: bool = True,
    monthly_share: float = 0.5,
    class_power: float = 0.5,
    pixel_noise: float = 0.03,
    field_sd: float = 0.05,
    max_shift: int = 1,
    full_season_share: float = 0.0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless batches of "uniform images": each a ``side`` x ``side`` patch whose pixels all
    share one real series, as :mod:`vision.classify` presents a parcel to the segmenter.

    Per image: a class drawn by :func:`class_weights` (``class_power``), a series of that
    class, its monthly form with probability ``monthly_share``, a shift of up to
    ``max_shift`` dekads (seasons differ a little between years and regions), a smooth
    within-field gain (:func:`vision.realdata.smooth_field`, sd ``field_sd``) and per-pixel,
    per-dekad noise (sd ``pixel_noise``), then the whole season with probability
    ``full_season_share`` (as ``cropcredit classify-samples`` reads an extraction by default),
    else a random as_of (:func:`sample_as_of`).

    Yields:
        (x, y): x (batch, in_channels, side, side) float32 from :func:`model_input`, y (batch,
        side, side) int64 class index (the whole image is the series' class).

    Raises:
        ValueError: the bank has no class with enough series.
    """
    if not bank.by_class:
        raise ValueError("the series bank has no class with enough series to sample")
    classes, prob = class_weights(bank, class_power)
    while True:
        xs, ys = [], []
        for _ in range(batch):
            c = int(classes[rng.choice(len(classes), p=prob)])
            members = bank.by_class[c]
            i = int(members[int(rng.integers(len(members)))])
            if rng.random() < monthly_share:
                series, obs = bank.monthly_data[i], bank.monthly_observed[i]
            else:
                series, obs = bank.data[i], bank.observed[i]
            shift = int(rng.integers(-max_shift, max_shift + 1)) if max_shift else 0
            if shift:
                series, obs = _shift(series, obs, shift)
            t, nb = series.shape
            gain = smooth_field(rng, (side, side), int(rng.integers(4, 16)), field_sd)
            band = 1.0 + rng.normal(0.0, field_sd / 3, size=(1, nb, 1, 1)).astype(np.float32)
            noise = 1.0 + rng.normal(0.0, pixel_noise, size=(t, nb, side, side))
            cube = series[:, :, None, None] * gain[None, None] * band * noise.astype(np.float32)
            observed = np.broadcast_to(obs[:, None, None], (t, side, side))
            full = rng.random() < full_season_share
            comp = truncate_season(cube, observed, t - 1 if full else sample_as_of(rng, season))
            xs.append(model_input(comp, validity=validity))
            ys.append(np.full((side, side), c, dtype=np.int64))
        yield np.stack(xs), np.stack(ys)


def _shift(series: np.ndarray, observed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, C) series and (T,) observed moved ``k`` dekads later (earlier if < 0), NaN-padded."""
    out = np.full_like(series, np.nan)
    obs = np.zeros_like(observed)
    if k > 0:
        out[k:], obs[k:] = series[:-k], observed[:-k]
    else:
        out[:k], obs[:k] = series[-k:], observed[-k:]
    return out, obs
