"""A local stand-in for a Nominatim server's /search, for geopy's real Nominatim client."""
from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http import FakeServer


class FakeNominatim(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.places: dict[str, list[dict]] = {}
        self.queries: list[str] = []
        self.user_agents: list[str] = []
        self.delay = 0.0

    def add(self, query: str, *results: tuple[float, float, str]) -> None:
        self.places[query.lower()] = [{"lat": str(lat), "lon": str(lng), "display_name": name,
                                       "place_id": i, "importance": 0.5}
                                      for i, (lat, lng, name) in enumerate(results)]

    def handle(self, h) -> None:
        parts = urlsplit(h.path)
        if parts.path.rstrip("/") != "/search":
            self.reply(h, 404, b"[]")
            return
        q = parse_qs(parts.query).get("q", [""])[0]
        self.queries.append(q)
        self.user_agents.append(h.headers.get("User-Agent", ""))
        if self.delay:
            time.sleep(self.delay)
        self.reply(h, 200, json.dumps(self.places.get(q.lower(), [])).encode())
