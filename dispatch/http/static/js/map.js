/*
 * SCMap: the street map of the dispatcher status page and the live-link pages (rider tracking,
 * driver job), on top of the vendored Leaflet (vendor/leaflet/leaflet.js, loaded first).
 *
 * Why a wrapper: the pages get live updates every few seconds (Server-Sent Events, polling),
 * and redrawing the map on each one would close popups and throw away the dispatcher's zoom
 * and pan. Here markers and lines live in named layers keyed by id and are updated in place:
 * an update moves, restyles, relabels, adds or removes only what changed, and never moves the
 * view (only create() and the fit*() calls do).
 *
 * Works with no tile server reachable (this machine, a venue's locked-down Wi-Fi): the service
 * area, markers, lines, legend and scale are vector layers and DOM controls, not tiles.
 *
 * CSP-friendly: no eval, no inline handlers, no <style> elements or style attributes in markup
 * (styles are set through the CSSOM, which `style-src 'self'` allows). Labels are set as text,
 * never as HTML. `popupHtml` and `attribution` ARE HTML and must come escaped from the server.
 * ES5 plus WeakMap; the only global is window.SCMap.
 *
 *   var map = SCMap.create(el, {tilesUrl, attribution, area: {lat, lng, radius_km},
 *                               legend: true, names: {status: text}, onSelect: fn(sel)});
 *   SCMap.setMarkers(map, "rescues", [{id, lat, lng, kind: "rescue"|"driver", status, label,
 *                                       popupHtml}]);             // -> {added, updated, removed}
 *   SCMap.setLines(map, "offers", [{id, from: [lat, lng], to: [lat, lng],
 *                                   kind: "offer"|"assigned"}]);  // -> {added, updated, removed}
 *   SCMap.drawLine(map, from, to, kind)  // a one-off line outside any named layer
 *   SCMap.fitArea(map[, area])           // view the whole service area
 *   SCMap.fitMarkers(map, ["rescues"], {maxZoom})  // view those markers (else the area)
 *   SCMap.getMarker(map, layerName, id)  // the Leaflet layer, or null (for pages and tests)
 */
