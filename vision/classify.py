"""Crop type of parcel time series with the shipped segmenter (no imagery needed).

A parcel's series (one value per band and dekad, e.g. from a WorldCereal extraction read by
:func:`geo.samples.read_samples`) is classified as an image whose pixels all share that series:
:func:`vision.model.model_input` turns each series into the model's channels, the channels are
laid over a uniform ``size`` x ``size`` block, the segmenter runs on a batch of such blocks and
the calibrated probabilities ``softmax(logits / T)`` are averaged over the block's pixels, with
T = ``seg.series_temperature`` (fitted on real parcels through this path). The
block is larger than the U-Net's downsampling (``cfg.size_multiple``), so the network sees the
inside of a field as it does in a scene.

Frames: series ``data`` (N, T, C) reflectance 0-1, NaN missing, T = the 36 dekads of the
season (1 Nov - 31 Oct), C = :data:`geo.types.BANDS`; probabilities (N, K) over
:data:`geo.types.CROPS`, each row summing to 1.

In season, ``as_of`` truncates the series as a composite made on that date would be: values
after each sample's last observed dekad up to ``as_of`` become missing
(:func:`vision.dataset.truncate_season`), so later dekads and gap filling across ``as_of``
never leak in.

Output table (:func:`classify_samples`, one row per sample): ``sample_id``, ``crop`` (the
class of highest probability), ``confidence`` (that probability, 0-1), then ``p_<class>`` for
every class of :data:`geo.types.CROPS`.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import torch

from geo.errors import CropCreditError, ModelError
from geo.samples import SampleSeries
from geo.types import BANDS, CROPS
from vision.dataset import truncate_season
from vision.model import Segmenter

__all__ = [
    "OUTPUT_COLUMNS",
    "OutputFormatError",
    "as_of_index",
    "classify_samples",
    "classify_series",
    "write_table",
]

log = logging.getLogger(__name__)

#: Columns of the classification table, in order.
OUTPUT_COLUMNS: Final[tuple[str, ...]] = (
    "sample_id",
    "crop",
    "confidence",
    *(f"p_{c}" for c in CROPS),
)
#: Side of the uniform block a series is laid over (pixels).
DEFAULT_BLOCK: Final[int] = 16


class OutputFormatError(CropCreditError, ValueError):
    """The output path has an extension the classifier cannot write."""


def as_of_index(season_dekads: list[dt.date], as_of: dt.date) -> int:
    """Index of the last dekad starting on or before ``as_of`` (-1 before the season)."""
    starts = np.array([d.toordinal() for d in season_dekads])
    return int(np.searchsorted(starts, as_of.toordinal(), side="right")) - 1


def classify_series(
    seg: Segmenter,
    data: np.ndarray,
    observed: np.ndarray | None = None,
    *,
    as_of_dekad: int | None = None,
    block: int = DEFAULT_BLOCK,
    batch: int = 64,
) -> np.ndarray:
    """Calibrated class probabilities of parcel series.

    Args:
        seg: a loaded segmenter (:func:`vision.model.load_segmenter`).
        data: (N, T, C) reflectance 0-1, NaN missing, T = ``seg.cfg.n_steps`` dekads, C in
            :data:`geo.types.BANDS` order.
        observed: (N, T) bool clear observations (before gap filling); needed with
            ``as_of_dekad`` to drop gap-filled values past it (default: every finite dekad).
        as_of_dekad: last dekad index with information (None: the whole season).
        block: side of the uniform block each series is laid over (rounded up to a multiple
            of ``seg.cfg.size_multiple``).
        batch: series per forward pass.

    Returns:
        (N, K) float32 probabilities over :data:`geo.types.CROPS`; rows sum to 1.

    Raises:
        ModelError: ``data`` does not have the segmenter's T or the 10 bands.
        ValueError: bad ``block`` or ``batch``.
    """
    cfg = seg.cfg
    if data.ndim != 3 or data.shape[1:] != (cfg.n_steps, len(BANDS)):
        raise ModelError(
            f"series have shape {data.shape}; this segmenter expects (N, {cfg.n_steps}, "
            f"{len(BANDS)}) reflectance on the season's dekads (geo.samples.read_samples)"
        )
    if block < 1 or batch < 1:
        raise ValueError(f"block={block}, batch={batch}: both must be >= 1")
    n = data.shape[0]
    k = cfg.classes
    if n == 0:
        return np.zeros((0, k), dtype=np.float32)
    # The N series as an N x 1 image: (T, C, N, 1).
    cube = np.ascontiguousarray(data.transpose(1, 2, 0)[:, :, :, None], dtype=np.float32)
    if as_of_dekad is not None:
        obs = np.isfinite(data).all(axis=2) if observed is None else np.asarray(observed, bool)
        cube = truncate_season(cube, obs.T[:, :, None], as_of_dekad)
    x = seg.prepare(cube)[:, :, 0].T  # (N, Cin)
    mult = cfg.size_multiple
    side = -(-max(block, mult) // mult) * mult
    out = np.empty((n, k), dtype=np.float32)
    model = seg.model.eval()
    temperature = seg.series_temperature
    with torch.inference_mode():
        for i in range(0, n, batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch]))
            inp = xb[:, :, None, None].expand(-1, -1, side, side).contiguous()
            proba = torch.softmax(model(inp).float() / temperature, dim=1)
            out[i : i + len(xb)] = proba.mean(dim=(2, 3)).numpy()
    out /= out.sum(axis=1, keepdims=True)
    log.debug("classified %d series on %dx%d blocks", n, side, side)
    return out


def classify_samples(
    seg: Segmenter,
    series: SampleSeries,
    *,
    as_of: dt.date | None = None,
    block: int = DEFAULT_BLOCK,
    batch: int = 64,
) -> pd.DataFrame:
    """One row per sample (columns :data:`OUTPUT_COLUMNS`): predicted crop and probabilities.

    Args:
        seg: a loaded segmenter.
        series: parcel series on a season's dekads (:func:`geo.samples.read_samples`).
        as_of: classify with what was known on this date (None: the whole season).
        block, batch: see :func:`classify_series`.

    Raises:
        ModelError: the series do not fit the segmenter.
        ValueError: ``as_of`` is before the series' season.
    """
    dekads = series.season.dekads()
    a_idx = None
    if as_of is not None:
        a_idx = as_of_index(dekads, as_of)
        if a_idx < 0:
            raise ValueError(
                f"as_of {as_of} is before season {series.season} ({dekads[0]}); pass a date "
                "inside the season the samples cover"
            )
    proba = classify_series(
        seg, series.data, series.observed, as_of_dekad=a_idx, block=block, batch=batch
    )
    best = proba.argmax(axis=1)
    table = pd.DataFrame(
        {
            "sample_id": series.sample_ids.astype(str),
            "crop": np.array([CROPS[i] for i in best], dtype=object),
            "confidence": proba[np.arange(len(best)), best].astype(np.float64),
            **{f"p_{c}": proba[:, j].astype(np.float64) for j, c in enumerate(CROPS)},
        },
        columns=list(OUTPUT_COLUMNS),
    )
    log.info(
        "classified %d samples of season %s%s (model %s): %s",
        len(table),
        series.season,
        f" as of {as_of}" if as_of else "",
        seg.version,
        table["crop"].value_counts().to_dict(),
    )
    return table


def write_table(table: pd.DataFrame, path: Path) -> Path:
    """Write ``table`` as CSV (``.csv``) or Parquet (``.parquet``/``.pq``) by extension.

    Raises:
        OutputFormatError: another extension.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise OutputFormatError(
            f"cannot write {path}: unknown extension {path.suffix!r}; name the output "
            "*.csv or *.parquet"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)
    return path
