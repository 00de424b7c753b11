"""Redis-backed guards around inbound webhooks: per-number lock and flood limit."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

from redis import Redis

# A step takes milliseconds (seconds with a slow geocoder); a process killed holding the
# lock blocks that number until the TTL runs out.
LOCK_TTL_SECONDS = 15
_held = threading.local()  # keys this thread holds: a voice step calls the engine under its lock


class PhoneBusy(RuntimeError):
    """The previous message from this number is still being applied."""


@contextmanager
def phone_lock(redis: Redis, key: str, wait_seconds: float) -> Iterator[None]:
    """One message per number at a time across every web process.

    The TTL frees the lock if a web worker dies holding it; the bounded wait keeps the
    webhook under Twilio's 15 s timeout.
    """
    held = _held.__dict__.setdefault("keys", set())
    if key in held:
        yield
        return
    lock = redis.lock(f"lock:phone:{key}", timeout=LOCK_TTL_SECONDS, blocking_timeout=wait_seconds,
                      sleep=0.01)
    if not lock.acquire():
        raise PhoneBusy(key)
    held.add(key)
    try:
        yield
    finally:
        held.discard(key)
        try:
            lock.release()
        except Exception:  # expired and maybe taken by another: nothing of ours to release
            pass


def over_rate_limit(redis: Redis, key: str, limit: int, window_seconds: int) -> bool:
    """Fixed-window count per number: floods and auto-reply loops stop being processed."""
    bucket = f"rate:in:{key}:{int(time.time() // window_seconds)}"
    pipe = redis.pipeline()
    pipe.incr(bucket)
    pipe.expire(bucket, window_seconds * 2)
    count, _ = pipe.execute()
    return int(count) > limit
