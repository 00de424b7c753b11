"""Finding the driver for a rescue (PRODUCT.md §5).

Candidates come from a Redis GEO index of available drivers, which is only an index:
MongoDB holds the truth, every candidate is re-checked against it, and the index is
rebuilt from it whenever it is missing (a flushed or restarted Redis).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from redis import Redis

from dispatch.clock import now_ms

GEO_KEY = "geo:drivers:available"
GEO_BUILT_KEY = "geo:drivers:built"
RADIUS_STEPS_KM = (2.0, 5.0, 10.0, 20.0)
CANDIDATES_PER_STEP = 50
LOCATION_FRESH_MS = 30 * 60 * 1000
# Distances this close are a tie; then the driver idle longest goes first.
TIE_KM = 0.1


@dataclass(frozen=True)
class Candidate:
    driver_id: str
    distance_km: float
    idle_since: int


def location_is_fresh(driver: dict[str, Any], now: int | None = None) -> bool:
    updated = driver.get("location_updated_at")
    return bool(driver.get("location")) and updated is not None and \
        (now or now_ms()) - int(updated) <= LOCATION_FRESH_MS


def is_candidate(driver: dict[str, Any], excluded: set[str], now: int) -> bool:
    """Online, not on a job, not holding an offer, active, located recently, not excluded."""
    return (driver.get("status") == "available" and bool(driver.get("active", True))
            and driver["_id"] not in excluded and location_is_fresh(driver, now))


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Nearest first; among those within TIE_KM of the nearest left, the one idle longest."""
    remaining = sorted(candidates, key=lambda c: c.distance_km)
    ranked: list[Candidate] = []
    while remaining:
        nearest = remaining[0].distance_km
        tied = [c for c in remaining if c.distance_km - nearest <= TIE_KM]
        pick = min(tied, key=lambda c: (c.idle_since, c.distance_km))
        ranked.append(pick)
        remaining.remove(pick)
    return ranked


class GeoIndex:
    """Available drivers' positions in Redis, kept in step with MongoDB by the dispatcher."""

    def __init__(self, redis: Redis, drivers_collection) -> None:
        self.redis = redis
        self.drivers = drivers_collection

    def put(self, driver_id: str, lat: float, lng: float) -> None:
        self.redis.geoadd(GEO_KEY, [lng, lat, driver_id])

    def remove(self, driver_id: str) -> None:
        self.redis.zrem(GEO_KEY, driver_id)

    def rebuild(self) -> int:
        """Reload from MongoDB; returns how many drivers were indexed."""
        now = now_ms()
        docs = [d for d in self.drivers.find({"status": "available"}) if is_candidate(d, set(), now)]
        pipe = self.redis.pipeline()
        pipe.delete(GEO_KEY)
        for d in docs:
            pipe.geoadd(GEO_KEY, [d["location"]["lng"], d["location"]["lat"], d["_id"]])
        pipe.set(GEO_BUILT_KEY, now)
        pipe.execute()
        return len(docs)

    def ensure(self) -> None:
        """Rebuild when Redis has lost the index (the marker goes with it)."""
        if not self.redis.exists(GEO_BUILT_KEY):
            self.rebuild()

    def nearby(self, lat: float, lng: float, radius_km: float) -> list[tuple[str, float]]:
        found = self.redis.geosearch(GEO_KEY, longitude=lng, latitude=lat, radius=radius_km, unit="km",
                                     sort="ASC", count=CANDIDATES_PER_STEP, withdist=True)
        return [(member.decode() if isinstance(member, bytes) else member, float(dist))
                for member, dist in found]

    def candidates(self, lat: float, lng: float, excluded: set[str], want: int = 1) -> list[Candidate]:
        """Widen the radius step by step until `want` eligible drivers turn up (or the last step)."""
        self.ensure()
        now = now_ms()
        found: list[Candidate] = []
        for radius in RADIUS_STEPS_KM:
            hits = [(driver_id, dist) for driver_id, dist in self.nearby(lat, lng, radius)
                    if driver_id not in excluded]
            if not hits:
                continue
            docs = {d["_id"]: d for d in self.drivers.find({"_id": {"$in": [h[0] for h in hits]}})}
            found = []
            for driver_id, dist in hits:
                doc = docs.get(driver_id)
                if doc is None or doc.get("status") != "available":
                    self.remove(driver_id)  # the index was behind MongoDB
                elif is_candidate(doc, excluded, now):
                    found.append(Candidate(driver_id, dist, int(doc.get("idle_since") or 0)))
            if len(found) >= want:
                break
        return rank(found)
