"""A local stand-in for a Nominatim server's /search and /reverse, for geopy's real Nominatim client."""
from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http import FakeServer


class FakeNominatim(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.places: dict[str, list[dict]] = {}
        self.addresses: dict[tuple[float, float], str] = {}
        self.queries: list[str] = []
        self.reversed: list[tuple[float, float]] = []
        self.user_agents: list[str] = []
        self.delay = 0.0

    def add(self, query: str, *results: tuple[float, float, str]) -> None:
        self.places[query.lower()] = [{"lat": str(lat), "lon": str(lng), "display_name": name,
                                       "place_id": i, "importance": 0.5}
                                      for i, (lat, lng, name) in enumerate(results)]

    def add_address(self, lat: float, lng: float, name: str) -> None:
        """What /reverse answers for a point (matched to 4 decimals)."""
        self.addresses[(round(lat, 4), round(lng, 4))] = name

    def handle(self, h) -> None:
        parts = urlsplit(h.path)
        params = parse_qs(parts.query)
        self.user_agents.append(h.headers.get("User-Agent", ""))
        if parts.path.rstrip("/") == "/search":
            self.queries.append(params.get("q", [""])[0])
        if self.delay:
            time.sleep(self.delay)
        if parts.path.rstrip("/") == "/search":
            q = params.get("q", [""])[0]
            self.reply(h, 200, json.dumps(self.places.get(q.lower(), [])).encode())
        elif parts.path.rstrip("/") == "/reverse":
            lat, lng = float(params["lat"][0]), float(params["lon"][0])
            self.reversed.append((lat, lng))
            name = self.addresses.get((round(lat, 4), round(lng, 4)))
            body = {"lat": str(lat), "lon": str(lng), "display_name": name} if name else {"error": "Unable to geocode"}
            self.reply(h, 200, json.dumps(body).encode())
        else:
            self.reply(h, 404, b"[]")
