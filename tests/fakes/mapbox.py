"""A local stand-in for Mapbox's Geocoding API (v5 mapbox.places), for geopy's real MapBox client."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.http import FakeServer

_PATH = re.compile(r"^/geocoding/v5/mapbox\.places/(?P<query>[^/]+)\.json/?$")
_LNG_LAT = re.compile(r"^(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)$")


class FakeMapbox(FakeServer):
    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.places: dict[str, list[dict]] = {}
        self.addresses: dict[tuple[float, float], str] = {}
        self.requests: list[dict] = []  # each request's query and parameters

    def add(self, query: str, *results: tuple[float, float, str], accuracy: str | None = None) -> None:
        self.places[query.lower()] = [
            {"id": f"address.{i}", "type": "Feature", "place_type": ["address"], "place_name": name,
             "center": [lng, lat], "geometry": {"type": "Point", "coordinates": [lng, lat]},
             "properties": {"accuracy": accuracy} if accuracy else {}}
            for i, (lat, lng, name) in enumerate(results)]

    def add_address(self, lat: float, lng: float, name: str) -> None:
        self.addresses[(round(lat, 4), round(lng, 4))] = name

    def handle(self, h) -> None:
        parts = urlsplit(h.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        match = _PATH.match(parts.path)
        if not match:
            self.reply(h, 404, b'{"message": "Not Found"}')
            return
        query = unquote(match["query"])
        self.requests.append({"query": query, **params})
        if params.get("access_token") != self.token:
            self.reply(h, 401, b'{"message": "Not Authorized - Invalid Token"}')
            return
        point = _LNG_LAT.match(query)
        if point:
            lng, lat = float(point[1]), float(point[2])
            name = self.addresses.get((round(lat, 4), round(lng, 4)))
            features = [{"place_name": name, "geometry": {"type": "Point", "coordinates": [lng, lat]}}] if name else []
        else:
            features = self.places.get(query.lower(), [])
        self.reply(h, 200, json.dumps({"type": "FeatureCollection", "query": query.split(),
                                       "features": features}).encode())
