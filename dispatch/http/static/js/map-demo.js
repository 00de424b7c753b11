/* Drives map-demo.html: fake board updates once a second through SCMap, the way the status
 * page feeds it from /api/stream. Config comes from data- attributes (as a template would
 * write them), so the page needs no inline script. */
(function () {
  "use strict";
  var el = document.getElementById("map");
  var a = el.getAttribute("data-area").split(",").map(Number);
  var map = SCMap.create(el, {
    tilesUrl: el.getAttribute("data-tiles-url"),
    attribution: el.getAttribute("data-attribution"),
    area: { lat: a[0], lng: a[1], radius_km: a[2] },
    onSelect: function (sel) {
      document.getElementById("selected").textContent = sel.layer + " " + sel.id;
    }
  });

  var pickup = [40.7536, -73.9832]; // Bryant Park
  var tick = 0;

  function board(t) {
    // D1 drives from Union Square to the pickup over 10 ticks, then waits there.
    var f = Math.min(t / 10, 1);
    var d1 = [40.7359 + (pickup[0] - 40.7359) * f, -73.9911 + (pickup[1] + 73.9911) * f];
    var rescues = [
      { id: "r1", lat: pickup[0], lng: pickup[1], kind: "rescue", status: f < 1 ? "en_route" : "arrived",
        label: "R1004", popupHtml: "<b>R1004</b> flat tire, Bryant Park" },
      { id: "r2", lat: 40.7505, lng: -73.9934, kind: "rescue", status: t < 3 ? "searching" : "assigned",
        label: "R1005 <script>x</script>", popupHtml: "<b>R1005</b> dead battery, Penn Station" },
      { id: "r3", lat: 40.7794, lng: -73.9632, kind: "rescue", status: "unfulfilled", label: "R1001" }
    ];
    if (t >= 2) {
      rescues.push({ id: "r4", lat: 40.7127, lng: -74.0059, kind: "rescue", status: "searching", label: "R1006" });
    }
    var drivers = [
      { id: "d1", lat: d1[0], lng: d1[1], kind: "driver", status: "on_job", label: "Ana" },
      { id: "d2", lat: 40.7614 - 0.0008 * Math.min(t, 8), lng: -73.9776, kind: "driver",
        status: t < 3 ? "offered" : "on_job", label: "Luis" },
      { id: "d3", lat: 40.7291, lng: -73.9965, kind: "driver", status: "available", label: "Kim" }
    ];
    if (t < 4) {
      drivers.push({ id: "d4", lat: 40.7831, lng: -73.9712, kind: "driver", status: "offline", label: "Sam" });
    }
    var lines = [{ id: "r1-d1", from: d1, to: pickup, kind: "assigned" },
                 { id: "r2-d2", from: [drivers[1].lat, drivers[1].lng], to: [40.7505, -73.9934],
                   kind: t < 3 ? "offer" : "assigned" }];
    return { rescues: rescues, drivers: drivers, lines: lines };
  }

  function update() {
    var b = board(tick);
    SCMap.setMarkers(map, "drivers", b.drivers);
    SCMap.setMarkers(map, "rescues", b.rescues);
    SCMap.setLines(map, "offers", b.lines);
    document.getElementById("tick").textContent = String(tick);
    tick += 1;
  }

  update();
  var timer = setInterval(function () {
    update();
    if (tick > 12) {
      clearInterval(timer);
    }
  }, 1000);
})();
