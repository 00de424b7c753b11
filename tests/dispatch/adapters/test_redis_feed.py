"""The change feed on the real Redis: a change published in one place reaches a listener at once,
and a quiet feed still beats."""
from __future__ import annotations

import threading
import time
import uuid

from dispatch.adapters.redis_feed import RedisFeed


def test_a_published_change_reaches_a_listener_and_quiet_gives_heartbeats(services):
    feed = RedisFeed(services.redis, services.keys)
    channel = f"test-{uuid.uuid4().hex}"
    heard: list = []
    ready = threading.Event()

    def listen():
        for change in feed.listen([channel], heartbeat_seconds=0.3, until=time.monotonic() + 2.0):
            ready.set()
            heard.append(change)

    thread = threading.Thread(target=listen)
    thread.start()
    ready.wait(2)  # the first heartbeat: subscribed
    feed.publish(channel, {"type": "driver_arrived", "rescue_id": "r1"})
    feed.publish(f"other-{channel}", {"type": "not for us"})
    thread.join(5)
    changes = [c for c in heard if c is not None]
    assert changes == [(channel, {"type": "driver_arrived", "rescue_id": "r1"})]
    assert heard.count(None) >= 2, "heartbeats while nothing happens"


def test_every_event_is_announced_to_the_board_and_its_rescue():
    from dispatch.announcer import BOARD, rescue_channel
    from tests.dispatch.fakes import core
    from tests.dispatch.unit.conftest import add_rescue

    c = core()
    rescue = add_rescue(c)
    c.dispatcher.cancel(rescue.id, "test", by="dispatcher")
    channels = [channel for channel, _ in c.feed.published]
    assert channels.count(BOARD) == 2 and channels.count(rescue_channel(rescue.id)) == 2
    assert [p["type"] for ch, p in c.feed.published if ch == BOARD] == ["rescue_requested", "rescue_cancelled"]
