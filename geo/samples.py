"""Parcel time series in the WorldCereal extraction layout, on the season's dekad grid.

Input (long format, Parquet or CSV): one row per sample x date with ``sample_id``,
``timestamp`` and the Sentinel-2 L2A bands as ``S2-L2A-B02`` ... ``S2-L2A-B12`` (or bare
``B02`` ...), uint16 reflectance x 10000 with 65535 (or 0, or empty) as nodata. Optional:
``ewoc_code`` (the label), ``lon``/``lat`` (the parcel centroid). Dates may be 10-day
(dekad starts), monthly (month starts) or irregular acquisition dates.

Output frame: :class:`SampleSeries` ``data`` is (N, T, C) float32 reflectance 0-1 on the 36
dekads of a :class:`~geo.types.Season` with C = :data:`geo.types.BANDS`, NaN where missing;
``observed`` (N, T) is True where a clear value fell in that dekad. A row stamped with the
start of a compositing period stands for the middle of that period: a monthly value stamped
1 May goes to the dekad of 16 May, a dekad value stamped 11 May to that dekad. The period is
monthly when every stamp of the file is a 1st of a month, a dekad when every stamp is a 1st,
11th or 21st (so cloudy periods left out of a series change nothing), else each sample's
shortest date step when >= 10 days (irregular acquisition dates are not shifted).
Several values in one dekad are reduced to their median. Runs of <= ``max_gap``
missing dekads between observations are filled linearly (:func:`geo.composite.fill_gaps`,
the same rule as image composites). B8A, when absent or all nodata (as in the WorldCereal
France extraction), is taken from B08 (both near infrared; B8A is the narrower band).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from geo.composite import fill_gaps
from geo.errors import CropCreditError
from geo.legend import crops_for_codes
from geo.types import BANDS, CROP_INDEX, REFLECTANCE_SCALE, Season

__all__ = [
    "SampleError",
    "SampleSeries",
    "read_samples",
    "season_of",
    "spatial_blocks",
    "split_by_block",
]

log = logging.getLogger(__name__)

_NODATA_DN: Final[int] = 65535
_PREFIX: Final[str] = "S2-L2A-"


class SampleError(CropCreditError):
    """A samples file cannot be read as parcel time series."""


@dataclass(frozen=True, eq=False)
class SampleSeries:
    """Parcel time series on a season's dekad grid (see the module docstring for the frame).

    Attributes:
        sample_ids: (N,) str.
        data: (N, T, C) float32 reflectance 0-1, NaN where missing after gap filling.
        observed: (N, T) bool, a clear value fell in that dekad (before gap filling).
        season: the season whose 36 dekads are the time axis.
        ewoc_code: (N,) int64 WorldCereal code, or None when the file has no labels.
        crop: (N,) str class name from ``data/legend.csv`` (``"ignore"`` for vague codes),
            or None when the file has no labels.
        lonlat: (N, 2) float64 centroid lon/lat, or None.
    """

    sample_ids: np.ndarray
    data: np.ndarray
    observed: np.ndarray
    season: Season
    ewoc_code: np.ndarray | None = None
    crop: np.ndarray | None = None
    lonlat: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.sample_ids.shape[0])

    def class_index(self) -> np.ndarray:
        """(N,) int64 class index of :data:`geo.types.CROPS` of each sample's crop.

        Raises:
            ValueError: the samples have no labels, or one is ``"ignore"`` (drop those first:
                :func:`vision.realdata.drop_ignored`).
        """
        if self.crop is None:
            raise ValueError("samples have no crop labels (no ewoc_code column)")
        try:
            return np.array([CROP_INDEX[str(c)] for c in self.crop], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"crop {exc} is not a class of the legend; drop it first") from None

    def subset(self, index: np.ndarray) -> SampleSeries:
        """The samples at ``index`` (bool mask or integer positions)."""
        return SampleSeries(
            sample_ids=self.sample_ids[index],
            data=self.data[index],
            observed=self.observed[index],
            season=self.season,
            ewoc_code=None if self.ewoc_code is None else self.ewoc_code[index],
            crop=None if self.crop is None else self.crop[index],
            lonlat=None if self.lonlat is None else self.lonlat[index],
        )


def _band_columns(columns: pd.Index, path: Path) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for band in BANDS:
        for name in (f"{_PREFIX}{band}", band):
            if name in columns:
                found[band] = name
                break
        else:
            found[band] = None
    missing = [b for b, c in found.items() if c is None and b != "B8A"]
    if missing:
        raise SampleError(
            f"{path}: band columns {missing} missing; expected {_PREFIX}B02 ... {_PREFIX}B12 "
            "(uint16 reflectance x 10000) as in the WorldCereal extractions"
        )
    return found


#: At most this many bad cells are named in one error.
_SHOWN_PROBLEMS: Final[int] = 10


def _check_cells(frame: pd.DataFrame, bands: list[str], path: Path, csv: bool) -> None:
    """Refuse the file when a band cell is text, negative or infinite, or an ``ewoc_code`` is
    blank or not an integer: a training file is never silently thinned or relabelled.

    Blank band cells, 0 and 65535 stay nodata (the extraction's convention). Each bad cell
    is named with its line (CSV: header = 1) or row (Parquet: 0-based), column and value.

    Raises:
        SampleError: every bad cell (the first :data:`_SHOWN_PROBLEMS`) and the fix.
    """
    where = (lambda i: f"line {int(i) + 2}") if csv else (lambda i: f"row {int(i)}")
    problems: list[str] = []
    for col in bands:
        raw = frame[col]
        values = pd.to_numeric(raw, errors="coerce")
        text = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        with np.errstate(invalid="ignore"):
            negative = values < 0
            infinite = values.abs() == np.inf
        for mask, what in ((text, "is not a number"), (negative, "is negative"),
                           (infinite, "is not finite")):  # fmt: skip
            for i in frame.index[mask.to_numpy()][:_SHOWN_PROBLEMS]:
                cell = raw.loc[i]
                shown = repr(cell) if isinstance(cell, str) else str(cell)
                problems.append(f"{where(i)}, column {col}: {shown} {what}")
    if "ewoc_code" in frame.columns:
        raw = frame["ewoc_code"]
        codes = pd.to_numeric(raw, errors="coerce")
        with np.errstate(invalid="ignore"):
            bad = codes.isna() | (codes != np.floor(codes)) | (codes.abs() == np.inf)
        for i in frame.index[bad.to_numpy()][:_SHOWN_PROBLEMS]:
            cell = raw.loc[i]
            shown = "blank" if pd.isna(cell) else repr(cell) if isinstance(cell, str) else str(cell)
            problems.append(f"{where(i)}, column ewoc_code: {shown} is not an integer code")
    if problems:
        more = len(problems) - _SHOWN_PROBLEMS
        raise SampleError(
            f"{path}: {len(problems)} bad cell(s): "
            f"{'; '.join(problems[:_SHOWN_PROBLEMS])}{f' and {more} more' if more > 0 else ''}; "
            "band values are uint16 reflectance x 10000 (0, 65535 or blank for nodata) and "
            "ewoc_code a WorldCereal integer code (see data/legend.csv): fix the cells or drop "
            "the rows"
        )


def _half_period_days(frame: pd.DataFrame) -> np.ndarray:
    """Days from each row's stamp to the middle of the compositing period it stands for.

    The period comes from the calendar when the file says it (every stamp on the 1st of a
    month: monthly composites; every stamp on the 1st, 11th or 21st: dekads), so rows left out
    of a series (cloudy periods) do not change it; otherwise it is each sample's shortest step
    between dates when >= 10 days (else acquisition dates, no shift).
    """
    stamps = frame["timestamp"]
    days = stamps.dt.day
    if (days == 1).all() and stamps.dt.to_period("M").nunique() > 1:
        return (stamps.dt.days_in_month // 2).to_numpy(dtype=np.int64)
    if days.isin((1, 11, 21)).all():
        return np.full(len(frame), 5, dtype=np.int64)
    gaps = stamps.groupby(frame["sample_id"]).diff().dt.days
    step = gaps.where(gaps > 0).groupby(frame["sample_id"]).transform("min")
    step = step.fillna(0).to_numpy(dtype=np.int64)
    return np.where(step >= 10, step // 2, 0)


def season_of(dates: pd.Series) -> Season:
    """The season (1 Nov - 31 Oct) holding the most of ``dates``."""
    ts = pd.to_datetime(dates)
    years = ts.dt.year + (ts.dt.month >= 11).astype(int)
    return Season(int(years.value_counts().index[0]))


def read_samples(path: Path, season: Season | None = None, max_gap: int = 3) -> SampleSeries:
    """Read parcel time series (WorldCereal long format) onto the season's dekad grid.

    Args:
        path: Parquet (``.parquet``/``.pq``) or CSV file.
        season: the season to lay the series on; default: the one holding most rows.
        max_gap: longest run of empty dekads filled by linear interpolation.

    Raises:
        SampleError: unreadable file, missing columns, a band cell that is text, negative or
            infinite, a blank or non-integer ``ewoc_code`` (each named with its line), bad
            dates, no sample in the season.
        geo.legend.LegendError: an ``ewoc_code`` that is not in ``data/legend.csv``.
    """
    path = Path(path)
    csv = path.suffix.lower() not in (".parquet", ".pq", ".geoparquet")
    try:
        if not csv:
            frame = pd.read_parquet(path)
        else:
            # blank lines kept (then dropped) so that a row's index + 2 is its line in the file
            frame = pd.read_csv(path, skip_blank_lines=False).dropna(how="all")
    except (OSError, ValueError, ImportError) as exc:
        raise SampleError(f"cannot read samples file {path}: {exc}") from exc
    for col in ("sample_id", "timestamp"):
        if col not in frame.columns:
            raise SampleError(
                f"{path}: column {col!r} missing; a samples file is long format with "
                "sample_id, timestamp and S2-L2A-B02 ... B12"
            )
    if frame.empty:
        raise SampleError(f"{path}: no rows")
    bands = _band_columns(frame.columns, path)
    _check_cells(frame, [c for c in bands.values() if c is not None], path, csv)
    try:
        stamps = pd.to_datetime(frame["timestamp"]).dt.tz_localize(None).dt.normalize()
    except (ValueError, TypeError) as exc:
        raise SampleError(f"{path}: timestamp column is not dates ({exc})") from exc
    frame = frame.assign(timestamp=stamps, sample_id=frame["sample_id"].astype(str))
    frame = frame.sort_values(["sample_id", "timestamp"], kind="stable").reset_index(drop=True)

    centre = frame["timestamp"] + pd.to_timedelta(_half_period_days(frame), unit="D")
    season = season or season_of(centre)
    dekads = season.dekads()
    edges = np.array([np.datetime64(d) for d in [*dekads, season.end + dt.timedelta(days=1)]])
    pos = np.searchsorted(edges, centre.to_numpy().astype("datetime64[D]"), side="right") - 1
    in_season = (pos >= 0) & (pos < len(dekads))

    ids, inverse = np.unique(frame["sample_id"].to_numpy(), return_inverse=True)
    n, t_len = len(ids), len(dekads)
    dn = np.full((len(frame), len(BANDS)), np.nan, dtype=np.float32)
    for i, band in enumerate(BANDS):
        band_col = bands[band]
        if band_col is None:
            continue
        values = pd.to_numeric(frame[band_col], errors="coerce").to_numpy(np.float64, copy=True)
        values[(values >= _NODATA_DN) | (values <= 0)] = np.nan
        dn[:, i] = values
    b8a, b08 = BANDS.index("B8A"), BANDS.index("B08")
    if np.isnan(dn[:, b8a]).all():
        log.info("%s: B8A absent or all nodata; using B08 in its place", path.name)
        dn[:, b8a] = dn[:, b08]
    clear = ~np.isnan(dn).any(axis=1) & in_season
    refl = dn * np.float32(REFLECTANCE_SCALE)

    data = np.full((n, t_len, len(BANDS)), np.nan, dtype=np.float32)
    observed = np.zeros((n, t_len), dtype=bool)
    rows = np.flatnonzero(clear)
    key = inverse[rows] * t_len + pos[rows]
    order = np.argsort(key, kind="stable")
    key, rows = key[order], rows[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    flat = data.reshape(n * t_len, len(BANDS))
    for s, e in zip(starts, ends, strict=True):
        flat[key[s]] = refl[rows[s]] if e - s == 1 else np.median(refl[rows[s:e]], axis=0)
    observed.reshape(-1)[key[starts]] = True
    if not observed.any():
        raise SampleError(
            f"{path}: no clear observation falls in season {season} "
            f"({dekads[0]} - {season.end}); pass the season the samples cover"
        )
    # fill_gaps works on (T, C, H, W): samples are a 1 x N image.
    cube = np.ascontiguousarray(data.transpose(1, 2, 0)[:, :, None, :])
    fill_gaps(cube, observed.T[:, None, :], max_gap)
    data = np.ascontiguousarray(cube[:, :, 0, :].transpose(2, 0, 1))

    first = frame.groupby("sample_id", sort=True).first()
    codes = crop = lonlat = None
    if "ewoc_code" in frame.columns:
        codes = first["ewoc_code"].to_numpy(dtype=np.int64)
        crop = crops_for_codes(codes)
    if {"lon", "lat"} <= set(frame.columns):
        lonlat = first[["lon", "lat"]].to_numpy(dtype=np.float64)
    empty = ~observed.any(axis=1)
    if empty.any():
        log.warning(
            "%s: %d of %d samples have no clear observation in season %s (e.g. %s)",
            path.name,
            int(empty.sum()),
            n,
            season,
            ids[np.flatnonzero(empty)[0]],
        )
    return SampleSeries(
        sample_ids=ids.astype(str),
        data=data,
        observed=observed,
        season=season,
        ewoc_code=codes,
        crop=crop,
        lonlat=lonlat,
    )


def spatial_blocks(lonlat: np.ndarray, block_km: float = 10.0) -> np.ndarray:
    """(N,) int64 id of the ``block_km`` square (on a local equirectangular grid) of each point."""
    lat0 = float(np.nanmean(lonlat[:, 1])) if len(lonlat) else 0.0
    kx = 111.32 * np.cos(np.radians(lat0)) / block_km
    bx = np.floor(lonlat[:, 0] * kx).astype(np.int64)
    by = np.floor(lonlat[:, 1] * 110.57 / block_km).astype(np.int64)
    return bx * 1_000_003 + by


def split_by_block(
    lonlat: np.ndarray,
    fractions: dict[str, float],
    seed: int = 0,
    block_km: float = 10.0,
) -> dict[str, np.ndarray]:
    """Split samples into named parts, whole spatial blocks at a time (never by parcel pixel).

    Blocks are shuffled with ``seed`` and dealt greedily to the part furthest below its share
    of samples, so parts get about ``fractions`` of the samples and no block straddles two.

    Returns:
        part name -> (N,) bool mask; the masks partition the samples.
    """
    total = sum(fractions.values())
    if not fractions or total <= 0 or any(f < 0 for f in fractions.values()):
        raise ValueError(f"fractions {fractions} must be >= 0 and sum to more than 0")
    blocks = spatial_blocks(lonlat, block_km)
    ids, inverse, counts = np.unique(blocks, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(ids))
    names = list(fractions)
    target = np.array([fractions[k] / total for k in names]) * len(blocks)
    got = np.zeros(len(names))
    part_of_block = np.empty(len(ids), dtype=np.int64)
    for b in order:
        k = int(np.argmax(target - got))
        part_of_block[b] = k
        got[k] += counts[b]
    part = part_of_block[inverse]
    return {name: part == k for k, name in enumerate(names)}
