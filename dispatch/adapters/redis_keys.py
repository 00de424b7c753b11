"""The deployment's own part of a Redis: every key and channel the service names (locks,
heartbeats, the GEO index, rate limits, caches, kicks, the change feed) starts with its
prefix (REDIS_PREFIX, by default RQ_QUEUE), so two deployments can share one Redis. RQ's
keys are kept apart by the queue names instead."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeySpace:
    prefix: str

    def __call__(self, key: str) -> str:
        return f"{self.prefix}:{key}"

