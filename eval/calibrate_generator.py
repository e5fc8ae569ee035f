"""Fit the generator's crop curves to real Sentinel-2 data and write the data/ tables.

    python -m eval.calibrate_generator [--shared ../shared/data]

Reads the WorldCereal France 2023 dekad samples (500 real LPIS parcels, western France) from
``../shared/data/worldcereal`` (never copied into the repository), maps ``ewoc_code`` to the
project legend with the legend's level columns, takes per crop the median NDVI per dekad of
season 2023 (1 Nov 2022 - 31 Oct 2023, the same 36 dekads as ``Season.dekads()``) and fits
the curve of :mod:`geo.synth.phenology` to it (bounded least squares, pulled towards agronomic
priors). Writes:

* ``data/crop_calendar.csv``: curve parameters and calendar dates (days of season) per crop;
  crops with fewer than ``MIN_PARCELS`` real parcels keep their priors;
* ``data/reference_curves.csv``: per crop and dekad, mean and sd of NDVI, NDRE (B08/B05) and
  NDMI (B08/B11) over real parcels; where a crop has too few real parcels, the generator's
  curve with sd 0.08 (NDVI) and 0.06 (NDRE, NDMI);
* ``data/stage_calendar.csv``: credit decision dates per region.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from geo.synth.phenology import (
    CURVE_COLUMNS,
    DATA_DIR,
    FOREST_CURVE,
    derived_dates,
    ndvi_curve,
    sigmoid,
)
from geo.synth.spectra import indices, mix_reflectance
from geo.types import CROPS, Season

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
REAL_SEASON = Season(2023)
MIN_PARCELS = 5
BANDS_REAL = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12")
NODATA_REAL = 65535
#: Blue reflectance (DN) above which a real composite is taken as cloud-contaminated.
CLOUD_BLUE = 1200

#: Agronomic priors (days of season, day 0 = 1 Nov) for Poitou; dry_max = residue share.
PRIORS: dict[str, dict[str, float]] = {
    "winter_cereals": dict(
        ndvi_base=0.22,
        ndvi_cover=0.0,
        cover_end=0,
        ndvi_winter=0.45,
        emergence=20,
        ndvi_peak=0.85,
        greenup=115,
        rise_days=12,
        senescence=225,
        fall_days=10,
        ndvi_regrow=0.1,
        regrowth=300,
        regrow_end=400,
        dry_max=0.9,
    ),
    "spring_cereals": dict(
        ndvi_base=0.22,
        ndvi_cover=0.15,
        cover_end=120,
        ndvi_winter=0.22,
        emergence=135,
        ndvi_peak=0.82,
        greenup=160,
        rise_days=10,
        senescence=245,
        fall_days=9,
        ndvi_regrow=0.1,
        regrowth=300,
        regrow_end=400,
        dry_max=0.9,
    ),
    "maize": dict(
        ndvi_base=0.2,
        ndvi_cover=0.2,
        cover_end=150,
        ndvi_winter=0.2,
        emergence=200,
        ndvi_peak=0.85,
        greenup=235,
        rise_days=10,
        senescence=300,
        fall_days=12,
        ndvi_regrow=0.05,
        regrowth=345,
        regrow_end=400,
        dry_max=0.7,
    ),
    "rapeseed": dict(
        ndvi_base=0.22,
        ndvi_cover=0.0,
        cover_end=0,
        ndvi_winter=0.65,
        emergence=-30,
        ndvi_peak=0.8,
        greenup=120,
        rise_days=12,
        senescence=210,
        fall_days=10,
        ndvi_regrow=0.15,
        regrowth=290,
        regrow_end=335,
        dry_max=0.8,
    ),
    "sunflower": dict(
        ndvi_base=0.2,
        ndvi_cover=0.15,
        cover_end=140,
        ndvi_winter=0.2,
        emergence=190,
        ndvi_peak=0.78,
        greenup=215,
        rise_days=10,
        senescence=275,
        fall_days=10,
        ndvi_regrow=0.05,
        regrowth=330,
        regrow_end=400,
        dry_max=0.8,
    ),
    "soybean": dict(
        ndvi_base=0.2,
        ndvi_cover=0.15,
        cover_end=150,
        ndvi_winter=0.2,
        emergence=205,
        ndvi_peak=0.85,
        greenup=230,
        rise_days=9,
        senescence=300,
        fall_days=9,
        ndvi_regrow=0.05,
        regrowth=340,
        regrow_end=400,
        dry_max=0.8,
    ),
    "potato": dict(
        ndvi_base=0.2,
        ndvi_cover=0.1,
        cover_end=140,
        ndvi_winter=0.2,
        emergence=180,
        ndvi_peak=0.82,
        greenup=200,
        rise_days=9,
        senescence=260,
        fall_days=10,
        ndvi_regrow=0.05,
        regrowth=320,
        regrow_end=400,
        dry_max=0.5,
    ),
    "grassland": dict(
        ndvi_base=0.5,
        ndvi_cover=0.0,
        cover_end=0,
        ndvi_winter=0.7,
        emergence=-60,
        ndvi_peak=0.8,
        greenup=140,
        rise_days=12,
        senescence=230,
        fall_days=15,
        ndvi_regrow=0.2,
        regrowth=310,
        regrow_end=400,
        dry_max=0.5,
    ),
    "other_annual": dict(
        ndvi_base=0.25,
        ndvi_cover=0.1,
        cover_end=110,
        ndvi_winter=0.25,
        emergence=135,
        ndvi_peak=0.75,
        greenup=165,
        rise_days=12,
        senescence=250,
        fall_days=10,
        ndvi_regrow=0.1,
        regrowth=310,
        regrow_end=400,
        dry_max=0.8,
    ),
    "permanent": dict(
        ndvi_base=0.3,
        ndvi_cover=0.0,
        cover_end=0,
        ndvi_winter=0.3,
        emergence=150,
        ndvi_peak=0.6,
        greenup=185,
        rise_days=12,
        senescence=330,
        fall_days=15,
        ndvi_regrow=0.0,
        regrowth=400,
        regrow_end=400,
        dry_max=0.2,
    ),
}
#: Crops whose canopy starts in autumn (winter plateau); the others have ndvi_winter = base.
AUTUMN_SOWN = ("winter_cereals", "rapeseed", "grassland")
SD_DEFAULT = {"ndvi": 0.08, "ndre": 0.06, "ndmi": 0.06}


def legend_crop(row: pd.Series) -> str | None:
    """Project class of one legend row (None = not used for calibration)."""
    l2, l3 = str(row.get("level_2", "")), str(row.get("level_3", ""))
    label = str(row.get("label_full", ""))
    if label == "non_cropland_herbaceous":
        return "non_crop"
    if l2 == "cereals":
        if l3 == "maize":
            return "maize"
        if l3 == "sorghum":
            return "other_annual"
        return "spring_cereals" if label.startswith("spring_") else "winter_cereals"
    for key, crop in (
        ("rapeseed", "rapeseed"),
        ("sunflower", "sunflower"),
        ("soy", "soybean"),
        ("potato", "potato"),
    ):
        if key in label:
            return crop
    if l2 in (
        "grasslands",
        "grass_fodder_crops",
        "not_cultivated_fallow",
        "grassland_with_tree_shrub",
    ):
        return "grassland"
    if l2 in ("fruit_nuts", "permanent_tree_shrub_flowers", "nurseries"):
        return "permanent"
    if str(row.get("level_1", "")) == "temporary_crops":
        return "other_annual"
    return None


def load_real(shared: Path) -> pd.DataFrame:
    """Real samples of season 2023 in long format: sample_id, crop, dekad (0..35), ndvi, ndre,
    ndmi (65535 is nodata; cloudy composites, B02 > 0.12, and one-dekad NDVI dips are dropped)."""
    wc = shared / "worldcereal"
    cols = ["sample_id", "timestamp", "ewoc_code", *(f"S2-L2A-{b}" for b in BANDS_REAL)]
    df = pd.read_parquet(wc / "france2023_dekad_samples.parquet", columns=cols)
    lg = pd.read_csv(wc / "crop_type_class_mappings.csv", sep=";", encoding="utf-8-sig")
    lg["code"] = lg["ewoc_code"].str.replace("-", "").astype("int64")
    mapping = {int(r["code"]): legend_crop(r) for _, r in lg.iterrows()}
    df["crop"] = df["ewoc_code"].map(mapping)
    b = {x: df[f"S2-L2A-{x}"].to_numpy(np.float64) for x in ("B04", "B05", "B08", "B11")}
    bad = np.zeros(len(df), bool)
    for x in BANDS_REAL:
        v = df[f"S2-L2A-{x}"].to_numpy()
        bad |= (v == NODATA_REAL) | (v == 0)
    bad |= df["S2-L2A-B02"].to_numpy() > CLOUD_BLUE  # bright blue: residual cloud or haze
    day = pd.to_datetime(df["timestamp"]).dt.date
    start, end = REAL_SEASON.start, REAL_SEASON.end
    keep = ~bad & df["crop"].notna().to_numpy() & ((day >= start) & (day <= end)).to_numpy()
    out = pd.DataFrame(
        {
            "sample_id": df["sample_id"].to_numpy()[keep],
            "crop": df["crop"].to_numpy()[keep],
            "dekad": [REAL_SEASON.dekad_index(d) for d in day[keep]],
            "ndvi": ((b["B08"] - b["B04"]) / (b["B08"] + b["B04"]))[keep],
            "ndre": ((b["B08"] - b["B05"]) / (b["B08"] + b["B05"]))[keep],
            "ndmi": ((b["B08"] - b["B11"]) / (b["B08"] + b["B11"]))[keep],
        }
    )
    return despike(out)


def despike(real: pd.DataFrame, drop: float = 0.12) -> pd.DataFrame:
    """Drop residual clouds and shadows of the real dekad composites: observations whose NDVI
    is ``drop`` below both valid neighbours of the same parcel (one-dekad dips)."""
    real = real.sort_values(["sample_id", "dekad"]).reset_index(drop=True)
    g = real.groupby("sample_id")["ndvi"]
    prev, nxt = g.shift(1), g.shift(-1)
    dip = (real["ndvi"] < prev - drop) & (real["ndvi"] < nxt - drop)
    return real[~dip.fillna(False)].reset_index(drop=True)


def fill_gaps(per: np.ndarray, max_gap: int = 3) -> np.ndarray:
    """Fill gaps of <= ``max_gap`` dekads linearly in each row of (P, 36) NDVI (NaN = none),
    as the pipeline's dekad compositing does."""
    out = per.copy()
    d = np.arange(per.shape[1])
    for r in range(per.shape[0]):
        ok = np.isfinite(per[r])
        if ok.sum() < 2:
            continue
        idx = np.flatnonzero(ok)
        for a, b in zip(idx[:-1], idx[1:], strict=True):
            if 1 < b - a <= max_gap + 1:
                out[r, a + 1 : b] = np.interp(d[a + 1 : b], [a, b], [per[r, a], per[r, b]])
    return out


