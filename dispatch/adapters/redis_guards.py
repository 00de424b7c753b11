"""Locks and rate limits across every process, in Redis."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis

from dispatch.adapters.redis_keys import KeySpace

_held = threading.local()  # lock names this thread holds: a voice step calls the engine under its lock
LOCK_POLL_SECONDS = 0.01


class RedisLocks:
    def __init__(self, redis: Redis, keys: KeySpace) -> None:
        self.redis, self.keys = redis, keys

    @contextmanager
    def hold(self, name: str, ttl_seconds: float, wait_seconds: float) -> Iterator[bool]:
        """Re-entrant per thread. The TTL frees the lock if its holder dies; the bounded wait
        keeps a webhook or a job from queueing up behind a stuck one."""
        held = _held.__dict__.setdefault("names", set())
        if name in held:
            yield True
            return
        lock = self.redis.lock(self.keys(f"lock:{name}"), timeout=ttl_seconds, blocking_timeout=wait_seconds,
                               sleep=LOCK_POLL_SECONDS)
        if not lock.acquire():
            yield False
            return
        held.add(name)
        try:
            yield True
        finally:
            held.discard(name)
            try:
                lock.release()
            except Exception:  # noqa: BLE001 - expired and maybe taken by another: nothing of ours to release
                pass


# The count and its expiry in one round trip (a MULTI/EXEC pipeline is four commands on the wire).
HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return count
"""


class RedisLimits:
    """Fixed-window counters (floods, auto-reply loops, token guessing)."""

    def __init__(self, redis: Redis, keys: KeySpace) -> None:
        self.redis, self.keys = redis, keys
        self._hit = redis.register_script(HIT_SCRIPT)

    def hit(self, name: str, window_seconds: int) -> int:
        """Count one more in this window; returns the count so far."""
        return int(self._hit(keys=[self._key(name, window_seconds)], args=[window_seconds * 2]))

    def clear(self, name: str, window_seconds: int) -> None:
        """Forget a counter (this window and the last): its name may carry a phone number."""
        window = int(time.time() // window_seconds)
        self.redis.delete(self.keys(f"rate:{name}:{window}"), self.keys(f"rate:{name}:{window - 1}"))

    def count(self, name: str, window_seconds: int) -> int:
        return int(self.redis.get(self._key(name, window_seconds)) or 0)

    def _key(self, name: str, window_seconds: int) -> str:
        return self.keys(f"rate:{name}:{int(time.time() // window_seconds)}")
