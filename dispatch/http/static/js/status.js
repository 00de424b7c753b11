/*
 * The dispatcher status page: the board, help requests, today's figures, search, the map, and
 * the selected rescue with its actions.
 *
 * Live: an EventSource on /api/stream says when anything changed; the page then refetches the
 * board (and the selected rescue), at most a few times a second. While the stream is down it
 * polls instead. Updates patch the page in place: tables are rebuilt but forms never are, so a
 * half-typed text, an open select and the scroll of every box survive an update.
 *
 * Every action goes through the admin API with the session's CSRF token; the server decides
 * what a role may do (403), the page only hides what the role cannot use.
 */
(function (window, document) {
  "use strict";

  var config = JSON.parse(document.getElementById("sc-config").textContent);
  var CSRF = document.querySelector("meta[name=csrf-token]").content;
  var ROLES = ["viewer", "dispatcher", "admin"];
  var CLOSED = { completed: true, cancelled: true, unfulfilled: true };
  var POLL_MS = 5000, DEBOUNCE_MS = 250, FIGURES_MS = 60000, PAGE = 20;
  var board = null, selected = null, detail = null, searchOffset = 0;
  var $ = function (id) { return document.getElementById(id); };
  var may = function (role) { return ROLES.indexOf(config.role) >= ROLES.indexOf(role); };
  var esc = function (s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  };
  var age = function (s) {
    return s == null ? "-" : s < 90 ? s + " s" : s < 5400 ? Math.round(s / 60) + " min" : Math.round(s / 3600) + " h";
  };
  var when = function (isoText) { return isoText ? new Date(isoText).toLocaleString() : "-"; };

  function api(path, opts) {
    opts = opts || {};
    var headers = { "Content-Type": "application/json", "X-CSRF-Token": CSRF };
    return fetch(path, { credentials: "same-origin", method: opts.method || "GET", body: opts.body, headers: headers })
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/login"; return null; }
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok) { throw new Error(body.error || r.statusText); }
          return body;
        });
      });
  }

  // -- notices that stay until dismissed ------------------------------------------------------
  function notice(text, ok) {
    var div = document.createElement("div");
    div.className = "notice " + (ok ? "ok" : "bad");
    div.setAttribute("role", ok ? "status" : "alert");
    var span = document.createElement("span");
    span.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "Dismiss";
    close.addEventListener("click", function () { div.remove(); });
    div.appendChild(span);
    div.appendChild(close);
    $("notices").prepend(div);
  }

  // -- the map -------------------------------------------------------------------------------
  var map = window.SCMap.create($("map"), {
    tilesUrl: config.tilesUrl,
    attribution: "&copy; <a href=\"https://www.openstreetmap.org/copyright\">OpenStreetMap</a> contributors",
    area: config.area,
    legend: true,
    onSelect: function (sel) { if (sel.kind === "rescue") { select(sel.id); } }
  });

  function drawMap() {
    var drivers = {};
    board.drivers.forEach(function (d) { drivers[d.id] = d; });
    window.SCMap.setMarkers(map, "rescues", board.rescues.map(function (r) {
      return { id: r.id, lat: r.pickup.lat, lng: r.pickup.lng, kind: "rescue", status: r.status,
               label: r.code + " " + r.status };
    }));
    window.SCMap.setMarkers(map, "drivers", board.drivers.filter(function (d) {
      return d.active && d.location && d.status !== "offline";
    }).map(function (d) {
      return { id: d.id, lat: d.location.lat, lng: d.location.lng, kind: "driver", status: d.status,
               label: d.name + " (" + d.status + ")" };
    }));
    var byId = {};
    board.rescues.forEach(function (r) { byId[r.id] = r; });
    var lines = [];
    board.drivers.forEach(function (d) {
      if (!d.location) { return; }
      var offerFor = d.offer_rescue_id && byId[d.offer_rescue_id];
      if (offerFor) {
        lines.push({ id: "offer:" + d.id, from: [d.location.lat, d.location.lng],
                     to: [offerFor.pickup.lat, offerFor.pickup.lng], kind: "offer" });
      }
    });
    board.rescues.forEach(function (r) {
      var d = r.driver_id && drivers[r.driver_id];
      if (d && d.location) {
        lines.push({ id: "job:" + r.id, from: [d.location.lat, d.location.lng], to: [r.pickup.lat, r.pickup.lng],
                     kind: "assigned" });
      }
    });
    window.SCMap.setLines(map, "links", lines);
  }

  // -- the board -----------------------------------------------------------------------------
  function renderBoard() {
    var st = board.stats;
    $("stats").innerHTML = [
      ["Searching", st.by_status.searching], ["On the way", st.by_status.assigned + st.by_status.en_route],
      ["At rider", st.by_status.arrived + st.by_status.in_transit], ["Drivers online", st.drivers_online],
      ["Median to assign", st.median_minutes_to_assign_today == null ? "-" : st.median_minutes_to_assign_today + " min"],
      ["Rescues today", st.rescues_today]
    ].map(function (kv) { return "<div><b>" + esc(kv[1]) + "</b>" + esc(kv[0]) + "</div>"; }).join("");
    $("rescues").tBodies[0].innerHTML = board.rescues.map(function (r) {
      return "<tr data-id=\"" + esc(r.id) + "\" tabindex=\"0\" class=\"" + (r.id === selected ? "sel" : "") + "\">" +
        "<td>" + esc(r.code) + " " + r.flags.map(function (f) {
          return "<span class=\"flag " + esc(f.split(" ")[0]) + "\">" + esc(f) + "</span>";
        }).join("") + "</td><td>" + esc(r.status) + "</td><td>" + age(r.age_s) + "</td><td>" + esc(r.problem) +
        "</td><td>" + esc(r.pickup.label) + "</td><td>" + esc(r.rider) + "</td><td>" + esc(r.driver || "-") +
        "</td><td>" + (r.eta_min ? r.eta_min + " min" : "-") + "</td><td>" + esc(r.payment_status) + "</td></tr>";
    }).join("") || "<tr><td colspan=\"9\" class=\"muted\">No open rescues.</td></tr>";
    $("drivers").tBodies[0].innerHTML = board.drivers.filter(function (d) { return d.active; }).map(function (d) {
      return "<tr><td>" + esc(d.name) + "<br><span class=\"muted\">" + esc(d.vehicle) + "</span></td><td>" +
        esc(d.status) + "</td><td>" + age(d.location_age_s) + "</td><td>" + esc(d.job || "-") + "</td><td>" +
        (d.rating == null ? "-" : esc(d.rating)) + "</td></tr>";
    }).join("") || "<tr><td colspan=\"5\" class=\"muted\">No drivers.</td></tr>";
    drawMap();
    fillDriverChoices();
  }

  function renderHelp(requests) {
    $("help-card").hidden = requests.length === 0;
    $("help").innerHTML = requests.map(function (h) {
      return "<li data-help=\"" + esc(h.id) + "\"><b>" + esc(h.reason === "asked" ? "Asked for a person" : "Not understood") +
        "</b> · " + esc(h.phone) + " · " + esc(when(h.created_at)) + "<br>“" + esc(h.text) + "”" +
        (may("dispatcher") ? " <button type=\"button\" data-resolve=\"" + esc(h.id) + "\">Resolve</button>" : "") + "</li>";
    }).join("");
  }

  function refresh() {
    return Promise.all([api("/api/board"), api("/api/help-requests?status=open&limit=50")]).then(function (got) {
      if (!got[0]) { return; }
      board = got[0];
      renderBoard();
      renderHelp(got[1].help_requests);
      $("updated").textContent = "updated " + new Date().toLocaleTimeString() + (live ? " · live" : " · polling");
      if (selected) { return loadDetail(selected); }
    }).catch(function (e) { $("updated").textContent = "cannot reach the service: " + e.message; });
  }

  function refreshFigures() {
    api("/api/figures").then(function (f) {
      if (!f) { return; }
      var share = f.unfulfilled_share == null ? "-" : Math.round(f.unfulfilled_share * 100) + "%";
      $("charts").innerHTML = "<figure>" + f.charts.rescues_per_hour + "<figcaption>Rescues per hour</figcaption></figure>" +
        "<figure>" + f.charts.median_wait + "<figcaption>Median wait until assigned</figcaption></figure>" +
        "<div><b>" + esc(share) + "</b> unfulfilled today (" + esc(f.unfulfilled_today) + " of " + esc(f.rescues_today) + ")</div>";
    }).catch(function () {});
  }

  // -- live updates: the stream, else polling --------------------------------------------------
  var live = false, pending = null, pollTimer = null;
  function soon() {
    if (pending) { return; }
    pending = setTimeout(function () { pending = null; refresh(); }, DEBOUNCE_MS);
  }
  function poll(on) {
    if (on && !pollTimer) { pollTimer = setInterval(refresh, POLL_MS); }
    if (!on && pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  }
  function connect() {
    if (!window.EventSource) { poll(true); return; }
    var source = new EventSource("/api/stream");
    source.addEventListener("open", function () { live = true; poll(false); });
    source.addEventListener("board", soon);
    source.addEventListener("error", function () {
      live = false;
      poll(true);
      if (source.readyState === EventSource.CLOSED) { setTimeout(connect, POLL_MS); }
    });
  }

  // -- the selected rescue ---------------------------------------------------------------------
  function select(id) {
    if (selected !== id) {
      selected = id;
      $("msg-body").value = "";
      $("refund-amount").value = "";
    }
    if (board) { renderBoard(); }
    return loadDetail(id);
  }

  function fillDriverChoices() {
    var sel = $("assign-driver");
    if (!board || document.activeElement === sel) { return; }  // never under an open choice
    var keep = sel.value;
    sel.innerHTML = board.drivers.filter(function (d) { return d.active && d.status !== "on_job"; }).map(function (d) {
      return "<option value=\"" + esc(d.id) + "\">" + esc(d.name) + " (" + esc(d.status) + ")</option>";
    }).join("");
    if (keep && sel.querySelector("option[value=\"" + keep + "\"]")) { sel.value = keep; }
  }

  function keepScroll(el, fill) {
    var top = el.scrollTop;
    fill();
    el.scrollTop = top;
  }

  function loadDetail(id) {
    return api("/api/rescues/" + encodeURIComponent(id)).then(function (r) {
      if (!r || id !== selected) { return; }
      detail = r;
      $("detail-empty").hidden = true;
      $("detail-body").hidden = false;
      $("detail-title").textContent = r.code + " · " + r.status;
      var paid = (r.paid_cents || 0) / 100, refunded = (r.refunded_cents || 0) / 100;
      $("detail-summary").textContent = r.problem.replace("_", " ") + " at " + r.pickup.label +
        (r.dropoff ? " → " + r.dropoff.label : "") + " · rider " + r.rider + " · driver " + (r.driver_name || "none") +
        " · quote $" + (r.quote_cents / 100).toFixed(2) + " · payment " + r.payment_status +
        (paid ? " ($" + paid.toFixed(2) + " paid" + (refunded ? ", $" + refunded.toFixed(2) + " refunded" : "") + ")" : "") +
        (r.cancel_reason ? " · cancelled: " + r.cancel_reason : "");
      var open = !CLOSED[r.status];
      $("assign-form").hidden = !may("dispatcher") || !(open || r.status === "unfulfilled");
      $("cancel-form").hidden = !may("dispatcher") || !open;
      $("text-form").hidden = !may("dispatcher");
      $("refund-form").hidden = !may("admin") || !(paid > refunded);
      keepScroll($("messages"), function () {
        $("messages").innerHTML = r.messages.map(function (m) {
          return "<li class=\"" + esc(m.direction) + " " + esc(m.party) + "\"><span class=\"who\">" + esc(m.from) + " → " +
            esc(m.to) + " · " + esc(when(m.created_at)) + " · " + esc(m.status) + "</span>" + esc(m.body) + "</li>";
        }).join("") || "<li class=\"muted\">No messages.</li>";
      });
      keepScroll($("timeline"), function () {
        $("timeline").innerHTML = r.timeline.slice().reverse().map(function (e) {
          return "<li>" + esc(when(e.at)) + " · " + esc(e.type.replace(/_/g, " ")) + " <span class=\"muted\">by " +
            esc(e.by_name) + "</span></li>";
        }).join("");
      });
    }).catch(function (e) { notice("Could not load the rescue: " + e.message, false); });
  }

  function act(form, label, call) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var id = selected, request;
      try { request = call(id); } catch (e) { notice(e.message, false); return; }
      var code = detail ? detail.code : "";
      request.then(function () {
        notice(label + " " + code + ": done.", true);
        form.querySelectorAll("input").forEach(function (i) { i.value = ""; });
        refresh();
      }).catch(function (e) { notice(label + " " + code + " refused: " + e.message, false); });
    });
  }
  var post = function (path, body) { return api(path, { method: "POST", body: JSON.stringify(body) }); };
  act($("assign-form"), "Assign", function (id) {
    return post("/api/rescues/" + id + "/assign", { driver_id: $("assign-driver").value });
  });
  $("cancel-reason").addEventListener("change", function () {
    $("cancel-other").hidden = $("cancel-reason").value !== "";
  });
  act($("cancel-form"), "Cancel", function (id) {
    var reason = $("cancel-reason").value || $("cancel-other").value.trim();
    if (!reason) { throw new Error("Type a reason for cancelling."); }
    return post("/api/rescues/" + id + "/cancel", { reason: reason });
  });
  act($("refund-form"), "Refund", function (id) {
    var v = $("refund-amount").value.trim().replace(/^\$/, "");
    if (v && !/^\d+(\.\d{1,2})?$/.test(v)) { throw new Error("Refund amount must be dollars, like 12.50."); }
    return post("/api/rescues/" + id + "/refund", v ? { amount_cents: Math.round(parseFloat(v) * 100) } : {});
  });
  act($("text-form"), "Text", function (id) {
    return post("/api/rescues/" + id + "/message", { to: $("msg-to").value, body: $("msg-body").value });
  });

  // -- search ----------------------------------------------------------------------------------
  function searchQuery() {
    var p = new URLSearchParams();
    ["q", "status", "since", "until"].forEach(function (k) {
      var v = $("search-" + k).value.trim();
      if (v) { p.set(k, v); }
    });
    return p;
  }
  function runSearch() {
    var p = searchQuery();
    $("export").href = "/api/rescues.csv?" + p.toString();
    p.set("limit", String(PAGE));
    p.set("offset", String(searchOffset));
    api("/api/rescues?" + p.toString()).then(function (got) {
      var rows = got.rescues;
      $("results").hidden = false;
      $("pager").hidden = false;
      $("results").tBodies[0].innerHTML = rows.map(function (r) {
        return "<tr data-id=\"" + esc(r.id) + "\" tabindex=\"0\"><td>" + esc(r.code) + "</td><td>" + esc(r.status) +
          "</td><td>" + esc(when(r.created_at)) + "</td><td>" + esc(r.problem) + "</td><td>" + esc(r.pickup.label) +
          "</td><td>" + esc(r.rider_phone.slice(0, 2) + "…" + r.rider_phone.slice(-4)) + "</td><td>" +
          esc(r.payment_status) + "</td></tr>";
      }).join("") || "<tr><td colspan=\"7\" class=\"muted\">No rescue matches.</td></tr>";
      $("page-info").textContent = rows.length ? (searchOffset + 1) + "–" + (searchOffset + rows.length) : "";
      $("prev").disabled = searchOffset === 0;
      $("next").disabled = rows.length < PAGE;
    }).catch(function (e) { notice("Search refused: " + e.message, false); });
  }
  $("search").addEventListener("submit", function (ev) { ev.preventDefault(); searchOffset = 0; runSearch(); });
  $("prev").addEventListener("click", function () { searchOffset = Math.max(0, searchOffset - PAGE); runSearch(); });
  $("next").addEventListener("click", function () { searchOffset += PAGE; runSearch(); });

  // -- clicks on rows and help requests --------------------------------------------------------
  function rowPicker(table) {
    var pick = function (ev) {
      var tr = ev.target.closest("tr[data-id]");
      if (tr && (ev.type === "click" || ev.key === "Enter")) { select(tr.dataset.id); }
    };
    table.addEventListener("click", pick);
    table.addEventListener("keydown", pick);
  }
  rowPicker($("rescues"));
  rowPicker($("results"));
  $("help").addEventListener("click", function (ev) {
    var id = ev.target.getAttribute && ev.target.getAttribute("data-resolve");
    if (!id) { return; }
    post("/api/help-requests/" + encodeURIComponent(id) + "/resolve", {}).then(function () {
      notice("Help request resolved.", true);
      refresh();
    }).catch(function (e) { notice("Resolve refused: " + e.message, false); });
  });

  refresh();
  refreshFigures();
  setInterval(refreshFigures, FIGURES_MS);
  connect();
  window.SCStatus = { map: map, refresh: refresh, isLive: function () { return live; } };
})(window, document);
