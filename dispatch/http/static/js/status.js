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
 *
 * Words: every word the page says comes from the #sc-words element (templates/status/<lang>.json,
 * in the signed-in dispatcher's language), never from this file. Codes the API sends (a rescue's
 * status, a payment status, a problem) are shown as their word and kept as data-* attributes.
 */
(function (window, document) {
  "use strict";

  var config = JSON.parse(document.getElementById("sc-config").textContent);
  var W = JSON.parse(document.getElementById("sc-words").textContent);
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
  // "{name} at {place}" with the values given; a placeholder without a value stays as it is.
  var fmt = function (template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (all, k) { return values[k] == null ? all : String(values[k]); });
  };
  // The word for a code in one of the words' tables; a code it does not know, readable as it is.
  var word = function (table, code) {
    var w = W[table] && W[table][code];
    return w != null ? w : String(code == null ? "" : code).replace(/_/g, " ");
  };
  var NONE = W.units.none;
  var minutes = function (n) { return fmt(W.units.minutes, { n: n }); };
  var age = function (s) {
    return s == null ? NONE : s < 90 ? fmt(W.units.seconds, { n: s }) : s < 5400 ? minutes(Math.round(s / 60)) :
      fmt(W.units.hours, { n: Math.round(s / 3600) });
  };
  var when = function (isoText) { return isoText ? new Date(isoText).toLocaleString(W.locale) : NONE; };
  var dollars = function (n) { return "$" + n.toFixed(2); };
  // A table cell showing a code's word, with the code kept for tests and CSS.
  var codeCell = function (table, attr, code) {
    return "<td data-" + attr + "=\"" + esc(code) + "\">" + esc(word(table, code)) + "</td>";
  };

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
    close.textContent = W.notices.dismiss;
    close.addEventListener("click", function () { div.remove(); });
    div.appendChild(span);
    div.appendChild(close);
    $("notices").prepend(div);
  }

  // -- the map -------------------------------------------------------------------------------
  var map = window.SCMap.create($("map"), {
    tilesUrl: config.tilesUrl,
    attribution: W.attribution,
    area: config.area,
    legend: true,
    names: mapNames(),
    onSelect: function (sel) { if (sel.kind === "rescue") { select(sel.id); } }
  });

  // The map's own words, and a word for every status its legend and labels show.
  function mapNames() {
    var names = {};
    ["driver_status", "status"].forEach(function (table) {
      Object.keys(W[table]).forEach(function (code) { names[code] = W[table][code]; });
    });
    Object.keys(W.map).forEach(function (k) { names[k] = W.map[k]; });
    return names;
  }

  function drawMap() {
    var drivers = {};
    board.drivers.forEach(function (d) { drivers[d.id] = d; });
    window.SCMap.setMarkers(map, "rescues", board.rescues.map(function (r) {
      return { id: r.id, lat: r.pickup.lat, lng: r.pickup.lng, kind: "rescue", status: r.status,
               label: r.code + " " + word("status", r.status) };
    }));
    window.SCMap.setMarkers(map, "drivers", board.drivers.filter(function (d) {
      return d.active && d.location && d.status !== "offline";
    }).map(function (d) {
      return { id: d.id, lat: d.location.lat, lng: d.location.lng, kind: "driver", status: d.status,
               label: d.name + " (" + word("driver_status", d.status) + ")" };
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
    var t = W.today;
    $("stats").innerHTML = [
      [t.searching, st.by_status.searching], [t.on_the_way, st.by_status.assigned + st.by_status.en_route],
      [t.at_rider, st.by_status.arrived + st.by_status.in_transit], [t.drivers_online, st.drivers_online],
      [t.median_to_assign, st.median_minutes_to_assign_today == null ? NONE : minutes(st.median_minutes_to_assign_today)],
      [t.rescues_today, st.rescues_today]
    ].map(function (kv) { return "<div><b>" + esc(kv[1]) + "</b>" + esc(kv[0]) + "</div>"; }).join("");
    $("rescues").tBodies[0].innerHTML = board.rescues.map(function (r) {
      return "<tr data-id=\"" + esc(r.id) + "\" tabindex=\"0\" class=\"" + (r.id === selected ? "sel" : "") + "\">" +
        "<td>" + esc(r.code) + " " + r.flags.map(function (f) {
          return "<span class=\"flag " + esc(f.split(" ")[0]) + "\" data-flag=\"" + esc(f) + "\">" + esc(word("flags", f)) +
            "</span>";
        }).join("") + "</td>" + codeCell("status", "status", r.status) + "<td>" + age(r.age_s) + "</td>" +
        codeCell("problem", "problem", r.problem_code) + "<td>" + esc(r.pickup.label) + "</td><td>" + esc(r.rider) +
        "</td><td>" + esc(r.driver || NONE) + "</td><td>" + (r.eta_min ? esc(minutes(r.eta_min)) : NONE) + "</td>" +
        codeCell("payment", "payment", r.payment_status) + "</tr>";
    }).join("") || "<tr><td colspan=\"9\" class=\"muted\">" + esc(W.board.no_rescues) + "</td></tr>";
    $("drivers").tBodies[0].innerHTML = board.drivers.filter(function (d) { return d.active; }).map(function (d) {
      return "<tr><td>" + esc(d.name) + "<br><span class=\"muted\">" + esc(d.vehicle) + "</span></td>" +
        codeCell("driver_status", "status", d.status) + "<td>" + age(d.location_age_s) + "</td><td>" +
        esc(d.job || NONE) + "</td><td>" + (d.rating == null ? NONE : esc(d.rating)) + "</td></tr>";
    }).join("") || "<tr><td colspan=\"5\" class=\"muted\">" + esc(W.board.no_drivers) + "</td></tr>";
    drawMap();
    fillDriverChoices();
  }

  function renderHelp(requests) {
    $("help-card").hidden = requests.length === 0;
    $("help").innerHTML = requests.map(function (h) {
      return "<li data-help=\"" + esc(h.id) + "\" data-reason=\"" + esc(h.reason) + "\"><b>" +
        esc(h.reason === "asked" ? W.help.asked : W.help.not_understood) +
        "</b> · " + esc(h.phone) + " · " + esc(when(h.created_at)) + "<br>“" + esc(h.text) + "”" +
        (may("dispatcher") ? " <button type=\"button\" data-resolve=\"" + esc(h.id) + "\">" + esc(W.help.resolve) +
          "</button>" : "") + "</li>";
    }).join("");
  }

  function refresh() {
    return Promise.all([api("/api/board"), api("/api/help-requests?status=open&limit=50")]).then(function (got) {
      if (!got[0]) { return; }
      board = got[0];
      renderBoard();
      renderHelp(got[1].help_requests);
      $("updated").textContent = fmt(W.nav.updated, { time: new Date().toLocaleTimeString(W.locale) }) + " · " +
        (live ? W.nav.live : W.nav.polling);
      if (selected) { return loadDetail(selected); }
    }).catch(function (e) { $("updated").textContent = fmt(W.nav.unreachable, { error: e.message }); });
  }

  function refreshFigures() {
    api("/api/figures").then(function (f) {
      if (!f) { return; }
      var share = f.unfulfilled_share == null ? NONE : Math.round(f.unfulfilled_share * 100) + "%";
      $("charts").innerHTML = "<figure>" + f.charts.rescues_per_hour + "<figcaption>" + esc(W.today.rescues_per_hour) +
        "</figcaption></figure><figure>" + f.charts.median_wait + "<figcaption>" + esc(W.today.median_wait) +
        "</figcaption></figure><div>" + fmt(esc(W.today.unfulfilled), { share: "<b>" + esc(share) + "</b>",
          n: esc(f.unfulfilled_today), total: esc(f.rescues_today) }) + "</div>";
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
      return "<option value=\"" + esc(d.id) + "\">" + esc(d.name) + " (" + esc(word("driver_status", d.status)) + ")</option>";
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
      $("detail-title").textContent = r.code + " · " + word("status", r.status);
      $("detail-title").setAttribute("data-status", r.status);
      var paid = (r.paid_cents || 0) / 100, refunded = (r.refunded_cents || 0) / 100, d = W.detail;
      $("detail-summary").textContent = fmt(d.at, { problem: word("problem", r.problem), pickup: r.pickup.label }) +
        (r.dropoff ? fmt(d.to_dropoff, { place: r.dropoff.label }) : "") + " · " + fmt(d.rider, { rider: r.rider }) +
        " · " + fmt(d.driver_is, { name: r.driver_name || d.no_driver }) +
        " · " + fmt(d.quote, { amount: dollars(r.quote_cents / 100) }) +
        " · " + fmt(d.payment, { status: word("payment", r.payment_status) }) +
        (paid ? " (" + fmt(d.paid, { amount: dollars(paid) }) +
          (refunded ? ", " + fmt(d.refunded, { amount: dollars(refunded) }) : "") + ")" : "") +
        (r.cancel_reason ? " · " + fmt(d.cancelled, { reason: W.reasons[r.cancel_reason] || r.cancel_reason }) : "");
      var open = !CLOSED[r.status];
      $("assign-form").hidden = !may("dispatcher") || !(open || r.status === "unfulfilled");
      $("cancel-form").hidden = !may("dispatcher") || !open;
      $("text-form").hidden = !may("dispatcher");
      $("refund-form").hidden = !may("admin") || !(paid > refunded);
      keepScroll($("messages"), function () {
        $("messages").innerHTML = r.messages.map(function (m) {
          return "<li class=\"" + esc(m.direction) + " " + esc(m.party) + "\" data-status=\"" + esc(m.status) + "\">" +
            "<span class=\"who\">" + esc(party(m.from)) + " → " + esc(party(m.to)) + " · " + esc(when(m.created_at)) +
            " · " + esc(word("message_status", m.status)) + "</span>" + esc(m.body) + "</li>";
        }).join("") || "<li class=\"muted\">" + esc(W.detail.no_messages) + "</li>";
      });
      keepScroll($("timeline"), function () {
        $("timeline").innerHTML = r.timeline.slice().reverse().map(function (e) {
          var who = actor(e);
          return "<li data-type=\"" + esc(e.type) + "\">" + esc(when(e.at)) + " · " + esc(word("events", e.type)) +
            " <span class=\"muted\">" + esc(fmt(W.detail.by, { name: who })) + "</span></li>";
        }).join("");
      });
    }).catch(function (e) { notice(fmt(W.notices.load_failed, { error: e.message }), false); });
  }

  // Who acted on the timeline: a person by the name the server found (a driver, a dispatcher's
  // username), the service's own moves and a rider (`rider:sms`, `rider:voice`) in words.
  function actor(e) {
    var by = e.by || "", kind = by.split(":")[0];
    if (W.actors[by] != null) { return W.actors[by]; }
    return e.by_name === by && W.actors[kind] != null ? W.actors[kind] : e.by_name;
  }

  // The sender or recipient of a text: a party the service names by role, else a driver's name.
  function party(name) { return W.parties[name] != null ? W.parties[name] : name; }

  function act(form, action, call) {
    var label = W.notices[action];
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var id = selected, request;
      try { request = call(id); } catch (e) { notice(e.message, false); return; }
      var code = detail ? detail.code : "";
      request.then(function () {
        notice(fmt(W.notices.done, { action: label, code: code }), true);
        form.querySelectorAll("input").forEach(function (i) { i.value = ""; });
        refresh();
      }).catch(function (e) { notice(fmt(W.notices.refused, { action: label, code: code, error: e.message }), false); });
    });
  }
  var post = function (path, body) { return api(path, { method: "POST", body: JSON.stringify(body) }); };
  act($("assign-form"), "assign", function (id) {
    return post("/api/rescues/" + id + "/assign", { driver_id: $("assign-driver").value });
  });
  $("cancel-reason").addEventListener("change", function () {
    $("cancel-other").hidden = $("cancel-reason").value !== "";
  });
  act($("cancel-form"), "cancel", function (id) {
    var reason = $("cancel-reason").value || $("cancel-other").value.trim();
    if (!reason) { throw new Error(W.notices.need_reason); }
    return post("/api/rescues/" + id + "/cancel", { reason: reason });
  });
  act($("refund-form"), "refund", function (id) {
    var v = $("refund-amount").value.trim().replace(/^\$/, "");
    if (v && !/^\d+(\.\d{1,2})?$/.test(v)) { throw new Error(W.notices.refund_format); }
    return post("/api/rescues/" + id + "/refund", v ? { amount_cents: Math.round(parseFloat(v) * 100) } : {});
  });
  act($("text-form"), "text", function (id) {
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
        return "<tr data-id=\"" + esc(r.id) + "\" tabindex=\"0\"><td>" + esc(r.code) + "</td>" +
          codeCell("status", "status", r.status) + "<td>" + esc(when(r.created_at)) + "</td>" +
          codeCell("problem", "problem", r.problem) + "<td>" + esc(r.pickup.label) + "</td><td>" +
          esc(r.rider_phone.slice(0, 2) + "…" + r.rider_phone.slice(-4)) + "</td>" +
          codeCell("payment", "payment", r.payment_status) + "</tr>";
      }).join("") || "<tr><td colspan=\"7\" class=\"muted\">" + esc(W.search.no_match) + "</td></tr>";
      $("page-info").textContent = rows.length ? (searchOffset + 1) + "–" + (searchOffset + rows.length) : "";
      $("prev").disabled = searchOffset === 0;
      $("next").disabled = rows.length < PAGE;
    }).catch(function (e) { notice(fmt(W.search.refused, { error: e.message }), false); });
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
      notice(W.help.resolved, true);
      refresh();
    }).catch(function (e) { notice(fmt(W.help.refused, { error: e.message }), false); });
  });

  refresh();
  refreshFigures();
  setInterval(refreshFigures, FIGURES_MS);
  connect();
  window.SCStatus = { map: map, refresh: refresh, isLive: function () { return live; } };
})(window, document);
