"""The Router port on an OSRM-compatible routing engine's route service
(`GET {ROUTING_URL}/route/v1/driving/{lng},{lat};{lng},{lat}`), through httpx.

An ETA is wanted while a request or a job waits (a position posted from the job page, a
driver taking a job), so the engine gets one short try, and after a failure this process
leaves it alone for a while instead of paying the timeout on every position: the distance
estimate stands in meanwhile (dispatch.tracking).
"""
from __future__ import annotations

import threading
import time

import httpx

from dispatch.config import Settings
from dispatch.model.geo import Point
from dispatch.ports import RoutingUnavailable

PROFILE = "driving"
# After a failure the engine is asked again only after this long.
RETRY_AFTER_SECONDS = 30.0


class OsrmRouter:
    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(base_url=settings.routing_url or "",
                                              timeout=settings.routing_timeout_seconds,
                                              headers={"User-Agent": "SupportCarr-dispatch/1.0"})
        self._resting_until = 0.0
        self._guard = threading.Lock()

    def drive_seconds(self, origin: Point, destination: Point) -> float:
        if time.monotonic() < self._resting_until:
            raise RoutingUnavailable("resting after a failure")
        path = f"/route/v1/{PROFILE}/{origin.lng:.6f},{origin.lat:.6f};{destination.lng:.6f},{destination.lat:.6f}"
        try:
            response = self._client.get(path, params={"overview": "false", "alternatives": "false",
                                                      "steps": "false"})
            body = response.json() if response.status_code < 500 else {}
            code = body.get("code")
            if code == "Ok":
                seconds = float(body["routes"][0]["duration"])
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            self._rest()  # down, slow, or not speaking OSRM: give it a rest
            raise RoutingUnavailable(type(exc).__name__) from exc
        if response.status_code >= 500:
            self._rest()
            raise RoutingUnavailable(f"routing engine answered {response.status_code}")
        if code != "Ok":  # NoRoute, NoSegment...: this pair only, the engine itself is fine
            raise RoutingUnavailable(f"routing engine said {code}")
        if not seconds >= 0:  # NaN or negative: not a drive
            raise RoutingUnavailable("no usable duration")
        return seconds

    def _rest(self) -> None:
        with self._guard:
            self._resting_until = time.monotonic() + RETRY_AFTER_SECONDS