(function (window, document) {
  "use strict";

  var L = window.L;
  if (!L || !L.map) {
    throw new Error("SCMap needs Leaflet: load vendor/leaflet/leaflet.js before js/map.js");
  }

  // Status colours. The rescue ones follow the rescue's life (amber waiting, blues and teal
  // under way, green done, red for the one a dispatcher must act on); a driver's colour says
  // whether they can take a job. Drivers are also drawn smaller, with a dark ring, so the two
  // kinds stay apart where colours repeat.
  var COLOURS = {
    rescue: {
      searching: "#d97706",
      assigned: "#2563eb",
      en_route: "#7c3aed",
      arrived: "#0891b2",
      in_transit: "#0d9488",
      completed: "#16a34a",
      cancelled: "#6b7280",
      unfulfilled: "#dc2626"
    },
    driver: {
      available: "#16a34a",
      offered: "#d97706",
      on_job: "#2563eb",
      offline: "#9ca3af"
    },
    line: { offer: "#d97706", assigned: "#2563eb" },
    area: "#0969da",
    unknown: "#6b7280"
  };
  var LEGEND = {
    rescue: ["searching", "assigned", "en_route", "arrived", "in_transit", "unfulfilled"],
    driver: ["available", "offered", "on_job", "offline"],
    line: ["offer", "assigned"]
  };
  var LINE_DASH = { offer: "6 6", assigned: null };
  // Panes give a stable stacking order whatever order layers are added in:
  // area < lines < drivers < rescues (< Leaflet's tooltips and popups).
  var PANES = { scArea: 350, scLines: 390, scDrivers: 410, scRescues: 420 };

  // Per-map state (named layers, names, callbacks), kept off the global scope and off the
  // L.Map object; each marker and line only carries its own last-drawn values as `_sc`.
  var states = new WeakMap();

  function state(map) {
    var s = states.get(map);
    if (!s) {
      throw new Error("SCMap: not a map made by SCMap.create");
    }
    return s;
  }

  function dict() {
    return Object.create(null); // ids such as "constructor" or "__proto__" are ordinary keys
  }

  function finite(x) {
    return typeof x === "number" && isFinite(x);
  }

  function statusName(s, status) {
    var n = s.names[status];
    return n != null ? String(n) : String(status || "").replace(/_/g, " ");
  }

  function markerStyle(kind, status) {
    var palette = COLOURS[kind] || COLOURS.rescue;
    var colour = palette[status] || COLOURS.unknown;
    if (kind === "driver") {
      return { radius: 6, color: "#111827", weight: 2, fillColor: colour, fillOpacity: 1 };
    }
    return { radius: 9, color: "#ffffff", weight: 3, fillColor: colour, fillOpacity: 1 };
  }

  function lineStyle(kind) {
    return {
      color: COLOURS.line[kind] || COLOURS.unknown,
      weight: kind === "assigned" ? 3 : 2,
      opacity: 0.9,
      dashArray: LINE_DASH[kind] || null,
      interactive: false,
      pane: "scLines"
    };
  }

  // The marker's SVG element carries its id, kind and status, so page CSS and browser tests
  // can find it without reaching into Leaflet.
  function tagElement(layer, attrs) {
    var el = layer.getElement && layer.getElement();
    if (!el) {
      return;
    }
    for (var k in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, k)) {
        el.setAttribute("data-sc-" + k, String(attrs[k]));
      }
    }
  }

  function labelNode(text) {
    var span = document.createElement("span");
    span.className = "sc-label";
    span.textContent = text; // text, never HTML: labels carry names people typed
    return span;
  }

  // Leaflet's tooltip box (6px padding, shadow) is made for hover tips; a permanent label
  // beside every marker must be smaller or the labels hide each other.
  function compactLabel(tooltip) {
    var el = tooltip && tooltip.getElement();
    if (!el) {
      return;
    }
    el.style.padding = "0 4px";
    el.style.fontSize = "11px";
    el.style.lineHeight = "16px";
    el.style.boxShadow = "none";
  }

  function group(map, key) {
    var s = state(map);
    var g = s.groups[key];
    if (!g) {
      g = s.groups[key] = { layer: L.layerGroup().addTo(map), items: dict() };
    }
    return g;
  }

  // ---- controls -------------------------------------------------------------------------

  function swatch(kind, colour) {
    var el = document.createElement("span");
    var st = el.style;
    st.display = "inline-block";
    st.verticalAlign = "middle";
    st.marginRight = "6px";
    st.boxSizing = "border-box";
    if (kind === "line") {
      st.width = "18px";
      st.height = "0";
      st.borderTop = "3px " + (LINE_DASH[colour.key] ? "dashed " : "solid ") + colour.value;
      return el;
    }
    var size = kind === "driver" ? 12 : 16;
    st.width = st.height = size + "px";
    st.borderRadius = "50%";
    st.background = colour.value;
    st.border = kind === "driver" ? "2px solid #111827" : "3px solid #ffffff";
    if (kind !== "driver") {
      st.boxShadow = "0 0 0 1px #9ca3af"; // keeps the white ring visible on a white legend
    }
    return el;
  }

  function legendControl(s, legend) {
    var Legend = L.Control.extend({
      options: { position: "bottomright" },
      onAdd: function () {
        // Leaflet's own layer-switcher box styling: no extra stylesheet needed.
        var box = L.DomUtil.create("div", "sc-legend leaflet-control-layers leaflet-control-layers-expanded");
        box.setAttribute("role", "group");
        box.setAttribute("aria-label", s.names.legend || "Map legend");
        box.style.lineHeight = "18px";
        var sections = [
          ["rescue", s.names.rescues || "Rescues", COLOURS.rescue],
          ["driver", s.names.drivers || "Drivers", COLOURS.driver],
          ["line", s.names.lines || "Driver to rescue", COLOURS.line]
        ];
        for (var i = 0; i < sections.length; i++) {
          var kind = sections[i][0];
          var statuses = legend[kind] || [];
          if (!statuses.length) {
            continue;
          }
          var head = L.DomUtil.create("div", "sc-legend-title", box);
          head.textContent = sections[i][1];
          head.style.fontWeight = "600";
          head.style.marginTop = i ? "4px" : "0";
          for (var j = 0; j < statuses.length; j++) {
            var key = statuses[j];
            var row = L.DomUtil.create("div", "sc-legend-row", box);
            row.setAttribute("data-sc-kind", kind);
            row.setAttribute("data-sc-status", key);
            row.appendChild(swatch(kind, { key: key, value: sections[i][2][key] || COLOURS.unknown }));
            row.appendChild(document.createTextNode(statusName(s, key)));
          }
        }
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.disableScrollPropagation(box);
        return box;
      }
    });
    return new Legend();
  }

  // Shown while tiles fail to load, so a dispatcher knows why the streets are missing.
  function tileNotice(s) {
    var Notice = L.Control.extend({
      options: { position: "topright" },
      onAdd: function () {
        var el = L.DomUtil.create("div", "sc-tiles-notice leaflet-bar");
        el.setAttribute("role", "status");
        el.textContent = s.names.tiles_unavailable || "Street map unavailable: service area and positions only";
        var st = el.style;
        st.background = "#fff8c5";
        st.color = "#1b1f24";
        st.padding = "2px 8px";
        st.maxWidth = "16em";
        return el;
      }
    });
    return new Notice();
  }

  // ---- API ------------------------------------------------------------------------------

  /**
   * Make a map in `el`, centred on the service area.
   * opts: tilesUrl (template, may be empty or unreachable), attribution (HTML, trusted),
   * area {lat, lng, radius_km}, legend (true | false | {rescue: [...], driver: [...], line: [...]}),
   * names (status -> display text, plus legend / rescues / drivers / lines / tiles_unavailable /
   * zoom_in / zoom_out / map: for the Spanish pages), onSelect(fn({layer, id, kind})) when a marker is clicked,
   * zoom (start zoom; default: fit the area), maxZoom (default 19).
   */
  function create(el, opts) {
    opts = opts || {};
    var area = opts.area;
    if (!area || !finite(area.lat) || !finite(area.lng)) {
      throw new Error("SCMap.create: opts.area {lat, lng, radius_km} is required");
    }
    var map = L.map(el, { zoomControl: false, maxZoom: opts.maxZoom || 19 });
    var s = {
      area: area,
      groups: dict(),
      names: opts.names || {},
      onSelect: typeof opts.onSelect === "function" ? opts.onSelect : null,
      notice: null
    };
    L.control.zoom({ zoomInTitle: s.names.zoom_in || "Zoom in", zoomOutTitle: s.names.zoom_out || "Zoom out" })
      .addTo(map);
    states.set(map, s);
    if (!el.hasAttribute("aria-label")) {
      el.setAttribute("aria-label", s.names.map || "Map of rescues and drivers");
    }
    for (var name in PANES) {
      if (Object.prototype.hasOwnProperty.call(PANES, name)) {
        map.createPane(name).style.zIndex = String(PANES[name]);
      }
    }
    map.getPane("scArea").style.pointerEvents = "none";
    map.getPane("scLines").style.pointerEvents = "none";

    if (opts.tilesUrl) {
      var tiles = L.tileLayer(opts.tilesUrl, {
        attribution: opts.attribution || "",
        maxZoom: opts.maxZoom || 19,
        crossOrigin: false
      });
      tiles.on("tileerror", function () {
        if (!s.notice) {
          s.notice = tileNotice(s).addTo(map);
        }
      });
      tiles.on("tileload", function () {
        if (s.notice) {
          map.removeControl(s.notice);
          s.notice = null;
        }
      });
      tiles.addTo(map);
    }

    L.circle([area.lat, area.lng], {
      radius: (finite(area.radius_km) ? area.radius_km : 5) * 1000,
      pane: "scArea",
      interactive: false,
      color: COLOURS.area,
      weight: 2,
      dashArray: "4 4",
      fillColor: COLOURS.area,
      fillOpacity: 0.06
    }).addTo(map);

    L.control.scale({ metric: true, imperial: true, maxWidth: 120 }).addTo(map);
    if (opts.legend !== false) {
      var legend = typeof opts.legend === "object" && opts.legend ? opts.legend : LEGEND;
      legendControl(s, legend).addTo(map);
    }
    if (finite(opts.zoom)) {
      map.setView([area.lat, area.lng], opts.zoom);
    } else {
      fitArea(map);
    }
    return map;
  }

  /**
   * Make the markers of layer `layerName` be exactly `items`, updating in place by id:
   * existing markers move (open popups and tooltips follow), change colour and label; new ids
   * are added, missing ids removed. Items without finite lat/lng count as missing (a driver
   * with no position yet). The view is left alone.
   */
  function setMarkers(map, layerName, items) {
    var s = state(map);
    var g = group(map, "markers:" + layerName);
    var seen = dict();
    var counts = { added: 0, updated: 0, removed: 0 };
    items = items || [];
    for (var i = 0; i < items.length; i++) {
      var it = items[i];
      if (!it || it.id == null || !finite(it.lat) || !finite(it.lng)) {
        continue;
      }
      var id = String(it.id);
      var kind = it.kind === "driver" ? "driver" : "rescue";
      var label = it.label == null ? "" : String(it.label);
      var popup = it.popupHtml == null ? null : String(it.popupHtml);
      seen[id] = true;
      var m = g.items[id];
      if (m && m._sc.kind !== kind) {
        // A kind change moves the marker to another pane: simplest to make it anew.
        g.layer.removeLayer(m);
        delete g.items[id];
        m = null;
      }
      if (!m) {
        var style = markerStyle(kind, it.status);
        style.pane = kind === "driver" ? "scDrivers" : "scRescues";
        style.className = "sc-marker sc-" + kind;
        m = L.circleMarker([it.lat, it.lng], style);
        m._sc = { kind: kind, status: it.status, label: null, popup: null };
        if (s.onSelect) {
          m.on("click", selectHandler(s, layerName, id, kind));
        }
        g.layer.addLayer(m);
        g.items[id] = m;
        tagElement(m, { id: id, kind: kind, status: it.status || "" });
        counts.added++;
      } else {
        var ll = m.getLatLng();
        var changed = false;
        if (ll.lat !== it.lat || ll.lng !== it.lng) {
          m.setLatLng([it.lat, it.lng]);
          changed = true;
        }
        if (m._sc.status !== it.status) {
          m.setStyle(markerStyle(kind, it.status));
          m._sc.status = it.status;
          tagElement(m, { status: it.status || "" });
          changed = true;
        }
        if (changed) {
          counts.updated++;
        }
      }
      if (label !== m._sc.label) {
        if (!label) {
          m.unbindTooltip();
        } else if (m.getTooltip()) {
          m.setTooltipContent(labelNode(label));
        } else {
          m.bindTooltip(labelNode(label), {
            permanent: true,
            direction: "right",
            offset: [kind === "driver" ? 6 : 9, 0],
            className: "sc-tooltip sc-tooltip-" + kind,
            opacity: 0.9
          });
          compactLabel(m.getTooltip());
        }
        m._sc.label = label;
      }
      if (popup !== m._sc.popup) {
        if (popup === null) {
          m.unbindPopup();
        } else if (m.getPopup()) {
          m.setPopupContent(popup); // an open popup stays open with the new content
        } else {
          m.bindPopup(popup);
        }
        m._sc.popup = popup;
      }
    }
    for (var old in g.items) {
      if (!seen[old]) {
        g.layer.removeLayer(g.items[old]);
        delete g.items[old];
        counts.removed++;
      }
    }
    return counts;
  }

  function selectHandler(s, layerName, id, kind) {
    return function () {
      s.onSelect({ layer: layerName, id: id, kind: kind });
    };
  }

  /**
   * Make the lines of layer `layerName` be exactly `items` ({id, from: [lat, lng],
   * to: [lat, lng], kind: "offer" | "assigned"}), updated in place like markers: offers dashed
   * amber, assignments solid blue.
   */
  function setLines(map, layerName, items) {
    var g = group(map, "lines:" + layerName);
    var seen = dict();
    var counts = { added: 0, updated: 0, removed: 0 };
    items = items || [];
    for (var i = 0; i < items.length; i++) {
      var it = items[i];
      if (!it || it.id == null || !validPoint(it.from) || !validPoint(it.to)) {
        continue;
      }
      var id = String(it.id);
      var kind = it.kind === "assigned" ? "assigned" : "offer";
      seen[id] = true;
      var line = g.items[id];
      if (!line) {
        line = g.items[id] = makeLine(it.from, it.to, kind);
        g.layer.addLayer(line);
        tagElement(line, { id: id, kind: kind });
        counts.added++;
        continue;
      }
      var pts = line.getLatLngs();
      var moved = !same(pts[0], it.from) || !same(pts[1], it.to);
      if (moved) {
        line.setLatLngs([it.from, it.to]);
      }
      var restyled = line._sc.kind !== kind;
      if (restyled) {
        line.setStyle(lineStyle(kind));
        line._sc.kind = kind;
        tagElement(line, { kind: kind });
      }
      if (moved || restyled) {
        counts.updated++;
      }
    }
    for (var old in g.items) {
      if (!seen[old]) {
        g.layer.removeLayer(g.items[old]);
        delete g.items[old];
        counts.removed++;
      }
    }
    return counts;
  }

  function validPoint(p) {
    return p && finite(p[0]) && finite(p[1]);
  }

  function same(ll, p) {
    return ll.lat === p[0] && ll.lng === p[1];
  }

  function makeLine(from, to, kind) {
    var style = lineStyle(kind);
    style.className = "sc-line sc-line-" + kind;
    var line = L.polyline([from, to], style);
    line._sc = { kind: kind };
    return line;
  }

  /** A one-off line (e.g. the tracking page's driver-to-pickup), returned for the caller to
   *  move (setLatLngs) or remove. */
  function drawLine(map, from, to, kind) {
    state(map);
    if (!validPoint(from) || !validPoint(to)) {
      return null;
    }
    return makeLine(from, to, kind === "assigned" ? "assigned" : "offer").addTo(map);
  }

  /** Fit the view to the service area (the one given to create() unless another is passed). */
  function fitArea(map, area) {
    var a = area || state(map).area;
    var km = finite(a.radius_km) ? a.radius_km : 5;
    map.fitBounds(L.latLng(a.lat, a.lng).toBounds(km * 2000), { padding: [8, 8] });
    return map;
  }

  /** Fit the view to the markers of the named layers (all marker layers when omitted);
   *  with none, to the service area. opts.maxZoom keeps one marker from zooming in to 19. */
  function fitMarkers(map, layerNames, opts) {
    var s = state(map);
    var bounds = L.latLngBounds([]);
    var keys = layerNames
      ? layerNames.map(function (n) { return "markers:" + n; })
      : Object.keys(s.groups).filter(function (k) { return k.indexOf("markers:") === 0; });
    for (var i = 0; i < keys.length; i++) {
      var g = s.groups[keys[i]];
      for (var id in (g ? g.items : {})) {
        bounds.extend(g.items[id].getLatLng());
      }
    }
    if (!bounds.isValid()) {
      return fitArea(map);
    }
    map.fitBounds(bounds, { padding: [40, 40], maxZoom: (opts && opts.maxZoom) || 16 });
    return map;
  }

  /** The Leaflet layer for one marker, or null: for pages that open its popup on a row click. */
  function getMarker(map, layerName, id) {
    var g = state(map).groups["markers:" + layerName];
    return (g && g.items[String(id)]) || null;
  }

  window.SCMap = {
    create: create,
    setMarkers: setMarkers,
    setLines: setLines,
    drawLine: drawLine,
    fitArea: fitArea,
    fitMarkers: fitMarkers,
    getMarker: getMarker,
    colours: COLOURS
  };
})(window, document);
