"""Inbound texts kept in a Redis stream while MongoDB is unreachable (PRODUCT.md §7)."""
from __future__ import annotations

import json
from typing import Any

from redis import Redis

from dispatch.adapters.redis_keys import KeySpace

STREAM = "inbound:held"
SEEN_PREFIX = "inbound:held:"
# Twilio redelivers within minutes; a day covers any outage the stream is meant to bridge.
SEEN_TTL_SECONDS = 24 * 3600
# One MessageSid once: its mark and its entry are written together or not at all.
_HOLD = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', KEYS[2], '*', 'doc', ARGV[1])
  return 1
end
return 0
"""


class RedisHeldTexts:
    def __init__(self, redis: Redis, keys: KeySpace) -> None:
        self.redis, self.stream, self.seen = redis, keys(STREAM), keys(SEEN_PREFIX)
        self._hold = redis.register_script(_HOLD)

    def hold(self, sid: str, doc: dict[str, Any]) -> bool:
        return bool(self._hold(keys=[self.seen + sid, self.stream], args=[json.dumps(doc), SEEN_TTL_SECONDS]))

    def oldest(self, limit: int) -> list[tuple[str, dict[str, Any]]]:
        return [(_text(entry_id), json.loads(fields[b"doc"])) for entry_id, fields in
                self.redis.xrange(self.stream, count=limit)]

    def drop(self, entry_id: str) -> None:
        self.redis.xdel(self.stream, entry_id)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