def median_curve(per: np.ndarray, min_count: int = 3) -> np.ndarray:
    """Median over parcels per dekad of gap-filled (P, 36) NDVI; NaN where < ``min_count``."""
    filled = fill_gaps(per)
    enough = np.sum(np.isfinite(filled), axis=0) >= min_count
    out = np.full(per.shape[1], np.nan)
    for d in np.flatnonzero(enough):
        out[d] = float(np.nanmedian(filled[:, d]))
    return out


def real_median_curves(real: pd.DataFrame, min_parcels: int = MIN_PARCELS) -> dict[str, np.ndarray]:
    """Median NDVI per dekad (36,) per crop with >= ``min_parcels`` parcels (NaN = no data):
    per parcel the dekad NDVI with gaps of <= 3 dekads filled linearly, then the median."""
    out: dict[str, np.ndarray] = {}
    for crop, g in real.groupby("crop"):
        if g["sample_id"].nunique() < min_parcels:
            continue
        wide = g.pivot_table(index="sample_id", columns="dekad", values="ndvi", aggfunc="median")
        per = wide.reindex(columns=range(36)).to_numpy(np.float64)
        out[str(crop)] = median_curve(per)
    return out


def _dekad_days() -> np.ndarray:
    from geo.synth.phenology import dekad_days

    return dekad_days(REAL_SEASON)


