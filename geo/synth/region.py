"""A synthetic region: parcels, farmers, declarations, events and the per-pixel truth.

CRS: ``cfg.crs`` (UTM, metres; default EPSG:32631, north of Poitiers, western France); areas
in ha; rasters (H, W) on a 10 m grid whose top-left corner is ``cfg.origin``. Regions
``poitou-nord`` / ``poitou-sud`` split the square at its middle northing.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from shapely import affinity
from shapely.geometry import Point, Polygon

from geo.synth.layout import COVER_FOREST, Layout, make_layout
from geo.synth.noise import rng_for
from geo.synth.phenology import (
    CURVE_COLUMNS,
    DATE_COLUMNS,
    FOREST_CURVE,
    CropCalendar,
    load_calendar,
)
from geo.types import CROP_INDEX, Season

log = logging.getLogger(__name__)

REGION_NORTH, REGION_SOUTH = "poitou-nord", "poitou-sud"
#: Share of parcels per true crop (Vienne/Deux-Sevres arable mix).
CROP_SHARES: dict[str, float] = {
    "winter_cereals": 0.30,
    "grassland": 0.14,
    "maize": 0.13,
    "sunflower": 0.12,
    "rapeseed": 0.09,
    "spring_cereals": 0.06,
    "other_annual": 0.05,
    "soybean": 0.04,
    "permanent": 0.04,
    "potato": 0.03,
}
ANNUAL = ("winter_cereals", "spring_cereals", "maize", "rapeseed", "sunflower", "soybean", "potato")
EVENTS = ("none", "drought", "flood")
_FIRST = [
    "Jean",
    "Marie",
    "Pierre",
    "Anne",
    "Michel",
    "Sophie",
    "Philippe",
    "Claire",
    "Alain",
    "Isabelle",
    "Nicolas",
    "Nathalie",
    "Luc",
    "Sylvie",
    "Bernard",
    "Catherine",
    "Eric",
    "Martine",
    "Olivier",
    "Sandrine",
    "Thierry",
    "Valerie",
    "Laurent",
    "Helene",
]
_LAST = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "Andre",
    "Mercier",
    "Guerin",
    "Boucher",
    "Gauthier",
    "Chevalier",
    "Rousseau",
    "Blanchard",
    "Brunet",
    "Renaud",
    "Picard",
    "Baudry",
    "Texier",
]


@dataclass(frozen=True)
class SynthConfig:
    """What to generate: seed, season, square size (10 m pixels), farmers, revisit (days),
    CRS and top-left corner ``origin`` (x, y in metres of ``crs``), and whether to plant the
    credit-relevant events (drought, flood, false declarations, overlap, not cropland)."""

    seed: int = 7
    season: Season = Season(2026)
    size_px: int = 480
    n_farmers: int = 320
    revisit_days: int = 5
    crs: str = "EPSG:32631"
    origin: tuple[float, float] = (288_000.0, 5_178_000.0)
    events: bool = True
    #: Share of annual-crop parcels (> 1 ha, no event) sown on only part of their area
    #: (50-90 %, cut by a straight line); the rest is left to grass. Declarations still claim
    #: the whole parcel. 0 (the default) draws nothing, so other outputs do not change.
    partial_share: float = 0.0

    def __post_init__(self) -> None:
        if not 32 <= self.size_px <= 4096:
            raise ValueError(f"size_px={self.size_px}; expected 32..4096 pixels")
        if not 0.0 <= self.partial_share <= 1.0:
            raise ValueError(f"partial_share={self.partial_share}; expected 0..1")
        if self.n_farmers < 1 or self.revisit_days < 1:
            raise ValueError("n_farmers and revisit_days must be >= 1")


@dataclass
class SyntheticRegion:
    """A generated region and its truth (see the module docstring for frames and units).

    ``parcels``: pledged parcels (GeoDataFrame, CRS set); ``farmers``: one row per farmer;
    ``truth``: one row per parcel; ``crop_map``: (H, W) uint8 true class index per pixel;
    ``parcel_index``: (H, W) int32 row of ``truth`` owning the pixel (-1 none);
    ``cover``: (H, W) uint8 land cover of :mod:`geo.synth.layout`; ``pheno``: per-parcel
    curve parameters and event timing (index = rows of ``truth``, then one row per part left
    unsown) used by the scene model; ``pheno_index``: (H, W) int32 row of ``pheno`` per pixel
    (-1 outside parcels; None = ``parcel_index``). ``truth["planted_share"]``: share of the
    parcel's pixels carrying its true crop (1 unless ``partial_share`` left part unsown).
    """

    parcels: gpd.GeoDataFrame
    farmers: pd.DataFrame
    truth: pd.DataFrame
    crop_map: np.ndarray
    transform: Affine
    crs: str
    season: Season
    parcel_index: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    cover: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))
    pheno: pd.DataFrame = field(default_factory=pd.DataFrame)
    pheno_index: np.ndarray | None = None


def _farmer_order(layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """Parcel order that keeps a farmer's parcels together (block, then along the block)."""
    theta = rng.uniform(0, np.pi)
    c = np.array([p.centroid.coords[0] for p in layout.parcels])
    along = c[:, 0] * np.cos(theta) + c[:, 1] * np.sin(theta)
    return np.lexsort((along, np.asarray(layout.block_of)))


