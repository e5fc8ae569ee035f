"""The season's outputs: limits as CSV and Parquet, PNG maps and a static HTML report.

The report works offline: Leaflet is served from ``report/static`` beside the page and the
base layer is the season's own true-colour composite, reprojected to Web Mercator so it lines
up with the parcel outlines exactly.

Every value from a lender's files (parcel and farmer ids, crops, regions) is HTML-escaped on
both pages, folium's tooltips included (they insert properties as HTML), and both pages carry
a Content-Security-Policy like the review app's (:func:`with_csp`): scripts only from the
report's own folder plus folium's inline scripts by their SHA-256, so an injected
``<img onerror>`` or ``<script>`` would not run even if it got through.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import folium
import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
from rasterio.warp import Resampling, calculate_default_transform, reproject

from geo.composite import Composite
from geo.indices import ndvi
from geo.types import BANDS, Season

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from flows.season import StageOutcome
    from flows.settings import SeasonParams
    from flows.tasks import Onboarded

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
CROP_COLORS: dict[str, str] = {
    "non_crop": "#9e9e9e",
    "grassland": "#7cb342",
    "winter_cereals": "#fdd835",
    "spring_cereals": "#ffb300",
    "maize": "#e65100",
    "rapeseed": "#c6ff00",
    "sunflower": "#ff7043",
    "soybean": "#8d6e63",
    "potato": "#ab47bc",
    "other_annual": "#26c6da",
    "permanent": "#2e7d32",
    "unknown": "#000000",
}
HEALTH_COLORS: dict[str, str] = {
    "good": "#1b5e20",
    "watch": "#f9a825",
    "stressed": "#e65100",
    "failed": "#b71c1c",
    "unknown": "#607d8b",
}


def true_colour(composite: Composite) -> np.ndarray:
    """RGB (H, W, 3) float 0-1 from the latest observed value of each pixel (B04, B03, B02)."""
    data = composite.data
    idx = {b: i for i, b in enumerate(BANDS)}
    rgb = np.full((*data.shape[2:], 3), np.nan, dtype=np.float32)
    for t in range(data.shape[0]):
        step = data[t, [idx["B04"], idx["B03"], idx["B02"]]].transpose(1, 2, 0)
        have = ~np.isnan(step[..., 0])
        rgb[have] = step[have]
    return np.clip(np.nan_to_num(rgb, nan=0.0) * 3.5, 0, 1)


def latest_ndvi(composite: Composite) -> np.ndarray:
    """NDVI (H, W) of the latest observed dekad of each pixel, NaN where never observed."""
    series = ndvi(composite.data, axis=1)
    out = np.full(series.shape[1:], np.nan, dtype=np.float32)
    for t in range(series.shape[0]):
        have = ~np.isnan(series[t])
        out[have] = series[t][have]
    return out


def _to_mercator(
    image: np.ndarray, composite: Composite, resampling: Resampling = Resampling.bilinear
) -> tuple[np.ndarray, list[list[float]]]:
    """Reproject an (H, W, bands) image to EPSG:3857; return it with its lat/lon bounds."""
    h, w = image.shape[:2]
    left, top = composite.transform @ (0, 0)
    right, bottom = composite.transform @ (w, h)
    dst_t, dw, dh = calculate_default_transform(
        composite.crs, "EPSG:3857", w, h, left=left, bottom=bottom, right=right, top=top
    )
    bands = image.shape[2]
    out = np.zeros((bands, dh, dw), dtype=np.float32)
    for b in range(bands):
        reproject(
            image[..., b].astype(np.float32),
            out[b],
            src_transform=composite.transform,
            src_crs=composite.crs,
            dst_transform=dst_t,
            dst_crs="EPSG:3857",
            resampling=resampling,
        )
    corners = gpd.GeoSeries.from_xy(
        [dst_t.c, dst_t.c + dst_t.a * dw], [dst_t.f, dst_t.f + dst_t.e * dh], crs="EPSG:3857"
    ).to_crs("EPSG:4326")
    bounds = [[corners.y.min(), corners.x.min()], [corners.y.max(), corners.x.max()]]
    return out.transpose(1, 2, 0), bounds


def _save_png(path: Path, rgba: np.ndarray) -> Path:
    plt.imsave(path, np.clip(rgba, 0, 1))
    return path


def write_maps(
    out_dir: Path,
    composite: Composite,
    parcels: gpd.GeoDataFrame,
    assessment: pd.DataFrame,
    crop_proba_argmax: np.ndarray | None = None,
) -> dict[str, Path]:
    """PNG maps in the scene's own frame: true colour, NDVI, detected crop, parcel health."""
    out_dir.mkdir(parents=True, exist_ok=True)
    h, w = composite.shape[-2:]
    left, top = composite.transform @ (0, 0)
    right, bottom = composite.transform @ (w, h)
    extent = (left, right, bottom, top)
    merged = parcels.merge(
        assessment[["parcel_id", "detected_crop", "health_class"]], on="parcel_id", how="left"
    )
    maps: dict[str, Path] = {}
    panels: list[tuple[str, Any]] = [("true_colour", true_colour(composite))]
    panels.append(("ndvi", latest_ndvi(composite)))
    for name, image in panels:
        fig, ax = plt.subplots(figsize=(8, 8), dpi=110)
        if image.ndim == 3:
            ax.imshow(image, extent=extent)
        else:
            im = ax.imshow(image, extent=extent, cmap="RdYlGn", vmin=0, vmax=0.9)
            fig.colorbar(im, ax=ax, shrink=0.7, label="NDVI")
        parcels.boundary.plot(ax=ax, color="white", linewidth=0.3)
        ax.set_title(f"{name.replace('_', ' ')} (latest clear composite)")
        ax.set_axis_off()
        maps[name] = out_dir / f"{name}.png"
        fig.savefig(maps[name], bbox_inches="tight")
        plt.close(fig)
    for column, colors, title in (
        ("detected_crop", CROP_COLORS, "detected crop"),
        ("health_class", HEALTH_COLORS, "parcel health"),
    ):
        fig, ax = plt.subplots(figsize=(8, 8), dpi=110)
        values = merged[column].fillna("unknown")
        merged.plot(
            ax=ax,
            color=[colors.get(v, "#000000") for v in values],
            edgecolor="white",
            linewidth=0.2,
        )
        handles = [plt.Rectangle((0, 0), 1, 1, color=colors[k]) for k in colors if k in set(values)]
        ax.legend(handles, [k for k in colors if k in set(values)], loc="lower left", fontsize=7)
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        ax.set_title(title)
        ax.set_axis_off()
        maps[column] = out_dir / f"{column}.png"
        fig.savefig(maps[column], bbox_inches="tight")
        plt.close(fig)
    return maps


