"""The Geocoder port on Nominatim, Mapbox or Google, each through geopy's own client: bounded
to the service area, cached in Redis, and one try per request within GEOCODER_TIMEOUT_SECONDS.

`GEOCODER_URL` points a client at another server (a self-hosted Nominatim, or a local fake in
tests). Nominatim is also held to one request a second across every process (its usage
policy). Nominatim cannot search intersections; Mapbox and Google can, and get the rider's
words as typed, "&" spelled "and" for Mapbox (its intersection queries are "<street> and
<street>"). Within the demo city the street grid answers crossings before any of them is asked.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import urlsplit

import structlog
from geopy.adapters import RequestsAdapter
from geopy.exc import GeopyError
from geopy.geocoders import GoogleV3, MapBox, Nominatim
from geopy.geocoders.base import Geocoder as GeopyClient
from geopy.point import Point as GeopyPoint
from redis import Redis

from dispatch.adapters.redis_keys import KeySpace
from dispatch.config import Settings
from dispatch.model.geo import Point, bounding_box
from dispatch.places import MAX_CHOICES, normalise_place
from dispatch.ports import Geocoder, GeocoderUnavailable

log = structlog.get_logger(__name__)

CACHE_SECONDS = 7 * 24 * 3600
EMPTY_CACHE_SECONDS = 24 * 3600
NOMINATIM_MIN_INTERVAL_MS = 1000
SLOT_POLL_SECONDS = 0.05
LABEL_PARTS = 3
# Reverse lookups are cached per ~10 m square: a rider's pin moves a little between texts.
REVERSE_DECIMALS = 4


def _one_try(proxies: Any, ssl_context: Any) -> RequestsAdapter:
    """geopy's default adapter retries twice: a slow server would cost three timeouts inside a
    step (and break Nominatim's one-request-a-second rule). One try."""
    return RequestsAdapter(proxies=proxies, ssl_context=ssl_context, max_retries=0)


def _server(settings: Settings) -> dict[str, str]:
    """geopy's `domain`/`scheme` for GEOCODER_URL (host, port and any path prefix)."""
    if not settings.geocoder_url:
        return {}
    parts = urlsplit(settings.geocoder_url)
    return {"domain": parts.netloc + parts.path.rstrip("/"), "scheme": parts.scheme or "https"}


def short_label(address: str) -> str:
    """Geocoders' display names run to a paragraph; the first parts identify a place."""
    return ", ".join(part.strip() for part in (address or "").split(",")[:LABEL_PARTS])


class GeopyGeocoder:
    """What every vendor shares: the cache, the service-area box and geopy's errors."""

    vendor = ""

    def __init__(self, settings: Settings, redis: Redis, client: GeopyClient) -> None:
        self._client = client
        self._redis, self._keys = redis, KeySpace(settings.redis_prefix)
        self._timeout = settings.geocoder_timeout_seconds
        sw, ne = bounding_box(settings.service_area)
        self._sw, self._ne = sw, ne
        self._box = [GeopyPoint(sw.lat, sw.lng), GeopyPoint(ne.lat, ne.lng)]
        self._centre = GeopyPoint(settings.service_area.lat, settings.service_area.lng)

    # -- what each vendor does differently -----------------------------------------------------
    def _search(self, query: str) -> list[Any]:
        raise NotImplementedError

    def _reverse(self, point: Point) -> Any:
        return self._client.reverse((point.lat, point.lng), exactly_one=True)

    def _before_request(self) -> None:
        """Nominatim waits for its slot here."""

    # -- the port ------------------------------------------------------------------------------
    def search(self, query: str) -> list[Point]:
        key = self._keys(f"geocode:{self.vendor}:" + hashlib.sha1(normalise_place(query).encode()).hexdigest())
        cached = self._redis.get(key)
        if cached is not None:
            return [Point(**p) for p in json.loads(cached)]
        found = self._ask(lambda: self._search(query)) or []
        points = [Point(loc.latitude, loc.longitude, short_label(loc.address)) for loc in found]
        points = [p for p in points if self._inside(p)][:MAX_CHOICES]
        self._redis.set(key, json.dumps([p.__dict__ for p in points]),
                        ex=CACHE_SECONDS if points else EMPTY_CACHE_SECONDS)
        return points

    def reverse(self, point: Point) -> str | None:
        spot = f"{point.lat:.{REVERSE_DECIMALS}f},{point.lng:.{REVERSE_DECIMALS}f}"
        key = self._keys(f"geocode:{self.vendor}:reverse:{spot}")
        cached = self._redis.get(key)
        if cached is not None:
            return cached.decode() or None
        found = self._ask(lambda: self._reverse(point))
        label = short_label(found.address) if found else ""
        self._redis.set(key, label, ex=CACHE_SECONDS if label else EMPTY_CACHE_SECONDS)
        return label or None

    def _ask(self, call):
        self._before_request()
        try:
            return call()
        except GeopyError as exc:
            log.warning("geocoder_failed", vendor=self.vendor, error=type(exc).__name__)
            raise GeocoderUnavailable(str(exc)) from exc

    def _inside(self, point: Point) -> bool:
        """Google's `bounds` only biases its answers: a place outside the box is no answer."""
        return self._sw.lat <= point.lat <= self._ne.lat and self._sw.lng <= point.lng <= self._ne.lng


class NominatimGeocoder(GeopyGeocoder):
    vendor = "nominatim"

    def __init__(self, settings: Settings, redis: Redis) -> None:
        client = Nominatim(user_agent=f"SupportCarr-dispatch/1.0 (+{settings.public_base_url})",
                           timeout=settings.geocoder_timeout_seconds, adapter_factory=_one_try,
                           **_server(settings))
        super().__init__(settings, redis, client)

    def _before_request(self) -> None:
        deadline = time.monotonic() + self._timeout
        while not self._redis.set(self._keys("geocoder:slot"), "1", nx=True, px=NOMINATIM_MIN_INTERVAL_MS):
            if time.monotonic() > deadline:
                raise GeocoderUnavailable("geocoder rate limit")
            time.sleep(SLOT_POLL_SECONDS)

    def _search(self, query: str) -> list[Any]:
        return self._client.geocode(query, exactly_one=False, limit=MAX_CHOICES, viewbox=self._box, bounded=True)

    def _reverse(self, point: Point) -> Any:
        return self._client.reverse((point.lat, point.lng), exactly_one=True, zoom=18)


class MapboxGeocoder(GeopyGeocoder):
    vendor = "mapbox"

    def __init__(self, settings: Settings, redis: Redis) -> None:
        client = MapBox(settings.geocoder_api_key, timeout=settings.geocoder_timeout_seconds,
                        adapter_factory=_one_try, **_server(settings))
        super().__init__(settings, redis, client)

    def _search(self, query: str) -> list[Any]:
        words = query.replace("&", " and ")
        return self._client.geocode(" ".join(words.split()), exactly_one=False, bbox=self._box,
                                    proximity=self._centre)


class GoogleGeocoder(GeopyGeocoder):
    vendor = "google"

    def __init__(self, settings: Settings, redis: Redis) -> None:
        client = GoogleV3(api_key=settings.geocoder_api_key, timeout=settings.geocoder_timeout_seconds,
                          adapter_factory=_one_try, **_server(settings))
        self._region = settings.default_region.lower()
        super().__init__(settings, redis, client)

    def _search(self, query: str) -> list[Any]:
        return self._client.geocode(query, exactly_one=False, bounds=self._box, region=self._region)


GEOCODERS: dict[str, type[GeopyGeocoder]] = {
    NominatimGeocoder.vendor: NominatimGeocoder,
    MapboxGeocoder.vendor: MapboxGeocoder,
    GoogleGeocoder.vendor: GoogleGeocoder,
}


def build_geocoder(settings: Settings, redis: Redis) -> Geocoder | None:
    """The geocoder GEOCODER names, or None for `none` (the city's own names only)."""
    kind = GEOCODERS.get(settings.geocoder)
    return kind(settings, redis) if kind else None
