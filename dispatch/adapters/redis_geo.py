"""The geo index of available drivers in a Redis GEO set (only an index: see dispatch.matching)."""
from __future__ import annotations

from redis import Redis

from dispatch.model.clock import now_ms

GEO_KEY = "geo:drivers:available"
GEO_BUILT_KEY = "geo:drivers:built"
CANDIDATES_PER_STEP = 50


class RedisGeoIndex:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def put(self, driver_id: str, lat: float, lng: float) -> None:
        self.redis.geoadd(GEO_KEY, [lng, lat, driver_id])

    def remove(self, driver_id: str) -> None:
        self.redis.zrem(GEO_KEY, driver_id)

    def replace(self, positions: dict[str, tuple[float, float]]) -> None:
        pipe = self.redis.pipeline()
        pipe.delete(GEO_KEY)
        for driver_id, (lat, lng) in positions.items():
            pipe.geoadd(GEO_KEY, [lng, lat, driver_id])
        pipe.set(GEO_BUILT_KEY, now_ms())
        pipe.execute()

    def is_built(self) -> bool:
        """The marker goes with the index when Redis loses it."""
        return bool(self.redis.exists(GEO_BUILT_KEY))

    def nearby(self, lat: float, lng: float, radius_km: float) -> list[tuple[str, float]]:
        found = self.redis.geosearch(GEO_KEY, longitude=lng, latitude=lat, radius=radius_km, unit="km",
                                     sort="ASC", count=CANDIDATES_PER_STEP, withdist=True)
        return [(member.decode() if isinstance(member, bytes) else member, float(dist)) for member, dist in found]