def _cluster(
    rng: np.random.Generator, centroids: np.ndarray, pool: np.ndarray, n: int
) -> np.ndarray:
    """``n`` parcels of ``pool`` nearest to a random pool parcel (events hit neighbourhoods)."""
    if n <= 0 or len(pool) == 0:
        return np.array([], dtype=int)
    centre = centroids[rng.choice(pool)]
    d = np.hypot(*(centroids[pool] - centre).T)
    return pool[np.argsort(d)[: min(n, len(pool))]]


def simulate_region(cfg: SynthConfig) -> SyntheticRegion:
    """Generate the parcels, farmers, declarations, events and truth rasters of ``cfg``.

    Deterministic in ``cfg``. At the default size (480 px, 4.8 km) this gives >= 800 parcels
    of 0.2-20 ha and ``cfg.n_farmers`` farmers; small sizes get proportionally fewer parcels
    and at most one farmer per parcel.
    """
    cal = load_calendar()
    rng = rng_for(cfg.seed, "region")
    min_parcels = math.ceil(820 * (cfg.size_px / 480) ** 2)
    layout = make_layout(
        rng_for(cfg.seed, "layout"), cfg.size_px, cfg.origin, min_parcels=min_parcels
    )
    n = len(layout.parcels)
    if n == 0:
        raise ValueError(f"size_px={cfg.size_px} produced no parcels; use size_px >= 64")
    order = _farmer_order(layout, rng)
    polys = [layout.parcels[i] for i in order]
    old_to_new = np.empty(n, dtype=np.int32)
    old_to_new[order] = np.arange(n)
    pidx = np.where(layout.parcel_index >= 0, old_to_new[np.maximum(layout.parcel_index, 0)], -1)
    cover = layout.cover.copy()

    n_f = min(cfg.n_farmers, n)
    cuts: np.ndarray = (
        np.sort(rng.choice(np.arange(1, n), size=n_f - 1, replace=False))
        if n_f > 1
        else np.zeros(0, int)
    )
    farmer_of = np.zeros(n, dtype=int)
    for c in cuts:
        farmer_of[c:] += 1
    width = max(3, len(str(n_f)))
    fid = np.array([f"F-{i + 1:0{width}d}" for i in range(n_f)])
    crops = np.array(list(CROP_SHARES))
    shares = np.array(list(CROP_SHARES.values()))
    true_crop = rng.choice(crops, size=n, p=shares / shares.sum())
    centroids = np.array([p.centroid.coords[0] for p in polys])
    mid_y = (layout.bounds[1] + layout.bounds[3]) / 2
    region = np.where(centroids[:, 1] >= mid_y, REGION_NORTH, REGION_SOUTH)
    area = np.array([p.area / 1e4 for p in polys])

    event = np.array(["none"] * n, dtype=object)
    event_start: list[dt.date | None] = [None] * n
    wrong = np.zeros(n, bool)
    over = np.zeros(n, bool)
    overlap = np.zeros(n, bool)
    not_crop = np.zeros(n, bool)
    declared = true_crop.copy()
    declared_area = np.round(area * (1 + rng.normal(0, 0.01, n)), 2)
    season = cfg.season
    extra: list[tuple[Polygon, int]] = []
    if cfg.events:
        everyone = np.arange(n)
        nc = int(rng.choice(everyone[area < 5]))
        not_crop[nc] = True
        declared[nc] = "winter_cereals" if true_crop[nc] != "winter_cereals" else "maize"
        true_crop[nc] = "non_crop"
        cover[pidx == nc] = COVER_FOREST
        annual = everyone[np.isin(true_crop, ANNUAL)]
        n_flood = max(2, round(0.006 * n))
        flood = _cluster(rng, centroids, annual, n_flood)
        for i in flood:
            event[i] = "flood"
            event_start[i] = dt.date(season.year, 3, 1) + dt.timedelta(
                days=int(rng.integers(0, 25))
            )
        pool = everyone[(event == "none") & ~not_crop & (true_crop != "permanent")]
        drought = _cluster(rng, centroids, pool, max(1, round(0.08 * n)))
        d0 = dt.date(season.year, 6, 1)
        for i in drought:
            event[i] = "drought"
            event_start[i] = d0 + dt.timedelta(days=int(rng.integers(-3, 6)))
        farmers_pool = rng.permutation(n_f)
        k = max(1, round(0.03 * n_f))
        for f in farmers_pool[:k]:  # wrong crop on one parcel
            own = everyone[(farmer_of == f) & ~not_crop]
            if len(own):
                i = int(rng.choice(own))
                wrong[i] = True
                declared[i] = rng.choice([c for c in ANNUAL if c != true_crop[i]])
        for f in farmers_pool[k : 2 * k]:  # overstated area on every parcel
            own = everyone[(farmer_of == f) & ~not_crop]
            over[own] = True
            declared_area[own] = np.round(area[own] * rng.uniform(1.3, 1.8, len(own)), 2)
        if n_f >= 4:
            rest = everyone[
                np.isin(farmer_of, farmers_pool[2 * k :])
                & ~not_crop
                & (area > 1.0)
                & (event == "none")
            ]
            a = int(rng.choice(rest)) if len(rest) else int(np.argmax(area))
            others = [f for f in farmers_pool[2 * k :] if f != farmer_of[a]]
            b = int(others[0]) if others else (farmer_of[a] + 1) % n_f
            poly = polys[a]
            c = np.asarray(poly.centroid.coords[0])
            v = np.asarray(
                poly.exterior.coords[int(rng.integers(0, len(poly.exterior.coords) - 1))]
            )
            origin = Point(*(c + 0.3 * (v - c)))
            extra.append((affinity.scale(poly, 0.85, 0.85, origin=origin), b))
            overlap[a] = True

    rows = []
    for i in range(n):
        rows.append((i, polys[i], farmer_of[i], region[i], true_crop[i], area[i]))
    for poly, b in extra:
        a = int(np.flatnonzero(overlap)[0])
        rows.append((a, poly, b, region[a], true_crop[a], poly.area / 1e4))
        event = np.append(event, "none")
        event_start.append(None)
        wrong, over, not_crop = (
            np.append(wrong, False),
            np.append(over, False),
            np.append(not_crop, False),
        )
        overlap = np.append(overlap, True)
        declared = np.append(declared, true_crop[a])
        declared_area = np.append(
            declared_area, round(poly.area / 1e4 * (1 + rng.normal(0, 0.01)), 2)
        )
    m = len(rows)
    pid = [f"P-{i + 1:04d}" for i in range(m)]
    farmer_ids = [fid[r[2]] for r in rows]
    parcels = gpd.GeoDataFrame(
        {
            "parcel_id": pid,
            "farmer_id": farmer_ids,
            "region": [r[3] for r in rows],
            "declared_crop": declared.astype(str),
            "declared_area_ha": declared_area.astype(float),
        },
        geometry=[r[1] for r in rows],
        crs=cfg.crs,
    )
    truth = pd.DataFrame(
        {
            "parcel_id": pid,
            "farmer_id": farmer_ids,
            "true_crop": [r[4] for r in rows],
            "true_area_ha": np.round([r[5] for r in rows], 4),
            "event": event.astype(str),
            "event_start": pd.Series(event_start, dtype=object),
            "wrong_declaration": wrong,
            "overstated_area": over,
            "overlap": overlap,
            "not_cropland": not_crop,
        }
    )
    farmers = _farmers(rng, fid, farmer_of, region, area)
    pheno = _phenology(rng_for(cfg.seed, "pheno"), cal, truth, n, [r[0] for r in rows], season)
    crop_idx = np.array([CROP_INDEX[c] for c in truth["true_crop"][:n]], dtype=np.uint8)
    crop_map = np.where(pidx >= 0, crop_idx[np.maximum(pidx, 0)], CROP_INDEX["non_crop"]).astype(
        np.uint8
    )
    pheno_index = None
    truth["planted_share"] = 1.0
    if cfg.partial_share > 0:
        pheno, pheno_index = _leave_unsown(
            rng_for(cfg.seed, "partial"), cfg, cal, truth, pheno, pidx, crop_map, area
        )
    log.info("region seed=%d: %d parcels, %d farmers, %d px", cfg.seed, m, n_f, cfg.size_px)
    return SyntheticRegion(
        parcels=parcels,
        farmers=farmers,
        truth=truth,
        crop_map=crop_map,
        transform=layout.transform,
        crs=cfg.crs,
        season=season,
        parcel_index=pidx.astype(np.int32),
        cover=cover,
        pheno=pheno,
        pheno_index=pheno_index,
    )