def parcel_map(
    parcels: gpd.GeoDataFrame,
    assessment: pd.DataFrame,
    limits: pd.DataFrame,
    composite: Composite,
    image_dir: Path,
    static_prefix: str = "static",
) -> folium.Map:
    """A Leaflet map: true-colour and NDVI base layers, parcels coloured by crop and health."""
    folium.Map.default_js = [("leaflet", f"{static_prefix}/leaflet/leaflet.js")]
    folium.Map.default_css = [("leaflet_css", f"{static_prefix}/leaflet/leaflet.css")]
    merged = parcels.merge(
        assessment.drop(
            columns=[
                c
                for c in ("farmer_id", "region", "declared_crop", "declared_area_ha", "area_ha")
                if c in assessment
            ]
        ),
        on="parcel_id",
        how="left",
    ).merge(limits[["farmer_id", "limit_eur"]], on="farmer_id", how="left")
    wgs = merged.to_crs("EPSG:4326")
    minx, miny, maxx, maxy = wgs.total_bounds
    fmap = folium.Map(
        location=[(miny + maxy) / 2, (minx + maxx) / 2],
        tiles=None,
        control_scale=True,
        prefer_canvas=False,
    )
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])
    inside = np.ones(composite.shape[-2:], dtype=np.float32)[..., None]
    rgba, bounds = _to_mercator(np.dstack([true_colour(composite), inside]), composite)
    ndvi_img = latest_ndvi(composite)
    nd, _ = _to_mercator(
        np.dstack([np.nan_to_num(ndvi_img, nan=0.0), (~np.isnan(ndvi_img)).astype(np.float32)]),
        composite,
    )
    image_dir.mkdir(parents=True, exist_ok=True)
    rgba[..., 3] = rgba[..., 3] > 0.5  # transparent outside the scene
    _save_png(image_dir / "true_colour_3857.png", rgba)
    nd_rgba = plt.get_cmap("RdYlGn")(np.clip(nd[..., 0] / 0.9, 0, 1))
    nd_rgba[..., 3] = nd[..., 1] > 0.5
    _save_png(image_dir / "ndvi_3857.png", nd_rgba)
    # folium embeds local images as data URLs: the map needs no tile server.
    folium.raster_layers.ImageOverlay(
        str((image_dir / "true_colour_3857.png").resolve()),
        bounds=bounds,
        name="true colour (latest clear)",
        overlay=False,
        control=True,
    ).add_to(fmap)
    folium.raster_layers.ImageOverlay(
        str((image_dir / "ndvi_3857.png").resolve()),
        bounds=bounds,
        name="NDVI (latest clear)",
        opacity=0.8,
        show=False,
    ).add_to(fmap)
    columns = [
        "parcel_id",
        "farmer_id",
        "declared_crop",
        "detected_crop",
        "confidence",
        "declared_area_ha",
        "planted_area_ha",
        "health_class",
        "health_z",
        "limit_eur",
    ]
    wgs = wgs[[c for c in columns if c in wgs] + ["geometry"]].copy()
    for col in ("confidence", "declared_area_ha", "planted_area_ha", "health_z", "limit_eur"):
        if col in wgs:
            wgs[col] = wgs[col].astype(float).round(2)
    for col in ("parcel_id", "farmer_id", "declared_crop", "detected_crop", "health_class"):
        if col in wgs:  # folium's tooltip inserts these as HTML: a lender's id is text
            wgs[col] = wgs[col].map(lambda v: None if pd.isna(v) else html.escape(str(v)))
    folium.GeoJson(
        json.loads(wgs.to_json(na="null")),
        name="parcels: detected crop (fill), health (outline)",
        style_function=lambda f: {
            "fillColor": CROP_COLORS.get(str(f["properties"].get("detected_crop")), "#000"),
            "color": HEALTH_COLORS.get(str(f["properties"].get("health_class")), "#607d8b"),
            "weight": 2,
            "fillOpacity": 0.45,
        },
        tooltip=folium.GeoJsonTooltip(fields=[c for c in columns if c in wgs]),
    ).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    present = set(wgs["detected_crop"].dropna()) if "detected_crop" in wgs else set()
    swatches = (
        "".join(
            f'<div><span style="background:{c};display:inline-block;width:12px;height:12px;'
            f'margin-right:4px"></span>{html.escape(k)}</div>'
            for k, c in CROP_COLORS.items()
            if html.escape(k) in present
        )
        + "<b>health (outline)</b>"
        + "".join(
            f'<div><span style="border:2px solid {c};display:inline-block;width:9px;height:9px;'
            f'margin-right:4px"></span>{k}</div>'
            for k, c in HEALTH_COLORS.items()
        )
    )
    fmap.get_root().html.add_child(  # type: ignore[attr-defined]
        folium.Element(
            '<div id="legend" style="position:absolute;bottom:30px;right:10px;z-index:1000;'
            'background:white;padding:6px;font:12px sans-serif;border:1px solid #999">'
            f"<b>crop (fill)</b>{swatches}</div>"
        )
    )
    return fmap


