"""Two deployments sharing one Redis (PRODUCT.md §7): every key and channel the service names
is under its deployment's prefix, so neither sees the other's locks, heartbeats, GEO index,
rate limits, kicks or change feed. Real Redis, the real adapters as `Services` wires them."""
from __future__ import annotations

import dataclasses
import threading
import time
import uuid

import pytest

from dispatch.adapters.rq_scheduler import DRAIN_OUTBOX, WorkerHeartbeats
from dispatch.bootstrap import Services
from dispatch.config import load_settings


@pytest.fixture
def two(settings, services):
    tag = uuid.uuid4().hex[:8]
    made = [Services(dataclasses.replace(settings, redis_prefix=f"dep{n}-{tag}", queue_name=f"q{n}-{tag}"),
                     services.db, services.redis) for n in ("a", "b")]
    yield made
    for svc in made:
        keys = list(services.redis.scan_iter(svc.keys("*")))
        if keys:
            services.redis.delete(*keys)
        for queue in svc.scheduler.queues:
            queue.empty()


def test_the_prefix_is_redis_prefix_else_the_queue_name():
    assert load_settings({}).redis_prefix == "default"
    assert load_settings({"RQ_QUEUE": "east"}).redis_prefix == "east"
    assert load_settings({"RQ_QUEUE": "east", "REDIS_PREFIX": "sc-east"}).redis_prefix == "sc-east"


def test_two_deployments_on_one_redis_do_not_see_each_other(two, services):
    a, b = two
    before = {k for k in services.redis.scan_iter("*")}

    a.geo.put("driver-a", 40.7359, -73.9911)
    assert [d for d, _ in a.geo.nearby(40.7359, -73.9911, 2)] == ["driver-a"]
    assert b.geo.nearby(40.7359, -73.9911, 2) == []

    with a.locks.hold("phone:+12125550123", ttl_seconds=5, wait_seconds=0) as held_a:
        got_b: list[bool] = []
        worker = threading.Thread(target=lambda: got_b.append(b.locks.hold("phone:+12125550123", 5, 0).__enter__()))
        worker.start()
        worker.join()
        assert held_a and got_b == [True]  # B's lock of the same name is its own

    for _ in range(5):
        a.limits.hit("in:+12125550123", 60)
    assert a.limits.count("in:+12125550123", 60) == 5 and b.limits.count("in:+12125550123", 60) == 0

    WorkerHeartbeats(a.redis, a.keys).beat("worker-of-a")
    assert WorkerHeartbeats(a.redis, a.keys).alive() == 1 and WorkerHeartbeats(b.redis, b.keys).alive() == 0

    a.scheduler.kick_outbox()
    b.scheduler.kick_outbox()  # A's waiting kick must not stand in for B's
    assert a.scheduler.kicks_waiting(DRAIN_OUTBOX) == 1 and b.scheduler.kicks_waiting(DRAIN_OUTBOX) == 1
    a.scheduler.dispatch("rescue-of-a")
    assert a.scheduler.dispatch_waiting("rescue-of-a") and not b.scheduler.dispatch_waiting("rescue-of-a")

    heard: list = []
    listening = threading.Event()

    def listen() -> None:
        for change in b.feed.listen(["board"], heartbeat_seconds=0.2, until=time.monotonic() + 1.5):
            listening.set()
            if change is not None:
                heard.append(change)
    listener = threading.Thread(target=listen)
    listener.start()
    listening.wait(2)
    a.feed.publish("board", {"from": "a"})
    b.feed.publish("board", {"from": "b"})
    listener.join()
    assert heard == [("board", {"from": "b"})]

    created = {k.decode() for k in services.redis.scan_iter("*")} - {k.decode() for k in before}
    stray = sorted(k for k in created if not k.startswith(("rq:", a.keys(""), b.keys(""), services.keys(""))))
    assert stray == [], f"keys outside any deployment's prefix: {stray}"
    assert any(k.startswith(a.keys("")) for k in created) and any(k.startswith(b.keys("")) for k in created)


def test_a_rate_limit_hit_counts_and_sets_its_expiry(two, services):
    a, _ = two
    name = f"in:+1212555{uuid.uuid4().int % 10000:04d}"
    assert [a.limits.hit(name, 60) for _ in range(3)] == [1, 2, 3]
    [key] = list(services.redis.scan_iter(a.keys(f"rate:{name}:*")))
    assert 60 < services.redis.ttl(key) <= 120