def fit_curve(crop: str, target: np.ndarray) -> dict[str, float]:
    """Least-squares fit of the curve parameters of ``crop`` to a (36,) NDVI curve."""
    prior = PRIORS[crop]
    t = _dekad_days()
    ok = np.isfinite(target)
    names = list(CURVE_COLUMNS)
    autumn = crop in AUTUMN_SOWN
    x0, lo, hi, scale = [], [], [], []
    for c in names:
        v = float(prior[c])
        if c == "ndvi_winter":
            v = v - prior["ndvi_base"]  # fitted as a gain over base
            x0.append(v)
            lo.append(0.0)
            hi.append(0.6 if autumn else 1e-6)
            scale.append(0.2)
        elif c.startswith("ndvi_"):
            x0.append(v)
            lo.append(0.0)
            hi.append(0.92)
            scale.append(0.15)
        elif c.endswith("_days"):
            x0.append(v)
            lo.append(4.0)
            hi.append(30.0)
            scale.append(8.0)
        elif c == "regrow_end":
            x0.append(v)
            lo.append(290.0)
            hi.append(450.0)
            scale.append(40.0)
        else:
            x0.append(v)
            lo.append(v - 50.0)
            hi.append(v + 50.0)
            scale.append(25.0)
    x0a = np.clip(np.array(x0), np.array(lo) + 1e-9, np.array(hi) - 1e-9)

    def unpack(x: np.ndarray) -> dict[str, float]:
        p = dict(zip(names, map(float, x), strict=True))
        p["ndvi_winter"] = p["ndvi_base"] + p["ndvi_winter"]
        return p

    def resid(x: np.ndarray) -> np.ndarray:
        p = unpack(x)
        model = ndvi_curve(t, {k: np.float64(v) for k, v in p.items()})
        reg = 0.03 * (x - x0a) / np.array(scale)
        return np.concatenate([(model - target)[ok], reg])

    res = least_squares(resid, x0a, bounds=(lo, hi))
    p = unpack(res.x)
    if not autumn:
        p["emergence"] = p["greenup"] - 2.5 * p["rise_days"]
    return p