def _sparkline(curve: pd.DataFrame, width: int = 220, height: int = 60) -> str:
    """An inline SVG of a parcel's NDVI (green) against its crop's reference (grey)."""
    if curve.empty:
        return ""
    n = len(curve)

    def points(values: Sequence[float]) -> str:
        pts = []
        for i, v in enumerate(values):
            if v is None or not np.isfinite(v):
                continue
            x = i * (width - 4) / max(n - 1, 1) + 2
            y = height - 2 - float(np.clip(v, 0, 1)) * (height - 4)
            pts.append(f"{x:.1f},{y:.1f}")
        return " ".join(pts)

    ref = points(curve["ref_ndvi"].astype(float).tolist())
    obs = points(curve["ndvi"].astype(float).tolist())
    return (
        f'<svg class="curve" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<rect width="{width}" height="{height}" fill="#fafafa" stroke="#ddd"/>'
        f'<polyline points="{ref}" fill="none" stroke="#9e9e9e" stroke-dasharray="3,2"/>'
        f'<polyline points="{obs}" fill="none" stroke="#2e7d32" stroke-width="1.5"/></svg>'
    )


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return list(json.loads(value)) if value.startswith("[") else [value]
    return [str(v) for v in value] if value is not None else []


#: Columns of ``limits.csv`` / ``limits.parquet`` (and the review app's exports), in order.
LIMITS_COLUMNS: tuple[str, ...] = (
    "farmer_id",
    "stage",
    "limit_eur",
    "source",
    "set_by",
    "override_reason",
    "overridden_at",
    "drawn_eur",
    "action",
    "pd",
    "pd_band",
    "needs_review",
    "flags",
    "reasons",
    "counterfactual",
    "policy_action",
    "policy_limit_eur",
    "policy_reasons",
    "region",
)


