/*
 * The driver's job page (/d/<token>): pickup and drop-off on a map, "share my location", and
 * the arrived / done buttons.
 *
 * Sharing uses the browser's Geolocation API (watchPosition) while the page is open, and
 * posts at most one position every POST_EVERY_MS: the newest one the phone gave, so a
 * stream of fixes costs one request every few seconds. The screen is kept awake while
 * sharing where the browser allows it (a phone that sleeps stops giving positions). Once
 * the server answers 410 the job is closed or someone else's: sharing stops and the buttons go.
 *
 * No inline script or style (the page's Content-Security-Policy forbids them).
 */
(function (window, document, navigator) {
  "use strict";

  var POST_EVERY_MS = 5000;
  var STATE_POLL_MS = 15000;
  var CONFIRM_MS = 5000;
  var words = JSON.parse(document.getElementById("sc-words").textContent);
  var config = JSON.parse(document.getElementById("sc-config").textContent);
  var t = words.job;
  var el = {
    status: document.getElementById("status"),
    share: document.getElementById("share"),
    shareStatus: document.getElementById("share-status"),
    arrived: document.getElementById("arrived"),
    done: document.getElementById("done"),
    result: document.getElementById("result")
  };
  var job = config.job;
  var map = window.SCMap.create(document.getElementById("map"), {
    tilesUrl: config.tilesUrl,
    attribution: words.attribution,
    area: config.area,
    legend: false,
    names: { map: t.map, tiles_unavailable: words.tiles_unavailable, zoom_in: words.zoom_in,
             zoom_out: words.zoom_out }
  });
  var stops = [{ id: "pickup", lat: job.pickup.lat, lng: job.pickup.lng, kind: "rescue", status: "assigned",
                 label: t.pickup }];
  if (job.dropoff) {
    stops.push({ id: "dropoff", lat: job.dropoff.lat, lng: job.dropoff.lng, kind: "rescue", status: "in_transit",
                 label: t.dropoff });
  }
  window.SCMap.setMarkers(map, "stops", stops);
  window.SCMap.fitMarkers(map, ["stops"], { maxZoom: 15 });

  var state = config.state;
  var watchId = null;
  var latest = null;     // the newest fix not yet sent
  var lastSent = 0;
  var inFlight = false;
  var sendTimer = null;
  var wakeLock = null;
  var confirmUntil = 0;
  var sent = 0;

  function fill(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (all, key) {
      return values[key] != null ? String(values[key]) : all;
    });
  }

  function say(node, text, bad) {
    node.textContent = text || "";
    node.className = "sc-note" + (bad ? " sc-error" : "");
  }

  function post(url, body, done) {
    var request = new XMLHttpRequest();
    request.open("POST", url);
    request.setRequestHeader("Content-Type", "application/json");
    request.onload = function () {
      var answer = {};
      try {
        answer = JSON.parse(request.responseText);
      } catch (e) { /* no body worth reading */ }
      done(request.status, answer);
    };
    request.onerror = function () { done(0, {}); };
    request.send(JSON.stringify(body));
  }

  function showState(next) {
    state = next;
    if (!state.live) {
      var closed = state.status === "completed" || state.status === "cancelled" || state.status === "unfulfilled";
      el.status.textContent = closed ? (t.status[state.status] || t.dead_closed) : t.dead_reassigned;
      el.status.setAttribute("data-status", state.status || "");
      stopSharing();
      el.share.disabled = el.arrived.disabled = el.done.disabled = true;
      return;
    }
    el.status.textContent = t.status[state.status] || state.status;
    el.status.setAttribute("data-status", state.status);
    el.arrived.disabled = !(state.status === "assigned" || state.status === "en_route");
    el.done.disabled = !(state.status === "arrived" || state.status === "in_transit");
  }

  // -- sharing the position --------------------------------------------------------------------
  function sendLatest() {
    sendTimer = null;
    if (!latest || inFlight || watchId === null) {
      return;
    }
    var wait = lastSent + POST_EVERY_MS - Date.now();
    if (wait > 0) {
      sendTimer = window.setTimeout(sendLatest, wait);
      return;
    }
    var fix = latest;
    latest = null;
    inFlight = true;
    lastSent = Date.now();
    post(config.locationUrl, fix, function (status, answer) {
      inFlight = false;
      if (status === 200) {
        sent++;
        var line = fill(t.sent, { time: new Date().toLocaleTimeString() });
        if (answer.eta_minutes) {
          line += " · " + fill(t.rider_eta, { n: answer.eta_minutes });
        }
        say(el.shareStatus, line);
        showState(answer);
      } else if (status === 410) {
        showState(answer.live === false ? answer : { live: false, status: answer.status });
      } else if (status === 429) {
        say(el.shareStatus, t.too_fast, true);
      } else if (status === 0) {
        say(el.shareStatus, t.offline, true);
      }
      if (latest) {
        sendTimer = window.setTimeout(sendLatest, POST_EVERY_MS);
      }
    });
  }

  function onFix(position) {
    var c = position.coords;
    latest = { lat: c.latitude, lng: c.longitude, accuracy: c.accuracy };
    window.SCMap.setMarkers(map, "me", [{ id: "me", lat: c.latitude, lng: c.longitude, kind: "driver",
                                          status: "on_job", label: t.you }]);
    if (!sendTimer && !inFlight) {
      sendLatest();
    }
  }

  function onFixError(err) {
    if (err && err.code === 1) { // PERMISSION_DENIED
      stopSharing();
      say(el.shareStatus, t.geo_denied, true);
    } else {
      say(el.shareStatus, t.geo_error, true);
    }
  }

  function keepAwake() {
    if (navigator.wakeLock && navigator.wakeLock.request) {
      navigator.wakeLock.request("screen").then(function (lock) { wakeLock = lock; }, function () {});
    }
  }

  function startSharing() {
    if (!navigator.geolocation || !window.isSecureContext) {
      say(el.shareStatus, t.geo_unsupported, true);
      return;
    }
    watchId = navigator.geolocation.watchPosition(onFix, onFixError,
                                                  { enableHighAccuracy: true, maximumAge: 5000, timeout: 30000 });
    el.share.textContent = t.stop_share;
    el.share.setAttribute("aria-pressed", "true");
    say(el.shareStatus, t.waiting_fix);
    keepAwake();
  }

  function stopSharing() {
    if (watchId !== null) {
      navigator.geolocation.clearWatch(watchId);
      watchId = null;
    }
    if (sendTimer) {
      window.clearTimeout(sendTimer);
      sendTimer = null;
    }
    latest = null;
    if (wakeLock) {
      wakeLock.release().catch(function () {});
      wakeLock = null;
    }
    el.share.textContent = t.share;
    el.share.setAttribute("aria-pressed", "false");
  }

  el.share.addEventListener("click", function () {
    if (watchId === null) {
      startSharing();
    } else {
      stopSharing();
      say(el.shareStatus, t.share_hint);
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && watchId !== null) {
      keepAwake(); // the browser drops the lock when the page is hidden
    }
  });

  // -- arrived / done ---------------------------------------------------------------------------
  function act(name) {
    el.arrived.disabled = el.done.disabled = true;
    post(config.actionUrls[name], {}, function (status, answer) {
      if (status === 200) {
        say(el.result, t.marked[answer.status] || t.status[answer.status] || "");
        refresh();
      } else if (status === 410) {
        showState({ live: false, status: answer.status });
      } else if (status === 429) {
        say(el.result, t.too_fast, true);
        showState(state);
      } else if (status === 0) {
        say(el.result, t.offline, true);
        showState(state);
      } else {
        say(el.result, t.refused, true);
        refresh();
      }
    });
  }

  el.arrived.addEventListener("click", function () { act("arrived"); });
  el.done.addEventListener("click", function () {
    if (Date.now() > confirmUntil) { // a mistaken tap must not end the job and bill the rider
      confirmUntil = Date.now() + CONFIRM_MS;
      el.done.textContent = t.done_confirm;
      el.done.className = "sc-confirm";
      window.setTimeout(function () {
        el.done.textContent = t.done;
        el.done.className = "";
      }, CONFIRM_MS);
      return;
    }
    confirmUntil = 0;
    el.done.textContent = t.done;
    el.done.className = "";
    act("done");
  });

  // -- the job's state, for changes made elsewhere (texts, a dispatcher) ------------------------
  function refresh() {
    var request = new XMLHttpRequest();
    request.open("GET", config.stateUrl);
    request.onload = function () {
      if (request.status === 200) {
        try {
          showState(JSON.parse(request.responseText));
        } catch (e) { /* the next poll tries again */ }
      }
    };
    request.send();
  }

  showState(state);
  var poller = window.setInterval(function () {
    if (!state.live) {
      window.clearInterval(poller);
      return;
    }
    refresh();
  }, STATE_POLL_MS);

  window.SCJob = {
    map: map,
    state: function () { return state; },
    sent: function () { return sent; },
    sharing: function () { return watchId !== null; }
  };
})(window, document, navigator);
