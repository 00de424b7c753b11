"""The Geocoder port on Nominatim, through geopy: bounded to the service area, cached in
Redis and held to one request a second across every process (Nominatim's usage policy)."""
from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import urlsplit

import structlog
from geopy.adapters import RequestsAdapter
from geopy.exc import GeopyError
from geopy.geocoders import Nominatim
from geopy.point import Point as GeopyPoint
from redis import Redis

from dispatch.config import Settings
from dispatch.model.geo import Point, bounding_box
from dispatch.places import MAX_CHOICES, normalise_place
from dispatch.ports import GeocoderUnavailable

log = structlog.get_logger(__name__)

CACHE_SECONDS = 7 * 24 * 3600
EMPTY_CACHE_SECONDS = 24 * 3600
GEOCODER_MIN_INTERVAL_MS = 1000
SLOT_POLL_SECONDS = 0.05
LABEL_PARTS = 3


class NominatimGeocoder:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        kwargs = {}
        if settings.geocoder_url:
            parts = urlsplit(settings.geocoder_url)
            kwargs = {"domain": parts.netloc + parts.path.rstrip("/"), "scheme": parts.scheme or "https"}
        self._client = Nominatim(
            user_agent=f"SupportCarr-dispatch/1.0 (+{settings.public_base_url})",
            timeout=settings.geocoder_timeout_seconds,
            # geopy's default adapter retries twice: a slow server would cost three times the
            # timeout inside a step and break the one-request-a-second rule. One try.
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
            time.sleep(SLOT_POLL_SECONDS)

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
    """Nominatim's display names run to a paragraph; the first parts identify a place."""
    return ", ".join(part.strip() for part in (address or "").split(",")[:LABEL_PARTS])