def override_columns(current: Mapping[Any, Any] | None) -> dict[str, Any]:
    """Who set a farmer's limit in force and why: ``set_by`` ("policy" or the officer),
    ``override_reason`` and ``overridden_at`` (ISO text with its UTC offset) of a
    ``Ledger.current_limits`` row whose source is an override; ``None`` (or no row) gives
    the policy's."""
    if current is None or str(current.get("source")) != "override":
        return {"set_by": "policy", "override_reason": None, "overridden_at": None}
    when = pd.Timestamp(current["decided_at"])
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    return {
        "set_by": str(current["officer"]),
        "override_reason": str(current["override_reason"]),
        "overridden_at": when.isoformat(timespec="seconds"),
    }


def current_limits_table(
    history: pd.DataFrame, current: pd.DataFrame, parcels: gpd.GeoDataFrame
) -> pd.DataFrame:
    """One row per farmer for the core-banking system (:data:`LIMITS_COLUMNS`): the limit in
    force, who set it and why, what was drawn, and the last decision's PD, flags and reasons.

    Where an officer's override is in force, ``limit_eur`` is the override's, ``set_by`` the
    officer, ``action`` ``"override"``, ``reasons`` the officer's reason and ``needs_review``
    False (an officer has decided); the policy's own decision stays in ``policy_action``,
    ``policy_limit_eur`` and ``policy_reasons``.
    """
    last = history.sort_values("id").groupby("farmer_id").tail(1).set_index("farmer_id")
    table = current.set_index("farmer_id")[["stage", "limit_eur", "source"]].join(
        last[
            [
                "drawn_eur",
                "action",
                "pd",
                "pd_band",
                "needs_review",
                "flags",
                "reasons",
                "counterfactual",
            ]
        ].join(last[["action", "limit_eur", "reasons"]].add_prefix("policy_")),
        how="left",
    )
    who = pd.DataFrame(
        [override_columns(r) for r in current.to_dict("records")],
        index=current["farmer_id"],
        columns=["set_by", "override_reason", "overridden_at"],
    )
    table = table.join(who)
    table["region"] = parcels.groupby("farmer_id")["region"].first()
    table["flags"] = table["flags"].map(lambda v: "; ".join(_as_list(v)))
    table["policy_reasons"] = table["policy_reasons"].map(lambda v: "; ".join(_as_list(v)))
    overridden = table["source"] == "override"
    table["reasons"] = table["policy_reasons"].where(~overridden, table["override_reason"])
    table["action"] = table["policy_action"].where(~overridden, "override")
    table["needs_review"] = table["needs_review"].fillna(False).astype(bool) & ~overridden
    table.index.name = "farmer_id"
    return table.reset_index()[list(LIMITS_COLUMNS)]