def _leave_unsown(
    rng: np.random.Generator,
    cfg: SynthConfig,
    cal: dict[str, CropCalendar],
    truth: pd.DataFrame,
    pheno: pd.DataFrame,
    pidx: np.ndarray,
    crop_map: np.ndarray,
    area: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Leave part of ``cfg.partial_share`` of the eligible parcels to grass, in place on
    ``crop_map`` and ``truth["planted_share"]``; returns pheno with one grass row per part and
    the pixel -> pheno row raster."""
    n = len(area)
    crops = truth["true_crop"].astype(str).to_numpy()[:n]
    ok = np.isin(crops, ANNUAL) & (area > 1.0) & (truth["event"].to_numpy()[:n] == "none")
    ok &= ~truth["overlap"].to_numpy()[:n]
    chosen = np.flatnonzero(ok & (rng.random(n) < cfg.partial_share))
    pheno_index = pidx.copy()
    ys, xs = np.nonzero(pidx >= 0)
    owner = pidx[ys, xs]
    grass = pd.DataFrame(
        {"true_crop": "grassland", "event": "none", "event_start": [None] * len(chosen)}
    )
    extra = _phenology(rng, cal, grass, len(chosen), chosen.tolist(), cfg.season)
    for j, i in enumerate(chosen):
        mine = owner == i
        share = float(rng.uniform(0.5, 0.9))
        angle = float(rng.uniform(0.0, 2 * math.pi))
        along = ys[mine] * math.sin(angle) + xs[mine] * math.cos(angle)
        unsown = along > np.quantile(along, share)
        py, px = ys[mine][unsown], xs[mine][unsown]
        crop_map[py, px] = CROP_INDEX["grassland"]
        pheno_index[py, px] = n + j
        truth.loc[i, "planted_share"] = 1.0 - float(unsown.mean())
    extra.index = extra.index + len(pheno)
    return pd.concat([pheno, extra]), pheno_index


def _farmers(
    rng: np.random.Generator,
    fid: np.ndarray,
    farmer_of: np.ndarray,
    region: np.ndarray,
    area: np.ndarray,
) -> pd.DataFrame:
    n_f = len(fid)
    tot = np.bincount(farmer_of, weights=area, minlength=n_f)
    first = np.array([np.flatnonzero(farmer_of == f)[0] for f in range(n_f)])
    names = [f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" for _ in range(n_f)]
    # Existing annual debt service as a share of the farm's typical revenue (about EUR 1,700
    # per ha in this region), drawn as the simulated loan book draws it (scoring.loanbook):
    # debt_service_ratio ~ Gamma(2, 0.08), so the PD model sees the range it was trained on.
    ratio = np.clip(rng.gamma(2.0, 0.08, n_f), 0.0, 1.2)
    debt = np.round(tot * 1700.0 * ratio, -1)
    return pd.DataFrame(
        {
            "farmer_id": fid,
            "region": region[first],
            "name": names,
            "annual_debt_service_eur": debt,
            "years_with_lender": rng.integers(0, 26, n_f),
        }
    )


def _phenology(
    rng: np.random.Generator,
    cal: dict[str, CropCalendar],
    truth: pd.DataFrame,
    n: int,
    source: list[int],
    season: Season,
) -> pd.DataFrame:
    """Per-parcel curve parameters with jitter of dates (sd 7 d) and amplitude (sd 6 %), plus
    soil brightness, dry maximum and event timing (days of season)."""
    recs = []
    for i in range(len(truth)):
        crop = str(truth.at[i, "true_crop"])
        if crop in cal:
            p = dict(cal[crop].params)
            dry = cal[crop].dry_max
        else:
            p, dry = dict(FOREST_CURVE), 0.0
        shift = rng.normal(0, 4 if crop in ("grassland", "non_crop") else 7)
        for c in DATE_COLUMNS:
            p[c] += shift
        p["senescence"] += rng.normal(0, 4)
        scale = float(np.clip(rng.normal(1.0, 0.06), 0.8, 1.15))
        for c in ("ndvi_winter", "ndvi_peak"):
            p[c] = p["ndvi_base"] + (p[c] - p["ndvi_base"]) * scale
        p["ndvi_peak"] = min(p["ndvi_peak"], 0.92)
        es: Any = truth.at[i, "event_start"]
        recs.append(
            {
                **p,
                "dry_max": dry,
                "soil_scale": float(rng.lognormal(0, 0.1)),
                "event": EVENTS.index(str(truth.at[i, "event"])),
                "event_day": float((es - season.start).days) if es is not None else 1e4,
                "flood_days": float(rng.uniform(21, 42)),
                "flood_level": float(rng.uniform(0.5, 1.2)),
            }
        )
    out = pd.DataFrame(
        recs,
        columns=[
            *CURVE_COLUMNS,
            "dry_max",
            "soil_scale",
            "event",
            "event_day",
            "flood_days",
            "flood_level",
        ],
    )
    out["layout_row"] = source
    return out.iloc[:n].reset_index(drop=True)
