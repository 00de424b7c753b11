"""A local stand-in for an OSRM routing engine's route service
(`GET /route/v1/<profile>/<lng>,<lat>;<lng>,<lat>`), answering as osrm-routed does: `{"code": "Ok",
"routes": [{"duration", "distance", ...}], "waypoints": [...]}`, or `{"code": "NoRoute"}` with a 400.

Drive times are the straight line times ROAD_FACTOR at `kmh`, so a test can tell a routed ETA
from the service's own distance estimate; `fail`, `delay` and `no_route` play an outage, a
slow engine and an unroutable pair.
"""
from __future__ import annotations

import json
import re
import time
from urllib.parse import urlsplit

from geopy.distance import great_circle

from tests.fakes.http import FakeServer

ROAD_FACTOR = 1.4
_ROUTE = re.compile(r"^/route/v1/[\w-]+/(-?[\d.]+),(-?[\d.]+);(-?[\d.]+),(-?[\d.]+)$")


class FakeOsrm(FakeServer):
    def __init__(self, kmh: float = 14.0) -> None:
        super().__init__()
        self.kmh = kmh
        self.queries: list[tuple[float, float, float, float]] = []
        self.fail = 0  # answer the next N requests with a 500
        self.delay = 0.0
        self.no_route = False

    def seconds(self, lat1: float, lng1: float, lat2: float, lng2: float) -> float:
        metres = great_circle((lat1, lng1), (lat2, lng2)).m * ROAD_FACTOR
        return metres / 1000 / self.kmh * 3600

    def handle(self, h) -> None:
        match = _ROUTE.match(urlsplit(h.path).path)
        if not match:
            self.reply(h, 400, json.dumps({"code": "InvalidUrl", "message": "URL string malformed"}).encode())
            return
        lng1, lat1, lng2, lat2 = (float(g) for g in match.groups())
        self.queries.append((lat1, lng1, lat2, lng2))
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            self.fail -= 1
            self.reply(h, 500, b'{"code":"InternalError"}')
            return
        if self.no_route:
            self.reply(h, 400, json.dumps({"code": "NoRoute", "message": "Impossible route"}).encode())
            return
        seconds = self.seconds(lat1, lng1, lat2, lng2)
        body = {"code": "Ok",
                "routes": [{"duration": round(seconds, 1),
                            "distance": round(great_circle((lat1, lng1), (lat2, lng2)).m * ROAD_FACTOR, 1),
                            "weight": round(seconds, 1), "weight_name": "routability", "legs": []}],
                "waypoints": [{"location": [lng1, lat1], "name": ""}, {"location": [lng2, lat2], "name": ""}]}
        self.reply(h, 200, json.dumps(body).encode())
