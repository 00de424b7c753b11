"""Domain events are handed out again when their handlers did not all run (dispatch/bus.py),
with the real MongoDB event store."""
from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass

import pytest

from dispatch.adapters.mongo.events import MongoEventStore
from dispatch.bus import MAX_REDELIVERIES, EventBus
from dispatch.model import events as ev
from dispatch.model.clock import now_ms


@dataclass(frozen=True, kw_only=True)
class ThingHappened(ev.Event):
    TYPE = "test_thing_happened"
    n: int = 0


@dataclass(frozen=True, kw_only=True)
class NobodyListens(ev.Event):
    TYPE = "test_nobody_listens"


@pytest.fixture
def db(services):
    """A database of its own: redelivery looks at every unhandled event in it."""
    private = services.db.client[f"events_{uuid.uuid4().hex[:10]}"]
    yield private
    services.db.client.drop_database(private.name)


def bus_with(db, handlers) -> EventBus:
    bus = EventBus(MongoEventStore(db))
    bus.handlers = handlers
    return bus


def test_an_event_whose_handler_failed_is_handed_out_again_until_every_handler_ran(db):
    calls: list[tuple[str, bool]] = []
    fail = {"left": 1}

    def flaky(event):
        calls.append(("flaky", event.redelivered))
        if fail["left"]:
            fail["left"] -= 1
            raise RuntimeError("a store hiccup")

    bus = bus_with(db, {ThingHappened: [flaky, lambda event: calls.append(("steady", event.redelivered))]})
    event = bus.publish(ThingHappened(rescue_id="r1", by="test", n=1))
    assert calls == [("flaky", False), ("steady", False)]
    assert db.events.find_one({"_id": event.id})["handled"] in (False, 0)
    assert bus.redeliver(now_ms() - 60_000) == 0, "too young: its handlers may still be running"
    assert bus.redeliver(now_ms() + 1) == 1
    assert calls[2:] == [("flaky", True), ("steady", True)]
    assert bool(db.events.find_one({"_id": event.id})["handled"])
    assert bus.redeliver(now_ms() + 1) == 0


def test_an_event_stored_by_a_process_killed_before_its_handlers_is_handled_by_the_sweep(db):
    seen = []
    bus = bus_with(db, {ev.OfferMade: [lambda event: seen.append((event.id, event.data, event.redelivered))]})
    db.events.insert_one({"_id": "e1", "rescue_id": "r1", "type": "offer_made", "by": "dispatcher",
                          "at": now_ms() - 10_000, "data": {"offer_id": "o1", "driver_id": "d1", "distance_km": 1.5},
                          "handled": False})
    assert bus.redeliver(now_ms() - 5_000) == 1
    assert seen == [("e1", {"offer_id": "o1", "driver_id": "d1", "distance_km": 1.5}, True)]


def test_events_nobody_handles_are_stored_handled(db):
    event = bus_with(db, {}).publish(NobodyListens(rescue_id=None, by="test"))
    assert bool(db.events.find_one({"_id": event.id})["handled"])


def test_a_handler_that_always_fails_is_given_up_after_a_few_redeliveries(db):
    tries = []

    def broken(event):
        tries.append(1)
        raise RuntimeError("a bug")

    bus = bus_with(db, {ThingHappened: [broken]})
    event = bus.publish(ThingHappened(rescue_id=None, by="test"))
    for _ in range(MAX_REDELIVERIES + 3):
        bus.redeliver(now_ms() + 1)
    stored = db.events.find_one({"_id": event.id})
    assert bool(stored["handled"]) and bool(stored["gave_up"])
    assert len(tries) == 1 + MAX_REDELIVERIES


def test_a_redelivered_offer_text_is_not_sent_once_the_offer_is_closed(db, settings, services):
    """The offer ran out before the sweeper found its unhandled offer_made: texting it now
    would ask the driver to accept what is gone."""
    from dispatch.bootstrap import Services
    from dispatch.model.driver import Driver
    from tests.conftest import new_number

    own = Services(dataclasses.replace(settings, queue_name=f"q_events_{uuid.uuid4().hex[:8]}"), db, services.redis)
    rescue = own.lifecycle.create(request_key=f"test-{uuid.uuid4().hex}", rider_phone=new_number(), channel="sms",
                                  pickup={"lat": 40.73, "lng": -73.99, "label": "Union Square"}, dropoff=None,
                                  problem="flat tire", problem_note="", quote_cents=2500, trip_miles=1.0, surge=1.0)
    driver = Driver.new(new_number(), "Ola", "Van")
    own.drivers.add(driver)
    offer_id = uuid.uuid4().hex
    db.offers.insert_one({"_id": offer_id, "rescue_id": rescue.id, "driver_id": driver.id, "status": "expired"})
    late = ev.OfferMade(rescue_id=rescue.id, by="dispatcher", offer_id=offer_id, driver_id=driver.id,
                        distance_km=0.4, redelivered=True)
    own.notifier.offer_made(late)
    assert db.messages.find_one({"key": f"evt:{late.id}:driver"}) is None
    db.offers.update_one({"_id": offer_id}, {"$set": {"status": "open"}})
    own.notifier.offer_made(late)
    assert db.messages.find_one({"key": f"evt:{late.id}:driver"}) is not None
    for queue in own.scheduler.queues:
        queue.delete(delete_jobs=True)