def _history_html(history: pd.DataFrame, curves: pd.DataFrame, assessment: pd.DataFrame) -> str:
    parts = []
    for farmer_id, rows in history.groupby("farmer_id", sort=True):
        last = rows.iloc[-1]
        flags = ", ".join(_as_list(last["flags"]))
        tag = " flagged" if flags else ""
        tag += " review" if bool(last.get("needs_review", False)) else ""
        lines = []
        for _, r in rows.iterrows():
            reasons = "; ".join(html.escape(x) for x in _as_list(r["reasons"]))
            lines.append(
                f"<tr><td>{html.escape(str(r['stage']))}</td>"
                f"<td>{html.escape(str(r['action']))}</td>"
                f"<td class=num>{r['limit_eur']:,.0f}</td><td class=num>{r['drawn_eur']:,.0f}</td>"
                f"<td class=num>{r['pd']:.3f}</td><td>{reasons}</td></tr>"
            )
        own = assessment[assessment["farmer_id"] == farmer_id]
        plots = "".join(
            f"<figure><figcaption>{html.escape(str(p.parcel_id))}: "
            f"{html.escape(str(p.detected_crop))} ({p.confidence:.0%}), "
            f"{html.escape(str(p.health_class))}</figcaption>"
            f"{_sparkline(curves[curves['parcel_id'] == p.parcel_id])}</figure>"
            for p in own.itertuples()
        )
        parts.append(
            f'<details class="farmer{tag}" id="{html.escape(str(farmer_id))}"><summary>'
            f"<b>{html.escape(str(farmer_id))}</b> limit EUR {last['limit_eur']:,.0f} "
            f"({html.escape(str(last['action']))} at {html.escape(str(last['stage']))}) "
            f"{html.escape(flags)}</summary>"
            "<table><tr><th>stage</th><th>action</th><th>limit EUR</th><th>drawn EUR</th>"
            f"<th>PD</th><th>reasons</th></tr>{''.join(lines)}</table>"
            f"<p>{html.escape(str(last.get('counterfactual') or ''))}</p>"
            f'<div class="curves">{plots}</div></details>'
        )
    return "\n".join(parts)


#: The report pages' policy: like the review app's, for files opened from disk (no network).
REPORT_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'{hashes}; connect-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'"
)
#: An inline script (no ``src``) and its text, which the browser hashes byte for byte.
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.I)


