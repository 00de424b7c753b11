"""The LinkResolver port over httpx: a short map link (maps.app.goo.gl/..., goo.gl/maps/...,
maps.apple/p/...) followed to the long link that says where the place is.

Only the map services' own hosts are followed (`location_text.allowed_redirect_host`), every
hop within one short budget (MAP_LINK_TIMEOUT_SECONDS), no body is read, and the walk stops at
the first URL that carries a location, so the long link itself is never fetched. Answers are
cached in Redis: a link always leads to the same place. `MAP_LINKS_BASE_URL` sends the requests
to another server (a local fake in tests) with the link's own host in the Host header.
"""
from __future__ import annotations

import hashlib
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import structlog
from redis import Redis

from dispatch.adapters.redis_keys import KeySpace
from dispatch.config import Settings
from dispatch.model.location_text import allowed_redirect_host, parse_location
from dispatch.ports import GeocoderUnavailable

log = structlog.get_logger(__name__)

MAX_HOPS = 5
FOUND_CACHE_SECONDS = 30 * 24 * 3600
NOWHERE_CACHE_SECONDS = 3600
# Google sometimes sends European visitors through its consent page first; the way on is a parameter.
CONSENT_HOST = "consent.google.com"
USER_AGENT = "SupportCarr-dispatch/1.0 (map link resolver)"


class MapLinkResolver:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self._redis, self._keys = redis, KeySpace(settings.redis_prefix)
        self._budget = settings.map_link_timeout_seconds
        self._base = settings.map_links_base_url
        self._client = httpx.Client(follow_redirects=False, headers={"User-Agent": USER_AGENT})

    def resolve(self, url: str) -> str | None:
        key = self._keys("maplink:" + hashlib.sha1(url.encode()).hexdigest())
        cached = self._redis.get(key)
        if cached is not None:
            return cached.decode() or None
        target = self._follow(url)
        self._redis.set(key, target or "", ex=FOUND_CACHE_SECONDS if target else NOWHERE_CACHE_SECONDS)
        log.info("map_link_resolved", host=urlsplit(url).hostname, found=bool(target))
        return target

    def _follow(self, url: str) -> str | None:
        deadline = time.monotonic() + self._budget
        current = url
        for _ in range(MAX_HOPS):
            current = _past_consent(current)
            if not allowed_redirect_host(current):
                log.info("map_link_refused", host=urlsplit(current).hostname)
                return None
            if parse_location(current) is not None:
                return current
            left = deadline - time.monotonic()
            if left <= 0:
                raise GeocoderUnavailable("map link took too long")
            location = self._redirect_of(current, left)
            if location is None:
                return None
            current = urljoin(current, location)
        return None

    def _redirect_of(self, url: str, timeout: float) -> str | None:
        """Where `url` redirects to, without reading what it says otherwise."""
        parts = urlsplit(url)
        target, headers = url, {}
        if self._base:
            target = self._base + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            headers["Host"] = parts.netloc
        try:
            with self._client.stream("GET", target, headers=headers, timeout=timeout) as response:
                return response.headers.get("location") if response.is_redirect else None
        except httpx.HTTPError as exc:
            log.warning("map_link_failed", host=parts.hostname, error=type(exc).__name__)
            raise GeocoderUnavailable(f"map link host {parts.hostname}: {type(exc).__name__}") from exc


def _past_consent(url: str) -> str:
    parts = urlsplit(url)
    if (parts.hostname or "").lower() == CONSENT_HOST:
        onward = parse_qs(parts.query).get("continue")
        if onward:
            return onward[0]
    return url
