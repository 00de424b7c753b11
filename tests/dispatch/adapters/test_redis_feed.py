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


def test_every_event_is_announced_once_on_the_board_and_a_link_follows_its_rescues():
    from dispatch.announcer import BOARD, about_rescue
    from tests.dispatch.fakes import core
    from tests.dispatch.unit.conftest import add_rescue

    c = core()
    rescue, other = add_rescue(c), add_rescue(c)
    c.dispatcher.cancel(rescue.id, "test", by="dispatcher")
    assert {channel for channel, _ in c.feed.published} == {BOARD}
    events = [p for _, p in c.feed.published if p["type"] != "message"]
    assert [p["type"] for p in events] == ["rescue_requested", "rescue_requested", "rescue_cancelled"]
    texts = [p for _, p in c.feed.published if p["type"] == "message"]
    assert texts and all(p["rescue_id"] in (rescue.id, other.id) for p in texts), "the texts queued are announced too"
    followed = [p["type"] for _, p in c.feed.published if about_rescue(p, rescue.id)]
    assert followed == ["rescue_requested", "rescue_cancelled"], "a link follows its rescue's events, not texts"
    assert not any(about_rescue(p, other.id) for _, p in c.feed.published if p["type"] == "rescue_cancelled")