def with_csp(page: str) -> str:
    """``page`` with a ``<meta http-equiv="Content-Security-Policy">`` first in its head.

    Inline scripts already in the page (folium's map) are allowed by their SHA-256; nothing
    else inline runs (no event-handler attributes, no injected ``<script>``).

    Raises:
        ValueError: the page has no ``<head>``.
    """
    hashes = "".join(
        " 'sha256-"
        + base64.b64encode(hashlib.sha256(m.group(1).encode("utf-8")).digest()).decode()
        + "'"
        for m in _INLINE_SCRIPT.finditer(page)
    )
    meta = (
        '<meta http-equiv="Content-Security-Policy" content="'
        + html.escape(REPORT_CSP.format(hashes=hashes))
        + '">'
    )
    head = re.search(r"<head[^>]*>", page, re.IGNORECASE)
    if head is None:
        raise ValueError("the page has no <head>: cannot place its Content-Security-Policy")
    return page[: head.end()] + meta + page[head.end() :]


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>cropcredit season {season}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1400px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:2px 6px;font-size:13px;vertical-align:top}}
.num{{text-align:right}}
iframe{{width:100%;height:640px;border:1px solid #ccc}}details{{margin:4px 0}}
details.flagged summary{{color:#b71c1c}}.curves{{display:flex;flex-wrap:wrap;gap:8px}}
figure{{margin:0;font-size:11px}}img.map{{width:48%}}</style></head><body>
<h1>cropcredit: season {season}</h1><p>{summary}</p>
<h2>Parcels</h2><iframe src="map.html" title="parcel map"></iframe>
<h2>Limits by stage</h2>{stage_table}
<h2>Maps</h2>{maps}
<h2>Rejected at onboarding</h2>{rejects}
<h2>Farmers</h2><p>Each farmer's limit history with its reasons, and each parcel's NDVI over
the season (green) against its crop's reference curve (grey dashes).</p>{farmers}
</body></html>"""


def write_report(
    params: SeasonParams, board: Onboarded, outcomes: list[StageOutcome]
) -> dict[str, Path]:
    """Write limits.csv/.parquet, report/index.html, report/map.html and report/maps/*.png."""
    from scoring.ledger import Ledger

    season = Season(params.season)
    out = params.out
    report_dir = out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(STATIC / "leaflet", report_dir / "static" / "leaflet", dirs_exist_ok=True)
    ledger = Ledger(params.ledger())
    history = ledger.decisions(season)
    limits = current_limits_table(history, ledger.current_limits(season), board.parcels)
    limits.to_csv(out / "limits.csv", index=False)
    limits.to_parquet(out / "limits.parquet")

    last = outcomes[-1]
    maps: dict[str, Path] = {}
    if last.composites:  # a book too large (or over two zones) for one composite has no maps
        composite = last.composites[max(last.composites)]
        maps = write_maps(report_dir / "maps", composite, board.parcels, last.assessment)
        fmap = parcel_map(board.parcels, last.assessment, limits, composite, report_dir / "layers")
        (report_dir / "map.html").write_text(with_csp(fmap.get_root().render()), encoding="utf-8")
    else:
        log.info("report: no book composite (large book), so no maps")

    by_stage = (
        history.groupby("stage", sort=False)
        .agg(
            farmers=("farmer_id", "nunique"),
            total_limit_eur=("limit_eur", "sum"),
            cut=("action", lambda a: int((a == "cut").sum())),
            hold=("action", lambda a: int((a == "hold").sum())),
            zero=("action", lambda a: int((a == "zero").sum())),
        )
        .reset_index()
    )
    summary = (
        f"{board.parcels['farmer_id'].nunique()} farmers, {len(board.parcels)} parcels "
        f"({len(board.rejects)} rejected at onboarding). Current limits total EUR "
        f"{limits['limit_eur'].sum():,.0f}; {int(limits['needs_review'].sum())} farmers held "
        "for review."
    )
    page = PAGE.format(
        season=season,
        summary=html.escape(summary),
        stage_table=by_stage.to_html(index=False, float_format=lambda v: f"{v:,.0f}"),
        maps="".join(f'<img class="map" src="maps/{p.name}" alt="{k}">' for k, p in maps.items()),
        farmers=_history_html(history, last.curves, last.assessment),
        rejects=rejects_html(board.rejects),
    )
    (report_dir / "index.html").write_text(with_csp(page), encoding="utf-8")
    log.info("report written to %s", report_dir / "index.html")
    return {"report": report_dir / "index.html", "map": report_dir / "map.html", **maps}


def rejects_html(rejects: pd.DataFrame) -> str:
    """The onboarding rejects (:data:`geo.parcels.REJECT_COLUMNS`) as an HTML table, every one
    with its reason (escaped), or a line saying there were none."""
    if rejects.empty:
        return "<p>No parcel or farmer line was rejected at onboarding.</p>"
    from geo.parcels import reject_records

    rows = "".join(
        f"<tr><td>{html.escape(r['parcel_id'] or '-')}</td>"
        f"<td>{html.escape(r['farmer_id'] or '-')}</td>"
        f"<td>{html.escape(r['error'])}</td></tr>"
        for r in reject_records(rejects)
    )
    return (
        f"<p>{len(rejects)} rejected: they are not scored until the file is fixed.</p>"
        f'<table id="rejects"><tr><th>parcel</th><th>farmer</th><th>reason and fix</th></tr>'
        f"{rows}</table>"
    )
