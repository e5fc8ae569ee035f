/* The farmer page: Leaflet map of the farmer's parcels over the season's own imagery,
   a side panel per parcel with its index curve (plain SVG), and the override form.
   No network beyond this app: Leaflet is served from /static/leaflet. */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("farmer-data").textContent);
  var SVG = "http://www.w3.org/2000/svg";

  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "\u2013";
    return Number(v).toFixed(digits === undefined ? 2 : digits);
  }
  function pct(v) {
    return v === null || v === undefined ? "\u2013" : Math.round(100 * v) + "%";
  }
  function label(s) {
    return s === null || s === undefined ? "\u2013" : String(s).replace(/_/g, " ");
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }

  /* ---- map ---------------------------------------------------------------------------- */
  var map = L.map("map", { attributionControl: true, zoomSnap: 0.25 });
  map.attributionControl.setPrefix(false);
  map.createPane("ndviPane");
  map.getPane("ndviPane").style.zIndex = 350;
  var bases = {};
  var attribution = "imagery: season composite (Copernicus Sentinel-2)";
  if (data.base.true_colour) {
    bases["true colour (latest clear)"] = L.imageOverlay(
      data.base.true_colour.url, data.base.true_colour.bounds,
      { pane: "tilePane", attribution: attribution });
  }
  if (data.base.ndvi) {
    bases["NDVI (latest clear)"] = L.imageOverlay(
      data.base.ndvi.url, data.base.ndvi.bounds,
      { pane: "tilePane", className: "pixelated", attribution: attribution });
  }
  var firstBase = Object.keys(bases)[0];
  if (firstBase) bases[firstBase].addTo(map);

  var byId = {};
  var selected = null;
  var styleOf = function (f) {
    return { fillColor: f.properties.fill, color: f.properties.outline, weight: 3,
             opacity: 1, fillOpacity: 0.35 };
  };
  var parcels = L.geoJSON(data.parcels, {
    style: styleOf,
    onEachFeature: function (f, layer) {
      byId[f.properties.parcel_id] = layer;
      // a lender's id is text: Leaflet would insert a string tooltip as HTML
      layer.bindTooltip(el("span", {}, f.properties.parcel_id + ": " +
                                       label(f.properties.detected_crop)), { sticky: true });
      layer.on("click", function () { select(f.properties.parcel_id); });
    }
  }).addTo(map);
  if (data.parcels.features.length) {
    map.fitBounds(parcels.getBounds(), { padding: [30, 30], maxZoom: 17 });
  } else if (data.base.true_colour) {
    map.fitBounds(data.base.true_colour.bounds);
  } else {
    map.setView([0, 0], 2);
  }
  var overlays = { "parcels: crop (fill), health (outline)": parcels };
  var control = L.control.layers(bases, overlays, { collapsed: false }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);

  /* ---- per-pixel NDVI of a chosen dekad --------------------------------------------------- */
  var ndviLayer = null;
  var ndviUrl = null;
  var dekadSelect = document.getElementById("dekad");
  // parcels' fill fades while per-pixel NDVI is shown, so the pixels can be read
  function refreshFill() {
    var faint = ndviLayer && map.hasLayer(ndviLayer);
    parcels.setStyle({ fillOpacity: faint ? 0.04 : 0.35 });
  }
  map.on("overlayadd overlayremove", refreshFill);
  function showDekad(dekad) {
    if (!dekad) {
      if (ndviLayer) map.removeLayer(ndviLayer);
      refreshFill();
      return;
    }
    fetch(data.ndvi_url + "?dekad=" + encodeURIComponent(dekad), { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("NDVI image: HTTP " + r.status);
        var bounds = JSON.parse(r.headers.get("X-Bounds"));
        return r.blob().then(function (b) { return { bounds: bounds, blob: b }; });
      })
      .then(function (img) {
        if (ndviUrl) URL.revokeObjectURL(ndviUrl);
        ndviUrl = URL.createObjectURL(img.blob);
        if (!ndviLayer) {
          ndviLayer = L.imageOverlay(ndviUrl, img.bounds,
            { pane: "ndviPane", className: "pixelated ndvi-dekad", opacity: 0.95 });
          control.addOverlay(ndviLayer, "per-pixel NDVI (chosen dekad)");
        } else {
          ndviLayer.setUrl(ndviUrl);
          ndviLayer.setBounds(L.latLngBounds(img.bounds));
        }
        ndviLayer.addTo(map);
        refreshFill();
        document.getElementById("map").dataset.ndviDekad = dekad;
      })
      .catch(function (e) { console.warn(e); });
  }
  if (dekadSelect) {
    dekadSelect.addEventListener("change", function () { showDekad(dekadSelect.value); });
  }

  /* ---- side panel ------------------------------------------------------------------------ */
  function row(table, name, value, cls) {
    var tr = el("tr");
    tr.appendChild(el("th", {}, name));
    var td = el("td", cls ? { "class": cls } : {}, value);
    tr.appendChild(td);
    table.appendChild(tr);
    return td;
  }

  function select(pid) {
    var layer = byId[pid];
    if (!layer) return;
    if (selected && byId[selected]) byId[selected].setStyle({ weight: 3, dashArray: null });
    selected = pid;
    layer.setStyle({ weight: 6, dashArray: "6 4" });
    layer.bringToFront();
    document.querySelectorAll(".chip").forEach(function (c) {
      c.classList.toggle("on", c.dataset.parcel === pid);
    });
    var p = layer.feature.properties;
    var panel = document.getElementById("parcel-panel");
    panel.textContent = "";
    panel.dataset.parcel = pid;
    panel.appendChild(el("h3", {}, "parcel " + pid));
    var t = el("table", { "class": "kv" });
    var mismatch = p.declared_crop && p.detected_crop && p.declared_crop !== p.detected_crop;
    row(t, "declared crop", label(p.declared_crop), "declared-crop");
    row(t, "detected crop", label(p.detected_crop) + " (" + pct(p.confidence) + " confident)",
        "detected-crop" + (mismatch ? " mismatch" : ""));
    row(t, "crop share of pixels", pct(p.crop_fraction));
    row(t, "declared area", fmt(p.declared_area_ha) + " ha", "declared-area");
    row(t, "measured area", fmt(p.area_ha) + " ha");
    // the interval: pixel votes, widened by the crop's precision / recall at this stage
    row(t, "planted area", fmt(p.planted_area_ha) + " ha (likely " + fmt(p.planted_area_lo_ha) +
        "\u2013" + fmt(p.planted_area_hi_ha) + " ha)", "planted-area");
    row(t, "observed (clear) share", pct(p.observed_fraction));
    var h = row(t, "health", label(p.health_class) + " (z " + fmt(p.health_z) + ")",
                "health");
    h.style.color = p.outline;
    if (p.health_since) row(t, "since", p.health_since);
    // the same z against the crop's red-edge (chlorophyll) and moisture references
    row(t, "chlorophyll / water", "NDRE z " + fmt(p.ndre_z) + " \u00b7 NDMI z " + fmt(p.ndmi_z),
        "other-z");
    row(t, "NDVI last", fmt(p.ndvi_last));
    row(t, "as of", (p.as_of || "") + " (" + label(p.growth_stage) + ")");
    panel.appendChild(t);
    panel.appendChild(curveChart(data.curves[pid] || [], p));
  }

  document.querySelectorAll(".chip").forEach(function (c) {
    c.addEventListener("click", function () { select(c.dataset.parcel); });
  });

  /* ---- index curve: NDVI over the season against the crop's reference ------------------ */
  function curveChart(curve, p) {
    var W = 340, H = 190, L0 = 32, R0 = 8, T0 = 10, B0 = 28;
    var svg = svgEl("svg", { "class": "curve", width: W, height: H, viewBox: "0 0 " + W + " " + H,
                             role: "img", "aria-label": "NDVI curve of parcel " + p.parcel_id });
    var fig = el("figure", { "class": "chart" });
    if (!curve.length) {
      fig.appendChild(el("figcaption", {}, "no index curve for this parcel"));
      return fig;
    }
    var n = curve.length;
    var x = function (i) { return L0 + i * (W - L0 - R0) / Math.max(n - 1, 1); };
    var y = function (v) { return T0 + (1 - Math.max(0, Math.min(1, v))) * (H - T0 - B0); };
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      svg.appendChild(svgEl("line", { x1: L0, x2: W - R0, y1: y(v), y2: y(v), "class": "grid" }));
      var tx = svgEl("text", { x: L0 - 4, y: y(v) + 3, "class": "tick", "text-anchor": "end" });
      tx.textContent = v.toFixed(2);
      svg.appendChild(tx);
    });
    var months = "JFMAMJJASOND";
    curve.forEach(function (c, i) {
      var d = String(c.dekad);
      if (d.slice(8, 10) === "01") {
        var tx = svgEl("text", { x: x(i), y: H - B0 + 14, "class": "tick", "text-anchor": "middle" });
        tx.textContent = months[Number(d.slice(5, 7)) - 1];
        svg.appendChild(tx);
      }
    });
    // reference band (mean +/- sd) and mean
    var upper = [], lower = [], ref = [];
    curve.forEach(function (c, i) {
      if (c.ref_ndvi === null || c.ref_ndvi === undefined) return;
      var sd = c.ref_ndvi_sd || 0;
      upper.push(x(i) + "," + y(c.ref_ndvi + sd));
      lower.unshift(x(i) + "," + y(c.ref_ndvi - sd));
      ref.push(x(i) + "," + y(c.ref_ndvi));
    });
    if (ref.length) {
      svg.appendChild(svgEl("polygon", { points: upper.concat(lower).join(" "), "class": "refband" }));
      svg.appendChild(svgEl("polyline", { points: ref.join(" "), "class": "ref" }));
    }
    // observed NDVI: a line through the valid dekads, a dot per dekad (click: show its map)
    var obs = [];
    curve.forEach(function (c, i) {
      if (c.ndvi === null || c.ndvi === undefined) return;
      obs.push(x(i) + "," + y(c.ndvi));
    });
    svg.appendChild(svgEl("polyline", { points: obs.join(" "), "class": "obs" }));
    var asOf = p.as_of ? String(p.as_of).slice(0, 10) : null;
    curve.forEach(function (c, i) {
      if (c.ndvi === null || c.ndvi === undefined) return;
      var clear = (c.valid_fraction || 0) > 0;
      var dot = svgEl("circle", { cx: x(i), cy: y(c.ndvi), r: clear ? 2.6 : 1.6,
                                  "class": clear ? "dot" : "dot filled-gap" });
      var title = svgEl("title", {});
      title.textContent = c.dekad + ": NDVI " + fmt(c.ndvi) +
        (c.ref_ndvi !== null && c.ref_ndvi !== undefined ? " (reference " + fmt(c.ref_ndvi) + ")" : "");
      dot.appendChild(title);
      dot.addEventListener("click", function () {
        if (dekadSelect && Array.prototype.some.call(dekadSelect.options,
            function (o) { return o.value === c.dekad; })) {
          dekadSelect.value = c.dekad;
          showDekad(c.dekad);
        }
      });
      svg.appendChild(dot);
    });
    if (asOf) {
      var k = curve.findIndex(function (c) { return String(c.dekad) > asOf; });
      var xi = k < 0 ? x(n - 1) : x(Math.max(k - 1, 0));
      svg.appendChild(svgEl("line", { x1: xi, x2: xi, y1: T0, y2: H - B0, "class": "asof" }));
    }
    fig.appendChild(svg);
    fig.appendChild(el("figcaption", {},
      "NDVI over the season (green; small dots gap-filled) against the " + label(p.declared_crop) +
      " reference (grey: mean \u00b1 sd); the line marks the assessment date. " +
      "Click a dot to map that dekad."));
    return fig;
  }

  /* ---- override form ------------------------------------------------------------------- */
  var form = document.getElementById("override-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var msg = document.getElementById("override-msg");
      msg.textContent = "";
      var body = { limit_eur: form.limit_eur.value === "" ? null : Number(form.limit_eur.value),
                   reason: form.reason.value };
      fetch(data.override_url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json",
                   "X-CSRF-Token": data.csrf_token },
        body: JSON.stringify(body)
      }).then(function (r) {
        return r.json().then(function (j) { return { ok: r.ok, body: j }; });
      }).then(function (res) {
        if (!res.ok) {
          var d = res.body.detail;
          msg.textContent = typeof d === "string" ? d : JSON.stringify(d);
          return;
        }
        window.location.hash = "history";
        window.location.reload();
      }).catch(function (e) { msg.textContent = String(e); });
    });
  }
})();
