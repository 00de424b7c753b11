"""Turning what people text into places: coordinates, the built-in gazetteer, a geocoder.

The flows depend only on `Locator`; the geopy geocoder is an adapter behind it, cached in
Redis and held to one request a second across every process (Nominatim's usage policy).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from importlib import resources
from typing import Protocol
from urllib.parse import urlsplit

import structlog
from geopy.adapters import RequestsAdapter
from geopy.exc import GeopyError
from geopy.geocoders import Nominatim
from geopy.point import Point as GeopyPoint

from dispatch.config import Settings
from dispatch.geo import Point, bounding_box, parse_coordinates

log = structlog.get_logger(__name__)

MAX_CHOICES = 5
CACHE_SECONDS = 7 * 24 * 3600
EMPTY_CACHE_SECONDS = 24 * 3600
GEOCODER_MIN_INTERVAL_MS = 1000

_ABBREVIATIONS = {
    "street": "st", "avenue": "ave", "av": "ave", "square": "sq", "place": "pl",
    "and": "&", "at": "&", "boulevard": "blvd", "first": "1st", "second": "2nd",
    "third": "3rd", "fourth": "4th", "fifth": "5th", "sixth": "6th", "seventh": "7th",
    "eighth": "8th", "ninth": "9th", "tenth": "10th",
}
_STOP_TOKENS = {"the", "near", "by", "in", "on", "im", "i'm", "i", "am", "of", "&", "corner", "nyc", "ny",
                "manhattan", "st"}


class GeocoderUnavailable(RuntimeError):
    """The external geocoder could not answer (timeout, error, rate limit)."""


class Geocoder(Protocol):
    def search(self, query: str) -> list[Point]: ...


def normalise_place(text: str) -> str:
    words = re.findall(r"[a-z0-9&']+", (text or "").lower().replace("&", " & "))
    return " ".join(_ABBREVIATIONS.get(w, w) for w in words)


@dataclass(frozen=True)
class _Entry:
    point: Point
    names: tuple[str, ...]  # normalised name and aliases


class Gazetteer:
    """Named places of the demo city, so that the service works with `GEOCODER=none`."""

    def __init__(self, entries: list[dict]) -> None:
        self._entries = [
            _Entry(Point(e["lat"], e["lng"], e["name"]),
                   tuple(normalise_place(n) for n in [e["name"], *e.get("aliases", [])]))
            for e in entries
        ]

    @classmethod
    def builtin(cls) -> "Gazetteer":
        raw = resources.files("dispatch.data").joinpath("gazetteer.json").read_text()
        return cls(json.loads(raw))

    def names(self) -> list[str]:
        return [e.point.label for e in self._entries]

    def search(self, query: str) -> list[Point]:
        """Exact name or alias first; otherwise every place whose name holds all the words."""
        q = normalise_place(query)
        if not q:
            return []
        exact = [e.point for e in self._entries if q in e.names]
        if exact:
            return exact[:MAX_CHOICES]
        tokens = [t for t in q.split() if t not in _STOP_TOKENS]
        if not tokens:
            return []
        matches = [e.point for e in self._entries
                   if any(all(t in name.split() for t in tokens) for name in e.names)]
        return matches[:MAX_CHOICES]

    def find_in_text(self, text: str) -> Point | None:
        """The longest place name standing as whole words inside a free-text message."""
        padded = f" {normalise_place(text)} "
        best: tuple[int, Point] | None = None
        for entry in self._entries:
            for name in entry.names:
                if len(name) >= 4 and f" {name} " in padded and (best is None or len(name) > best[0]):
                    best = (len(name), entry.point)
        return best[1] if best else None


class NominatimGeocoder:
    """geopy's Nominatim client, bounded to the service area, cached and globally rate limited."""

    def __init__(self, settings: Settings, redis) -> None:
        kwargs = {}
        if settings.geocoder_url:
            parts = urlsplit(settings.geocoder_url)
            kwargs = {"domain": parts.netloc + parts.path.rstrip("/"), "scheme": parts.scheme or "https"}
        self._client = Nominatim(
            user_agent=f"SupportCarr-dispatch/1.0 (+{settings.public_base_url})",
            timeout=settings.geocoder_timeout_seconds,
            # geopy's default adapter retries twice: a slow server would cost three times the
            # timeout inside a webhook and break the one-request-a-second rule. One try.
            adapter_factory=lambda proxies, ssl_context: RequestsAdapter(
                proxies=proxies, ssl_context=ssl_context, max_retries=0),
            **kwargs,
        )
        sw, ne = bounding_box(settings.service_area)
        self._viewbox = [GeopyPoint(sw.lat, sw.lng), GeopyPoint(ne.lat, ne.lng)]
        self._redis = redis
        self._timeout = settings.geocoder_timeout_seconds

    def _wait_for_slot(self) -> None:
        deadline = time.monotonic() + self._timeout
        while not self._redis.set("geocoder:slot", "1", nx=True, px=GEOCODER_MIN_INTERVAL_MS):
            if time.monotonic() > deadline:
                raise GeocoderUnavailable("geocoder rate limit")
            time.sleep(0.05)

    def search(self, query: str) -> list[Point]:
        key = "geocode:" + hashlib.sha1(normalise_place(query).encode()).hexdigest()
        cached = self._redis.get(key)
        if cached is not None:
            return [Point(**p) for p in json.loads(cached)]
        self._wait_for_slot()
        try:
            found = self._client.geocode(query, exactly_one=False, limit=MAX_CHOICES,
                                         viewbox=self._viewbox, bounded=True) or []
        except GeopyError as exc:
            log.warning("geocoder_failed", error=type(exc).__name__)
            raise GeocoderUnavailable(str(exc)) from exc
        points = [Point(loc.latitude, loc.longitude, _short_label(loc.address)) for loc in found]
        self._redis.set(key, json.dumps([p.__dict__ for p in points]),
                        ex=CACHE_SECONDS if points else EMPTY_CACHE_SECONDS)
        return points


def _short_label(address: str) -> str:
    """Nominatim's display names run to a paragraph; the first three parts identify a place."""
    return ", ".join(part.strip() for part in (address or "").split(",")[:3])


class Locator:
    """Coordinates and map links first, then the gazetteer, then the geocoder if configured."""

    def __init__(self, gazetteer: Gazetteer, geocoder: Geocoder | None = None) -> None:
        self.gazetteer = gazetteer
        self.geocoder = geocoder

    def resolve(self, text: str) -> list[Point]:
        point = parse_coordinates(text)
        if point:
            return [point]
        found = self.gazetteer.search(text)
        if found or self.geocoder is None:
            return found
        return self.geocoder.search(text)

    def spot_in_message(self, text: str) -> Point | None:
        """A location mentioned in passing (first message): no geocoder guesswork on chatter."""
        return parse_coordinates(text) or self.gazetteer.find_in_text(text)
