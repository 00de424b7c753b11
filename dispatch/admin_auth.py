"""The admin token check shared by the admin API, /metrics, the status page login and the
sandbox outbox: one comparison, one guessing limit.

The comparison is constant-time. Wrong tokens are counted per client address in a
one-minute window; an address over the limit is refused without a comparison until the
window ends, so guessing runs at a few tries a minute whichever door is knocked on. Only
wrong tokens count: a dispatcher's scripts using the right one are never slowed. If Redis
is down the limit is skipped (the comparison still decides): locking dispatchers out
during an outage would be worse than a minute of unthrottled guessing.
"""
from __future__ import annotations

import hmac
import time

from redis import Redis
from redis.exceptions import RedisError

WINDOW_SECONDS = 60


class TooManyWrongTokens(Exception):
    """This address guessed wrong too often in the current window."""


def token_ok(redis: Redis, token: str | None, given: str, address: str | None, limit: int) -> bool:
    key = f"rate:admin-token:{address or 'unknown'}:{int(time.time() // WINDOW_SECONDS)}"
    try:
        if int(redis.get(key) or 0) >= limit:
            raise TooManyWrongTokens(address)
    except RedisError:
        pass
    if token and hmac.compare_digest(given.encode(), token.encode()):
        return True
    if given:  # no token at all is not a guess (a browser without a session, say)
        try:
            pipe = redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS * 2)
            pipe.execute()
        except RedisError:
            pass
    return False
