"""dispatch.sweeper: the periodic sweep finds in MongoDB what was left half done (a worker
killed between two writes, Redis flushed) and drives it on; and `Delivery.reconcile`, which
settles a text left `sending` by asking the (fake) Twilio whether it went out.

The broken states are written straight into MongoDB, then `sweep()` runs.

Isolation: the `Services` here has an RQ queue no worker serves, so what the sweep starts
(a search, seen in the queue's set of rescues waiting for one; send_text, in the queue) never
runs behind a test's back;
sends are done by calling `Delivery.deliver` directly. Drivers and pickups sit in each
test's own patch of ground far from Manhattan and the other tests. A live service, if one
is running on the same database, sweeps too (every second): each test asserts the state
the sweep must leave, which holds whichever sweeper got there first, and not the counts.
"""
from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
from rq.job import Job

from dispatch.bootstrap import Services
from dispatch.config import ServiceArea
from dispatch.dispatcher import Accepted
from dispatch.model.clock import now_ms
from dispatch.model.driver import Driver
from dispatch.model.message import STATUS_RANK
from dispatch.model.rescue import Rescue
from dispatch.sweeper import DRIVER_STUCK_MS, EXPIRY_GRACE_MS, PENDING_TEXT_MS, SENDING_STUCK_MS
from tests.conftest import new_number
from tests.dispatch.ground import BASE_LAT, Area, purge_queue

BASE_LNG = -108.0  # New Mexico; other test modules use other longitudes




@pytest.fixture(scope="module")
def svc(services, settings):
    own = Services(dataclasses.replace(settings, queue_name=f"q_sweeper_{uuid.uuid4().hex[:8]}",
                                       offer_timeout_seconds=60, search_retry_seconds=30,
                                       service_area=ServiceArea(BASE_LAT + 10, BASE_LNG, 1500.0)),
                   services.db, services.redis)
    yield own
    for queue in own.scheduler.queues:
        purge_queue(queue)




@pytest.fixture
def area(svc):
    a = Area(svc, BASE_LNG)
    yield a
    a.cleanup()


def driver(area: Area, d: Driver) -> Driver:
    return area.svc.drivers.get(d.id)


def offer_for(area: Area, d: Driver, rescue: Rescue) -> dict:
    assert area.svc.dispatcher.dispatch(rescue.id) == "offers:1"
    offer = area.db.offers.find_one({"rescue_id": rescue.id, "status": "open"})
    assert offer["driver_id"] == d.id
    return offer


def lose_jobs(svc: Services) -> None:
    """Redis loses the queued jobs and the rescues waiting for a search."""
    for queue in svc.scheduler.queues:
        queue.empty()
    svc.scheduler.waiting_dispatches(1000)


def queued(svc: Services, func: str, arg: str) -> list[Job]:
    found = [j for queue in svc.scheduler.queues
             for j in Job.fetch_many(queue.get_job_ids(), connection=queue.connection) if j is not None]
    return [j for j in found if j.func_name == f"dispatch.worker.{func}" and tuple(j.args) == (arg,)]


def eventually(check, timeout: float = 3.0):
    """A live service's sweeper may have done the work first and its worker be finishing it."""
    deadline = time.time() + timeout
    while True:
        result = check()
        if result or time.time() > deadline:
            return result
        time.sleep(0.05)


def indexed(area: Area, driver_id: str) -> bool:
    return area.svc.redis.zscore(area.svc.geo.key, driver_id) is not None


# --- offers and drivers -------------------------------------------------------------------------

def test_overdue_open_offer_is_expired(area):
    late = area.driver(north_km=0.5)
    rescue = area.rescue()
    offer = offer_for(area, late, rescue)
    area.db.offers.update_one({"_id": offer["_id"]}, {"$set": {"expires_at": now_ms() - EXPIRY_GRACE_MS - 5000}})
    area.svc.sweeper.sweep()
    closed = area.db.offers.find_one({"_id": offer["_id"]})
    assert closed["status"] == "expired"
    doc = driver(area, late)
    assert doc.status == "available" and doc.offer_id is None
    assert indexed(area, late.id)
    assert area.db.events.count_documents({"rescue_id": rescue.id, "type": "offer_expired"}) == 1


