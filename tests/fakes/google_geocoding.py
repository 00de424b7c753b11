"""A local stand-in for Google's Geocoding API (/maps/api/geocode/json), for geopy's real GoogleV3 client."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http import FakeServer


class FakeGoogleGeocoding(FakeServer):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.places: dict[str, list[dict]] = {}
        self.addresses: dict[tuple[float, float], str] = {}
        self.requests: list[dict] = []

    def add(self, query: str, *results: tuple[float, float, str]) -> None:
        self.places[query.lower()] = [
            {"formatted_address": name, "geometry": {"location": {"lat": lat, "lng": lng},
                                                     "location_type": "GEOMETRIC_CENTER"},
             "place_id": f"place-{i}", "types": ["intersection"]}
            for i, (lat, lng, name) in enumerate(results)]

    def add_address(self, lat: float, lng: float, name: str) -> None:
        self.addresses[(round(lat, 4), round(lng, 4))] = name

    def handle(self, h) -> None:
        parts = urlsplit(h.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path != "/maps/api/geocode/json":
            self.reply(h, 404, b"{}")
            return
        self.requests.append(params)
        if params.get("key") != self.key:
            self.reply(h, 200, json.dumps({"status": "REQUEST_DENIED", "results": [],
                                           "error_message": "The provided API key is invalid."}).encode())
            return
        if "latlng" in params:
            lat, lng = (float(v) for v in params["latlng"].split(","))
            name = self.addresses.get((round(lat, 4), round(lng, 4)))
            results = [{"formatted_address": name, "geometry": {"location": {"lat": lat, "lng": lng}}}] if name else []
        else:
            results = self.places.get(params.get("address", "").lower(), [])
        status = "OK" if results else "ZERO_RESULTS"
        self.reply(h, 200, json.dumps({"status": status, "results": results}).encode())
