"""The geo index of available drivers in a Redis GEO set (only an index: see dispatch.matching)."""
from __future__ import annotations

from redis import Redis

from dispatch.adapters.redis_keys import KeySpace
from dispatch.model.clock import now_ms

GEO_KEY = "geo:drivers:available"
GEO_BUILT_KEY = "geo:drivers:built"
CANDIDATES_PER_STEP = 50


class RedisGeoIndex:
    def __init__(self, redis: Redis, keys: KeySpace) -> None:
        self.redis = redis
        self.key, self.built_key = keys(GEO_KEY), keys(GEO_BUILT_KEY)

    def put(self, driver_id: str, lat: float, lng: float) -> None:
        self.redis.geoadd(self.key, [lng, lat, driver_id])

    def remove(self, driver_id: str) -> None:
        self.redis.zrem(self.key, driver_id)

    def replace(self, positions: dict[str, tuple[float, float]]) -> None:
        pipe = self.redis.pipeline()
        pipe.delete(self.key)
        for driver_id, (lat, lng) in positions.items():
            pipe.geoadd(self.key, [lng, lat, driver_id])
        pipe.set(self.built_key, now_ms())
        pipe.execute()

    def is_built(self) -> bool:
        """The marker goes with the index when Redis loses it."""
        return bool(self.redis.exists(self.built_key))

    def nearby(self, lat: float, lng: float, radius_km: float) -> list[tuple[str, float]]:
        found = self.redis.geosearch(self.key, longitude=lng, latitude=lat, radius=radius_km, unit="km",
                                     sort="ASC", count=CANDIDATES_PER_STEP, withdist=True)
        return [(member.decode() if isinstance(member, bytes) else member, float(dist)) for member, dist in found]