def generator_indices(
    params: dict[str, float], dry_max: float, season: Season
) -> dict[str, np.ndarray]:
    """NDVI/NDRE/NDMI (36,) of the noise-free generator for one curve (clear sky, no PSF)."""
    t = _dekad_days() if season == REAL_SEASON else _dekad_days()
    p = {k: np.float64(v) for k, v in params.items()}
    nd = ndvi_curve(t, p)
    harvest = params["senescence"] + 2.5 * params["fall_days"]
    dry = (
        dry_max
        * sigmoid((t - params["senescence"]) / params["fall_days"])
        * (1 - sigmoid((t - harvest - 25.0) / 7.0))
    )
    shape = (1, len(t))
    refl = mix_reflectance(nd.reshape(shape), dry.reshape(shape), np.ones(shape), np.zeros(shape))
    return {k: v[0] for k, v in indices(refl).items()}


def build_tables(real: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(crop_calendar, reference_curves) from the real samples (None = priors only)."""
    medians = real_median_curves(real) if real is not None else {}
    season = Season(2026)
    cal_rows, ref_rows = [], []
    for crop in CROPS:
        if crop == "non_crop":
            params, dry = {c: float(v) for c, v in FOREST_CURVE.items()}, 0.0
        else:
            prior = PRIORS[crop]
            dry = float(prior["dry_max"])
            if crop in medians:
                params = fit_curve(crop, medians[crop])
                src = "fit"
            else:
                params = {c: float(prior[c]) for c in CURVE_COLUMNS}
                src = "prior"
            n_real = (
                int(real.loc[real["crop"] == crop, "sample_id"].nunique())
                if real is not None
                else 0
            )
            dates = derived_dates(params, season)
            cal_rows.append(
                {
                    "crop": crop,
                    "sowing": dates["sowing"],
                    "emergence": round(params["emergence"], 1),
                    "peak": dates["peak"],
                    "senescence": round(params["senescence"], 1),
                    "harvest": dates["harvest"],
                    **{
                        c: round(params[c], 4)
                        for c in CURVE_COLUMNS
                        if c not in ("emergence", "senescence")
                    },
                    "dry_max": dry,
                    "source": src,
                    "n_real_parcels": n_real,
                }
            )
        gen = generator_indices(params, dry, season)
        sub = real[real["crop"] == crop] if real is not None else None
        use_real = crop != "non_crop" and crop in medians and sub is not None
        for d in range(36):
            row: dict[str, object] = {"crop": crop, "region": "*", "dekad": d}
            for ix in ("ndvi", "ndre", "ndmi"):
                row[f"{ix}_mean"] = float(gen[ix][d])
                row[f"{ix}_sd"] = SD_DEFAULT[ix]
            row["source"] = "generator"
            ref_rows.append(row)
        if use_real and sub is not None:
            per = sub.groupby(["sample_id", "dekad"])[["ndvi", "ndre", "ndmi"]].mean().reset_index()
            stats = per.groupby("dekad")[["ndvi", "ndre", "ndmi"]].agg(["mean", "std", "size"])
            block = ref_rows[-36:]
            for ix in ("ndvi", "ndre", "ndmi"):
                m = np.full(36, np.nan)
                s = np.full(36, np.nan)
                good = stats[(ix, "size")] >= 3
                idx = stats.index[good].to_numpy()
                m[idx] = stats.loc[good, (ix, "mean")].to_numpy()
                s[idx] = stats.loc[good, (ix, "std")].to_numpy()
                have = np.isfinite(m)
                if have.sum() >= 2:
                    dk = np.arange(36)
                    m = np.interp(dk, dk[have], m[have])
                    s = np.interp(dk, dk[have], s[have])
                    for k in range(36):
                        block[k][f"{ix}_mean"] = float(m[k])
                        block[k][f"{ix}_sd"] = float(max(s[k], 0.02))
                        block[k]["source"] = "real"
    cal = pd.DataFrame(cal_rows)
    ref = pd.DataFrame(ref_rows)
    for c in ref.columns:
        if c.endswith(("_mean", "_sd")):
            ref[c] = ref[c].round(4)
    return cal, ref


def stage_calendar() -> pd.DataFrame:
    """Credit decision dates (MM-DD) per region; the south is about 5 days earlier."""
    base = {
        "pre_sowing": "02-20",
        "sowing": "04-20",
        "vegetative": "05-31",
        "flowering": "06-30",
        "grain_fill": "07-31",
        "harvest": "09-30",
    }
    rows = []
    for region, shift in (("poitou-nord", 0), ("poitou-sud", -5)):
        for stage, mmdd in base.items():
            d = dt.date(2026, int(mmdd[:2]), int(mmdd[3:])) + dt.timedelta(days=shift)
            rows.append({"region": region, "stage": stage, "date": f"{d:%m-%d}"})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=DATA_DIR)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    real = load_real(args.shared) if (args.shared / "worldcereal").exists() else None
    if real is None:
        log.warning("%s not found: writing priors only", args.shared)
    else:
        counts = real.groupby("crop")["sample_id"].nunique()
        log.info("real parcels per crop: %s", counts.to_dict())
    cal, ref = build_tables(real)
    args.out.mkdir(parents=True, exist_ok=True)
    cal.to_csv(args.out / "crop_calendar.csv", index=False)
    ref.to_csv(args.out / "reference_curves.csv", index=False)
    stage_calendar().to_csv(args.out / "stage_calendar.csv", index=False)
    log.info("wrote crop_calendar.csv, reference_curves.csv, stage_calendar.csv to %s", args.out)


if __name__ == "__main__":
    main()