@pytest.mark.parametrize("expires_in_ms", [60_000, -(EXPIRY_GRACE_MS // 4)], ids=["running", "within-grace"])
def test_offer_not_overdue_is_left_open(area, expires_in_ms):
    holder = area.driver(north_km=0.5)
    rescue = area.rescue()
    offer = offer_for(area, holder, rescue)
    area.db.offers.update_one({"_id": offer["_id"]}, {"$set": {"expires_at": now_ms() + expires_in_ms}})
    area.svc.sweeper.sweep()
    assert area.db.offers.find_one({"_id": offer["_id"]})["status"] == "open"
    assert driver(area, holder).status == "offered"


def test_driver_stuck_offered_without_a_live_offer_is_freed(area):
    stuck = area.driver(north_km=0.5)
    recent = area.driver(north_km=1.0)
    for d, age in ((stuck, DRIVER_STUCK_MS + 30_000), (recent, 5_000)):
        area.db.drivers.update_one({"_id": d.id}, {"$set": {
            "status": "offered", "offer_id": f"lost-{uuid.uuid4().hex}", "updated_at": now_ms() - age}})
        area.svc.geo.remove(d.id)
    area.svc.sweeper.sweep()
    doc = driver(area, stuck)
    assert doc.status == "available" and doc.offer_id is None
    assert indexed(area, stuck.id), "a freed driver with a fresh location is a candidate again"
    assert driver(area, recent).status == "offered", "a driver offered moments ago may be mid-offer"


def test_driver_holding_a_live_offer_is_not_freed(area):
    holder = area.driver(north_km=0.5)
    rescue = area.rescue()
    offer = offer_for(area, holder, rescue)
    area.db.drivers.update_one({"_id": holder.id}, {"$set": {"updated_at": now_ms() - DRIVER_STUCK_MS - 60_000}})
    area.svc.sweeper.sweep()
    doc = driver(area, holder)
    assert doc.status == "offered" and doc.offer_id == offer["_id"]


def assigned(area: Area, d: dict) -> Rescue:
    rescue = area.rescue()
    offer_for(area, d, rescue)
    assert isinstance(area.svc.dispatcher.accept(driver(area, d)), Accepted)
    return rescue


@pytest.mark.parametrize("broken", ["rescue-closed", "rescue-has-another-driver", "rescue-missing"])
def test_driver_on_job_for_a_rescue_that_is_not_theirs_is_freed(area, broken):
    stuck = area.driver(north_km=0.5)
    rescue = assigned(area, stuck)
    if broken == "rescue-closed":  # closed by a process that died before freeing the driver
        area.db.rescues.update_one({"_id": rescue.id}, {"$set": {"status": "completed"}})
    elif broken == "rescue-has-another-driver":
        area.db.rescues.update_one({"_id": rescue.id}, {"$set": {"driver_id": f"other-{uuid.uuid4().hex}"}})
    else:
        area.db.drivers.update_one({"_id": stuck.id}, {"$set": {"rescue_id": f"gone-{uuid.uuid4().hex}"}})
    area.db.drivers.update_one({"_id": stuck.id}, {"$set": {"updated_at": now_ms() - DRIVER_STUCK_MS - 30_000}})
    area.svc.sweeper.sweep()
    doc = driver(area, stuck)
    assert doc.status == "available" and doc.rescue_id is None


def test_driver_on_an_open_job_is_not_freed(area):
    busy = area.driver(north_km=0.5)
    rescue = assigned(area, busy)
    area.db.drivers.update_one({"_id": busy.id}, {"$set": {"updated_at": now_ms() - DRIVER_STUCK_MS - 60_000}})
    area.svc.sweeper.sweep()
    doc = driver(area, busy)
    assert doc.status == "on_job" and doc.rescue_id == rescue.id


def test_stuck_acceptance_is_resolved(area):
    """A process died after claiming the offer (`accepting`) but before assigning the rescue."""
    holder = area.driver(north_km=0.5)
    rescue = area.rescue()
    offer = offer_for(area, holder, rescue)
    area.db.offers.update_one({"_id": offer["_id"]},
                              {"$set": {"status": "accepting", "answered_at": now_ms() - 60_000}})
    lose_jobs(area.svc)
    area.svc.sweeper.sweep()
    assert area.db.offers.find_one({"_id": offer["_id"]})["status"] == "taken"
    assert driver(area, holder).status == "available"
    assert area.svc.rescues.get(rescue.id).status == "searching"
    # Started here, or (a live sweeper first) already searched again by a live worker.
    assert eventually(lambda: area.svc.scheduler.dispatch_waiting(rescue.id)
                      or area.db.rescues.find_one({"_id": rescue.id})["next_dispatch_at"] > 0), \
        "the rescue is searched for again"


# --- rescues --------------------------------------------------------------------------------------

def test_overdue_searching_rescue_without_an_offer_is_redriven(area):
    rescue = area.rescue()  # nobody out here: no offer
    overdue = now_ms() - 60_000
    area.db.rescues.update_one({"_id": rescue.id}, {"$set": {"next_dispatch_at": overdue}})
    lose_jobs(area.svc)  # the job its creation started is "lost"
    area.svc.sweeper.sweep()
    # A live service's sweeper may have re-driven it first: then its worker searched again
    # and moved next_dispatch_at on.
    assert eventually(lambda: area.svc.scheduler.dispatch_waiting(rescue.id)
                      or area.db.rescues.find_one({"_id": rescue.id})["next_dispatch_at"] > overdue), \
        "the overdue rescue was not re-driven"


def test_searching_rescue_with_a_live_offer_is_not_redriven(area):
    holder = area.driver(north_km=0.5)
    rescue = area.rescue()
    offer_for(area, holder, rescue)
    area.db.rescues.update_one({"_id": rescue.id}, {"$set": {"next_dispatch_at": now_ms() - 60_000}})
    lose_jobs(area.svc)
    area.svc.sweeper.sweep()
    assert not area.svc.scheduler.dispatch_waiting(rescue.id)


def test_lost_geo_index_is_rebuilt(area):
    ready = area.driver(north_km=0.5)
    area.svc.redis.delete(area.svc.geo.key, area.svc.geo.built_key)
    area.svc.sweeper.sweep()
    assert indexed(area, ready.id)
    assert area.svc.redis.exists(area.svc.geo.built_key)


# --- texts ----------------------------------------------------------------------------------------

def stuck_text(svc: Services, to: str, body: str, status: str, age_ms: int) -> str:
    """A text as a worker that died would leave it."""
    at = now_ms() - age_ms
    doc = {"_id": uuid.uuid4().hex, "key": f"test-sweeper-{uuid.uuid4().hex}", "direction": "out",
           "phone": to, "body": body, "kind": "reply", "rescue_id": None, "status": status,
           "status_rank": STATUS_RANK[status], "attempts": int(status == "sending"),
           "created_at": at, "updated_at": at}
    if status == "sending":
        doc["claimed_at"] = at
    svc.db.messages.insert_one(doc)
    return doc["_id"]


def message(svc: Services, message_id: str) -> dict:
    return svc.db.messages.find_one({"_id": message_id})


def texts(fake_twilio, to: str, body: str) -> list:
    return [t for t in fake_twilio.texts_to(to) if t.body == body]


def settle_sent_once(svc: Services, fake_twilio, message_id: str, to: str, body: str) -> None:
    """Send the text (unless some worker already is), then check it reached Twilio once."""
    svc.delivery.deliver(message_id)
    deadline = time.time() + 5
    while message(svc, message_id)["status"] not in ("sent", "delivered") and time.time() < deadline:
        time.sleep(0.05)
    doc = message(svc, message_id)
    assert doc["status"] == "sent", doc
    time.sleep(0.3)
    sent = texts(fake_twilio, to, body)
    assert [t.sid for t in sent] == [doc["twilio_sid"]]


def test_pending_text_is_requeued_then_sent_once(svc, fake_twilio):
    to, body = new_number(), f"sweeper pending {uuid.uuid4().hex[:8]}"
    message_id = stuck_text(svc, to, body, "pending", PENDING_TEXT_MS + 5_000)
    stuck_since = message(svc, message_id)["updated_at"]
    svc.sweeper.sweep()
    # Requeued here, or by a live sweeper (which stamps updated_at and whose worker sends it).
    assert eventually(lambda: queued(svc, "send_text", message_id)
                      or message(svc, message_id)["updated_at"] > stuck_since), \
        "the pending text's send job was not started again"
    assert len(queued(svc, "send_text", message_id)) <= 1
    settle_sent_once(svc, fake_twilio, message_id, to, body)


def test_recent_pending_text_is_left_to_its_job(svc, fake_twilio):
    to, body = new_number(), f"sweeper recent {uuid.uuid4().hex[:8]}"
    message_id = stuck_text(svc, to, body, "pending", 3_000)
    before = message(svc, message_id)["updated_at"]
    svc.sweeper.sweep()
    assert queued(svc, "send_text", message_id) == []
    after = message(svc, message_id)
    # A live service's drain on the same database may have sent it meanwhile (its claim
    # writes updated_at); the sweep itself must not have touched it.
    assert after["status"] != "pending" or after["updated_at"] == before
    svc.delivery.deliver(message_id)  # and send it, so it is not left for someone else


def test_stuck_sending_text_that_went_out_is_recorded_not_resent(svc, fake_twilio):
    to, body = new_number(), f"sweeper went out {uuid.uuid4().hex[:8]}"
    sid = svc.sender.send(to, body, None)  # the worker sent it, then died before recording
    message_id = stuck_text(svc, to, body, "sending", SENDING_STUCK_MS + 10_000)
    svc.sweeper.sweep()
    doc = message(svc, message_id)
    assert doc["status"] == "sent" and doc["twilio_sid"] == sid
    assert queued(svc, "send_text", message_id) == []
    time.sleep(0.3)
    assert [t.sid for t in texts(fake_twilio, to, body)] == [sid], "no second text reached Twilio"
    assert svc.delivery.deliver(message_id) == "sent"  # a late duplicate job sends nothing
    assert len(texts(fake_twilio, to, body)) == 1


def test_stuck_sending_text_that_never_went_out_is_sent_once(svc, fake_twilio):
    to, body = new_number(), f"sweeper never went {uuid.uuid4().hex[:8]}"
    message_id = stuck_text(svc, to, body, "sending", SENDING_STUCK_MS + 10_000)
    svc.sweeper.sweep()
    doc = message(svc, message_id)
    assert doc["status"] == "pending" and doc["status_rank"] == 0
    assert texts(fake_twilio, to, body) == []
    assert queued(svc, "send_text", message_id), "its send job starts again at once"
    settle_sent_once(svc, fake_twilio, message_id, to, body)


def test_recent_sending_text_is_left_alone(svc, fake_twilio):
    to, body = new_number(), f"sweeper mid-send {uuid.uuid4().hex[:8]}"
    message_id = stuck_text(svc, to, body, "sending", 5_000)
    svc.sweeper.sweep()
    assert message(svc, message_id)["status"] == "sending", "a send may still be in flight"
    assert texts(fake_twilio, to, body) == []
    svc.db.messages.update_one({"_id": message_id}, {"$set": {"status": "failed"}})  # keep later sweeps off it


# --- Delivery.reconcile directly -----------------------------------------------------------------

def test_reconcile_finds_a_text_twilio_has(svc, fake_twilio):
    to, body = new_number(), f"reconcile found {uuid.uuid4().hex[:8]}"
    sid = svc.sender.send(to, body, None)
    message_id = stuck_text(svc, to, body, "sending", 1_000)
    assert svc.delivery.reconcile(message(svc, message_id)) == "found"
    doc = message(svc, message_id)
    assert doc["status"] == "sent" and doc["twilio_sid"] == sid and doc["status_rank"] == STATUS_RANK["sent"]
    assert len(texts(fake_twilio, to, body)) == 1


def test_reconcile_ignores_other_bodies_and_numbers(svc, fake_twilio):
    to, body = new_number(), f"reconcile missing {uuid.uuid4().hex[:8]}"
    svc.sender.send(to, body + " (another text)", None)
    svc.sender.send(new_number(), body, None)
    message_id = stuck_text(svc, to, body, "sending", 1_000)
    stale = message(svc, message_id)
    assert svc.delivery.reconcile(stale) == "released"
    doc = message(svc, message_id)
    assert doc["status"] == "pending" and doc.get("twilio_sid") is None
    assert svc.delivery.reconcile(stale) == "moved-on", "only a text still `sending` is released"
    assert svc.delivery.deliver(message_id) == "sent"
    assert len(texts(fake_twilio, to, body)) == 1
