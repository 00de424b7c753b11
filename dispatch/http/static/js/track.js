/*
 * The rider's tracking page (/t/<token>): the driver on the map, the ETA and the status, live.
 *
 * Updates come as Server-Sent Events (each one the page's new state, the same JSON as
 * state.json); while no stream is open (the server had none to spare, the network dropped, a
 * browser without EventSource) the page polls state.json every few seconds instead, and a
 * slow poll runs anyway in case a stream goes quiet. Once the rescue is closed everything
 * stops and the driver's marker goes.
 *
 * No inline script or style (the page's Content-Security-Policy forbids them): words and
 * settings come from JSON script blocks, text is set as text.
 */
(function (window, document) {
  "use strict";

  var CLOSED = { completed: true, cancelled: true, unfulfilled: true };
  var SAFETY_POLL_MS = 60000;
  var words = JSON.parse(document.getElementById("sc-words").textContent);
  var config = JSON.parse(document.getElementById("sc-config").textContent);
  var t = words.track;
  var el = {
    status: document.getElementById("status"),
    eta: document.getElementById("eta"),
    driver: document.getElementById("driver"),
    note: document.getElementById("note"),
    live: document.getElementById("live")
  };
  var map = window.SCMap.create(document.getElementById("map"), {
    tilesUrl: config.tilesUrl,
    attribution: words.attribution,
    area: config.area,
    legend: false,
    names: { map: t.map, tiles_unavailable: words.tiles_unavailable, zoom_in: words.zoom_in,
             zoom_out: words.zoom_out }
  });
  var current = null;
  var centred = false;
  var source = null;
  var lastUpdate = 0;
  var timer = null;
  var updates = 0;

  function fill(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (all, key) {
      return values[key] != null ? String(values[key]) : all;
    });
  }

  function render(state) {
    if (!state || !state.status) {
      return;
    }
    current = state;
    lastUpdate = Date.now();
    updates++;
    el.status.textContent = t.status[state.status] || state.status;
    el.status.setAttribute("data-status", state.status);
    el.eta.textContent = state.eta_minutes ? fill(t.eta, { n: state.eta_minutes }) : "";
    var d = state.driver;
    el.driver.textContent = d ? fill(t.vehicle, { name: d.name, vehicle: d.vehicle }) : "";
    var placed = d && typeof d.lat === "number" && typeof d.lng === "number";
    window.SCMap.setMarkers(map, "driver", placed ? [{
      id: "driver", lat: d.lat, lng: d.lng, kind: "driver", status: "on_job", label: d.name || t.driver
    }] : []);
    if (placed) {
      var here = [d.lat, d.lng];
      if (!centred) {
        map.setView(here, 15);
        centred = true;
      } else if (!map.getBounds().pad(-0.1).contains(here)) {
        map.panTo(here);
      }
    }
    if (CLOSED[state.status]) {
      el.note.textContent = t.closed;
      stop();
    } else if (state.status === "searching") {
      el.note.textContent = t.searching;
    } else {
      el.note.textContent = placed ? "" : t.no_position;
    }
  }

  function poll() {
    var request = new XMLHttpRequest();
    request.open("GET", config.stateUrl);
    request.setRequestHeader("Accept", "application/json");
    request.onload = function () {
      if (request.status === 200) {
        try {
          render(JSON.parse(request.responseText));
        } catch (e) { /* a broken answer: the next poll tries again */ }
      }
    };
    request.send();
  }

  function tick() {
    var streaming = source && source.readyState === 1;
    el.live.hidden = !streaming;
    if (!streaming || Date.now() - lastUpdate > SAFETY_POLL_MS) {
      poll();
    }
  }

  function listen() {
    if (!window.EventSource) {
      return;
    }
    source = new window.EventSource(config.eventsUrl);
    source.addEventListener("state", function (e) {
      try {
        render(JSON.parse(e.data));
      } catch (err) { /* ignore one bad event */ }
    });
    source.addEventListener("open", function () {
      el.live.hidden = false;
      poll(); // whatever changed while no stream was open
    });
    source.addEventListener("error", function () {
      el.live.hidden = true; // CLOSED (a 503: no stream to spare) or reconnecting: polls cover it
    });
  }

  function stop() {
    if (source) {
      source.close();
      source = null;
    }
    if (timer) {
      window.clearInterval(timer);
      timer = null;
    }
    el.live.hidden = true;
  }

  render(config.state);
  if (!CLOSED[config.state.status]) {
    listen();
    timer = window.setInterval(tick, config.pollSeconds * 1000);
  }

  // For the page's own tests and for debugging: the map, the last state, how updates arrive.
  window.SCTrack = {
    map: map,
    state: function () { return current; },
    updates: function () { return updates; },
    streaming: function () { return !!(source && source.readyState === 1); }
  };
})(window, document);
