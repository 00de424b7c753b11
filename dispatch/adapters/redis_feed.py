"""The change feed on Redis pub/sub: every web process hears every change, so a page open on
any of them can be told at once (Server-Sent Events in dispatch/http/sse.py)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from redis import Redis

from dispatch.adapters.redis_keys import KeySpace

PREFIX = "feed:"
POLL_SECONDS = 1.0


class RedisFeed:
    def __init__(self, redis: Redis, keys: KeySpace) -> None:
        self.redis = redis
        self.prefix = keys(PREFIX)

    def publish(self, channel: str, payload: dict[str, Any]) -> None:
        self.redis.publish(self.prefix + channel, json.dumps(payload, separators=(",", ":")))

    def listen(self, channels: list[str], heartbeat_seconds: float, until: float) -> Iterator[tuple[str, Any] | None]:
        """(channel, payload) for each change, None every `heartbeat_seconds` without one, until
        the monotonic time `until`. The subscription is closed when the generator is."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*[self.prefix + c for c in channels])
        try:
            quiet_since = time.monotonic()
            while time.monotonic() < until:
                message = pubsub.get_message(timeout=min(POLL_SECONDS, heartbeat_seconds))
                if message and message.get("type") == "message":
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    quiet_since = time.monotonic()
                    yield channel[len(self.prefix):], json.loads(message["data"])
                elif time.monotonic() - quiet_since >= heartbeat_seconds:
                    quiet_since = time.monotonic()
                    yield None
        finally:
            pubsub.close()
