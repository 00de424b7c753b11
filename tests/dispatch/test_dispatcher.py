"""dispatch.dispatcher in process: offers, answers, the offer timer, the job, overrides.

Real Redis and the real MongoDB-wire server, calling the dispatcher's methods directly.

Isolation:
* Every test works in its own patch of ground far from Manhattan and from the other tests
  (0.6 degrees of latitude apart, more than twice the widest 20 km search radius), so only
  its own drivers are candidates; drivers go offline and rescues are cancelled afterwards.
* The `Services` used here has an RQ queue no worker serves (and so no drain takes its
  rescues waiting for a search), so the follow-ups these calls start (a search, expire_offer,
  send_text) never run behind a test's back; the tests look there to see what was started.
* A live service (its sweeper re-drives searching rescues with no live offer) may share the
  database. Tests dispatch right after creating a rescue and make their assertions hold
  whichever process made an offer; offers made here run 60 s, far beyond any test.
"""
from __future__ import annotations

import dataclasses
import uuid

import pytest
import rq
from rq.job import Job

from dispatch.adapters.rq_scheduler import urgent_queue_name
from dispatch.bootstrap import Services
from dispatch.config import ServiceArea
from dispatch.model.clock import now_ms
from dispatch.model.driver import Driver
from dispatch.model.errors import Conflict, NotFound
from dispatch.model.rescue import Rescue
from dispatch.texts import say
from flows.driver import reply_for
from flows.effects import Reply
from tests.dispatch.ground import BASE_LAT, Area, purge_queue

BASE_LNG = -104.0  # west Texas; other test modules use other longitudes
OFFER_SECONDS = 60




def own_services(settings, services, **changes) -> Services:
    return Services(dataclasses.replace(settings, **changes), services.db, services.redis)


@pytest.fixture(scope="module")
def svc(services, settings):
    own = own_services(settings, services, queue_name=f"q_dispatcher_{uuid.uuid4().hex[:8]}",
                       offer_timeout_seconds=OFFER_SECONDS, search_retry_seconds=30,
                       service_area=ServiceArea(BASE_LAT + 10, BASE_LNG, 1500.0))
    yield own
    for queue in own.scheduler.queues:
        purge_queue(queue)




@pytest.fixture
def area(svc):
    a = Area(svc, BASE_LNG)
    yield a
    a.cleanup()


# --- helpers --------------------------------------------------------------------------------

def driver(area: Area, d: Driver) -> Driver:
    return area.svc.drivers.get(d.id)


def offers(area: Area, rescue_id: str, status: str | None = None) -> list[dict]:
    query = {"rescue_id": rescue_id, **({"status": status} if status else {})}
    return sorted(area.db.offers.find(query), key=lambda o: o["distance_km"])


def event_types(area: Area, rescue_id: str) -> list[str]:
    return [e["type"] for e in area.db.events.find({"rescue_id": rescue_id})]


def indexed(area: Area, driver_id: str) -> bool:
    return area.svc.redis.zscore(area.svc.geo.key, driver_id) is not None


def jobs(queues: Services | rq.Queue, func: str, arg: str, scheduled: bool) -> list[Job]:
    """Jobs waiting (or scheduled) in a queue, or in every queue of a Services."""
    found = []
    for queue in queues.scheduler.queues if isinstance(queues, Services) else [queues]:
        ids = queue.scheduled_job_registry.get_job_ids() if scheduled else queue.get_job_ids()
        found += [j for j in Job.fetch_many(ids, connection=queue.connection) if j is not None]
    return [j for j in found if j.func_name == f"dispatch.worker.{func}" and tuple(j.args) == (arg,)]


def offered(area: Area, d: Driver, rescue: Rescue) -> dict:
    """Dispatch `rescue` and return the one open offer, which must be `d`'s."""
    assert area.svc.dispatcher.dispatch(rescue.id) == "offers:1"
    live = offers(area, rescue.id, "open")
    assert [o["driver_id"] for o in live] == [d.id]
    return live[0]


def reply(outcome) -> Reply:
    """The words the driver flow chooses for a dispatcher result."""
    return reply_for(outcome)


def rendered(outcome) -> str:
    words = reply(outcome)
    return say(words.template, **words.context)


# --- offers ----------------------------------------------------------------------------------

def test_dispatch_offers_the_nearest_available_driver(area, settings):
    far = area.driver(north_km=3.0)
    near = area.driver(east_km=1.0)
    rescue = area.rescue()
    assert area.svc.dispatcher.dispatch(rescue.id) == "offers:1"
    live = offers(area, rescue.id)
    assert [(o["driver_id"], o["status"]) for o in live] == [(near.id, "open")]
    offer = live[0]
    assert offer["rescue_code"] == rescue.code
    assert offer["distance_km"] == pytest.approx(1.0, abs=0.05)
    # Normally made here (60 s); the live service, if it got there first, uses its own timeout.
    assert offer["expires_at"] - offer["created_at"] in (OFFER_SECONDS * 1000, settings.offer_timeout_seconds * 1000)
    held = driver(area, near)
    assert held.status == "offered" and held.offer_id == offer["_id"]
    assert not indexed(area, near.id), "a driver holding an offer is out of the index"
    assert driver(area, far).status == "available"
    assert event_types(area, rescue.id).count("offer_made") == 1
    assert area.db.messages.find_one({"phone": near.phone, "kind": "driver_offer", "rescue_id": rescue.id})


def test_dispatch_again_while_an_offer_is_open_makes_no_second_offer(area):
    near = area.driver(north_km=0.5)
    area.driver(north_km=1.0)
    rescue = area.rescue()
    offered(area, near, rescue)
    assert area.svc.dispatcher.dispatch(rescue.id) == "offers:1"
    assert len(offers(area, rescue.id)) == 1


def test_fanout_three_makes_three_offers(area, svc, services):
    fan = own_services(svc.settings, services, offer_fanout=3)
    drivers = [area.driver(north_km=km) for km in (0.5, 1.0, 1.5, 1.8)]
    rescue = area.rescue()
    assert fan.dispatcher.dispatch(rescue.id) == "offers:3"
    live = offers(area, rescue.id, "open")
    assert [o["driver_id"] for o in live] == [d.id for d in drivers[:3]]
    assert [driver(area, d).status for d in drivers] == ["offered"] * 3 + ["available"]
    assert fan.dispatcher.dispatch(rescue.id) == "offers:3"
    assert len(offers(area, rescue.id)) == 3


def test_fanout_reaches_beyond_the_first_radius_step(area, svc, services):
    """With OFFER_FANOUT=3 and three free drivers within reach, three hold the offer."""
    fan = own_services(svc.settings, services, offer_fanout=3)
    drivers = [area.driver(north_km=km) for km in (1.0, 3.0, 6.0)]
    rescue = area.rescue()
    result = fan.dispatcher.dispatch(rescue.id)
    live = offers(area, rescue.id, "open")
    assert [o["driver_id"] for o in live] == [d.id for d in drivers], (
        f"APP BUG: dispatch/dispatcher.py dispatch() with offer_fanout=3 made {result!r}: it takes "
        "candidates from GeoIndex.candidates(), which stops at the first radius step holding anyone "
        "(2 km here), so drivers 3 km and 6 km away are never offered while the first offer is open, "
        "and no follow-up dispatch is scheduled because live + made > 0")


# --- accept / decline ------------------------------------------------------------------------

def test_accept_assigns_the_rescue_and_releases_the_other_offers(area, svc, services):
    fan = own_services(svc.settings, services, offer_fanout=3)
    a, b, c = (area.driver(north_km=km) for km in (0.5, 1.0, 1.5))
    rescue = area.rescue()
    assert fan.dispatcher.dispatch(rescue.id) == "offers:3"
    outcome = svc.dispatcher.accept(driver(area, b))
    assert reply(outcome).template == "job_details"
    assert rescue.code in rendered(outcome)
    after = svc.rescues.get(rescue.id)
    assert after.status == "assigned" and after.driver_id == b.id
    winner = driver(area, b)
    assert winner.status == "on_job" and winner.rescue_id == rescue.id and winner.offer_id is None
    by_driver = {o["driver_id"]: o["status"] for o in offers(area, rescue.id)}
    assert by_driver == {a.id: "taken", b.id: "accepted", c.id: "taken"}
    for loser in (a, c):
        doc = driver(area, loser)
        assert doc.status == "available" and doc.offer_id is None
        assert indexed(area, loser.id), "a released driver is back in the index"
    types = event_types(area, rescue.id)
    assert types.count("driver_assigned") == 1 and types.count("offer_withdrawn") == 2


def test_accept_with_the_code(area):
    near = area.driver(north_km=0.5)
    rescue = area.rescue()
    offered(area, near, rescue)
    assert reply(area.svc.dispatcher.accept(driver(area, near), code=rescue.code[1:])).template == "job_details"
    assert area.svc.rescues.get(rescue.id).driver_id == near.id


def test_accept_with_a_wrong_code_is_not_an_acceptance(area):
    near = area.driver(north_km=0.5)
    rescue = area.rescue()
    offer = offered(area, near, rescue)
    wrong = str(int(rescue.code[1:]) + 7)
    outcome = area.svc.dispatcher.accept(driver(area, near), code=wrong)
    assert reply(outcome).template != "job_details"
    words = rendered(outcome)
    assert f"open offer is {rescue.code}, not R{wrong}" in words and f"Y {rescue.code[1:]}" in words
    assert "still online" not in words
    assert area.db.offers.find_one({"_id": offer["_id"]})["status"] == "open"
    assert driver(area, near).status == "offered"
    assert area.svc.rescues.get(rescue.id).status == "searching"


def test_accept_without_an_offer(area):
    idle = area.driver(north_km=0.5)
    outcome = area.svc.dispatcher.accept(driver(area, idle))
    assert reply(outcome).template == "no_open_offer"
    rendered(outcome)
    assert driver(area, idle).status == "available"


def test_decline_frees_the_driver_and_the_next_dispatch_skips_them(area):
    first = area.driver(north_km=0.5)
    second = area.driver(north_km=1.5)
    rescue = area.rescue()
    offer = offered(area, first, rescue)
    area.svc.scheduler.waiting_dispatches(1000)  # as if the drain had taken what was waiting
    outcome = area.svc.dispatcher.decline(driver(area, first))
    assert reply(outcome).template == "offer_declined" and reply(outcome).context["code"] == rescue.code
    rendered(outcome)
    assert area.db.offers.find_one({"_id": offer["_id"]})["status"] == "declined"
    doc = driver(area, first)
    assert doc.status == "available" and doc.offer_id is None
    assert "offer_declined" in event_types(area, rescue.id)
    assert area.svc.scheduler.dispatch_waiting(rescue.id), "a decline moves on at once"
    area.svc.dispatcher.dispatch(rescue.id)
    live = offers(area, rescue.id, "open")
    assert [o["driver_id"] for o in live] == [second.id]
    assert driver(area, first).status == "available"


def test_a_driver_who_passed_is_still_offered_the_next_rescue(area):
    first = area.driver(north_km=0.5)
    second = area.driver(north_km=1.5)
    rescue = area.rescue()
    offered(area, first, rescue)
    area.svc.dispatcher.decline(driver(area, first))
    area.svc.dispatcher.dispatch(rescue.id)  # goes to `second`
    other = area.rescue(east_km=0.3)
    result = area.svc.dispatcher.dispatch(other.id)
    live = offers(area, other.id, "open")
    assert [o["driver_id"] for o in live] == [first.id], (
        f"APP BUG: dispatch of a second rescue gave {result!r}; the first driver is available "
        f"({driver(area, first)['status']}) 0.5 km away but was dropped from the GEO index by "
        "GeoIndex.candidates() while it skipped them as excluded for the first rescue "
        "(dispatch/matching.py, the `doc is None -> self.remove()` branch)")
    assert second.id not in [o["driver_id"] for o in live]


def test_decline_without_an_offer(area):
    idle = area.driver(north_km=0.5)
    assert reply(area.svc.dispatcher.decline(driver(area, idle))).template == "no_open_offer"


# --- the offer timer -----------------------------------------------------------------------------

def test_an_answered_offer_takes_its_timer_back(area):
    near, other = area.driver(north_km=0.5), area.driver(north_km=0.6)
    offer = offered(area, near, area.rescue())
    assert jobs(area.svc, "expire_offer", offer["_id"], scheduled=True), "making an offer starts its timer"
    assert area.svc.dispatcher.accept(driver(area, near)).__class__.__name__ == "Accepted"
    assert jobs(area.svc, "expire_offer", offer["_id"], scheduled=True) == []
    declined = offered(area, other, area.rescue())
    area.svc.dispatcher.decline(driver(area, other))
    assert jobs(area.svc, "expire_offer", declined["_id"], scheduled=True) == []
    assert area.svc.dispatcher.expire(declined["_id"]) == "not-open"  # a timer that ran anyway


def test_expire_before_time_reschedules_then_expires_after(area):
    near = area.driver(north_km=0.5)
    rescue = area.rescue()
    offer = offered(area, near, rescue)
    timers = len(jobs(area.svc, "expire_offer", offer["_id"], scheduled=True))
    assert timers >= 1, "making an offer starts its timer"
    assert area.svc.dispatcher.expire(offer["_id"]) == "early"
    assert area.db.offers.find_one({"_id": offer["_id"]})["status"] == "open"
    assert driver(area, near).status == "offered"
    assert len(jobs(area.svc, "expire_offer", offer["_id"], scheduled=True)) == timers + 1

    area.db.offers.update_one({"_id": offer["_id"]}, {"$set": {"expires_at": now_ms() - 1000}})
    assert area.svc.dispatcher.expire(offer["_id"]) == "expired"
    closed = area.db.offers.find_one({"_id": offer["_id"]})
    assert closed["status"] == "expired" and closed["expired_at"] >= closed["expires_at"]
    doc = driver(area, near)
    assert doc.status == "available" and doc.offer_id is None
    assert indexed(area, near.id)
    assert "offer_expired" in event_types(area, rescue.id)
    assert area.svc.dispatcher.expire(offer["_id"]) == "not-open"


def test_stale_timer_leaves_the_newer_offer_alone(area):
    near = area.driver(north_km=0.5)
    first = area.rescue()
    old = offered(area, near, first)
    area.db.offers.update_one({"_id": old["_id"]}, {"$set": {"expires_at": now_ms() - 1000}})
    assert area.svc.dispatcher.expire(old["_id"]) == "expired"
    area.svc.dispatcher.cancel(first.id, "test", by="test")
    second = area.rescue(east_km=0.2)
    new = offered(area, near, second)
    assert area.svc.dispatcher.expire(old["_id"]) == "not-open"  # the old timer fires again
    assert area.db.offers.find_one({"_id": new["_id"]})["status"] == "open"
    doc = driver(area, near)
    assert doc.status == "offered" and doc.offer_id == new["_id"]


def test_stale_open_offer_expiring_does_not_free_a_driver_holding_a_newer_one(area):
    near = area.driver(north_km=0.5)
    first = area.rescue()
    old = offered(area, near, first)
    area.svc.dispatcher.decline(driver(area, near))
    area.svc.dispatcher.cancel(first.id, "test", by="test")
    second = area.rescue(east_km=0.2)
    new = offered(area, near, second)
    # The old offer left open by a crash, its timer firing late: keyed by offer id, it must
    # close only itself.
    area.db.offers.update_one({"_id": old["_id"]}, {"$set": {"status": "open", "expires_at": now_ms() - 5000}})
    area.svc.dispatcher.expire(old["_id"])
    assert area.db.offers.find_one({"_id": new["_id"]})["status"] == "open"
    doc = driver(area, near)
    assert doc.status == "offered" and doc.offer_id == new["_id"]


def test_late_accept_after_expiry_is_told_too_late(area):
    near = area.driver(north_km=0.5)
    rescue = area.rescue()
    offer = offered(area, near, rescue)
    area.db.offers.update_one({"_id": offer["_id"]}, {"$set": {"expires_at": now_ms() - 1000}})
    assert area.svc.dispatcher.expire(offer["_id"]) == "expired"
    for code in (rescue.code[1:], None):
        outcome = area.svc.dispatcher.accept(driver(area, near), code=code)
        assert reply(outcome).template == "offer_too_late" and reply(outcome).context["code"] == rescue.code
        assert rescue.code in rendered(outcome)
    assert area.svc.rescues.get(rescue.id).status == "searching"
    assert driver(area, near).status == "available"


def test_accept_racing_the_timer_is_too_late(area):
    """The offer ran out but its timer has not fired yet: the accept expires it itself."""
    near = area.driver(north_km=0.5)
    rescue = area.rescue()
    offer = offered(area, near, rescue)
    holding = driver(area, near)
    area.db.offers.update_one({"_id": offer["_id"]}, {"$set": {"expires_at": now_ms() - 1}})
    outcome = area.svc.dispatcher.accept(holding, code=rescue.code[1:])
    assert reply(outcome).template == "offer_too_late"
    assert area.db.offers.find_one({"_id": offer["_id"]})["status"] == "expired"
    after = area.svc.rescues.get(rescue.id)
    assert after.status == "searching" and after.driver_id is None
    assert driver(area, near).status == "available"


# --- on the job ----------------------------------------------------------------------------------

def assigned(area: Area, d: Driver) -> Rescue:
    rescue = area.rescue()
    offered(area, d, rescue)
    assert reply(area.svc.dispatcher.accept(driver(area, d))).template == "job_details"
    return rescue


def test_job_actions_by_the_assigned_driver(area):
    near = area.driver(north_km=0.5)
    rescue = assigned(area, near)
    outcome = area.svc.dispatcher.job_action(driver(area, near), "arrive")
    assert reply(outcome).template == "job_arrive" and not reply(outcome).context["repeat"]
    rendered(outcome)
    assert area.svc.rescues.get(rescue.id).status == "arrived"
    assert reply(area.svc.dispatcher.job_action(driver(area, near), "arrive")).context["repeat"] is True
    assert driver(area, near).status == "on_job"
    outcome = area.svc.dispatcher.job_action(driver(area, near), "complete")
    assert reply(outcome).template == "job_complete"
    rendered(outcome)
    assert area.svc.rescues.get(rescue.id).status == "completed"
    doc = driver(area, near)
    assert doc.status == "available" and doc.rescue_id is None
    assert indexed(area, near.id)
    types = event_types(area, rescue.id)
    assert types.count("driver_arrived") == 1 and types.count("rescue_completed") == 1


def test_job_action_by_another_driver_is_refused(area):
    near = area.driver(north_km=0.5)
    other = area.driver(north_km=1.0)
    rescue = assigned(area, near)
    impostor = dataclasses.replace(driver(area, other), rescue_id=rescue.id)
    for action in ("arrive", "complete"):
        outcome = area.svc.dispatcher.job_action(impostor, action)
        assert reply(outcome).template == "job_action_refused"
    assert area.svc.rescues.get(rescue.id).status == "assigned"
    assert driver(area, near).status == "on_job"


def test_job_action_out_of_order_is_refused(area):
    near = area.driver(north_km=0.5)
    rescue = assigned(area, near)
    outcome = area.svc.dispatcher.job_action(driver(area, near), "complete")  # not arrived yet
    assert reply(outcome).template == "job_action_refused"
    rendered(outcome)
    assert area.svc.rescues.get(rescue.id).status == "assigned"
    assert driver(area, near).status == "on_job"


def test_job_action_without_a_job(area):
    idle = area.driver(north_km=0.5)
    assert reply(area.svc.dispatcher.job_action(driver(area, idle), "arrive")).template == "no_job"
    assert reply(area.svc.dispatcher.drop(driver(area, idle))).template == "no_job"


def test_drop_puts_the_rescue_back_to_searching(area):
    near = area.driver(north_km=0.5)
    other = area.driver(north_km=1.5)
    rescue = assigned(area, near)
    outcome = area.svc.dispatcher.drop(driver(area, near))
    assert reply(outcome).template == "job_dropped"
    rendered(outcome)
    after = area.svc.rescues.get(rescue.id)
    assert after.status == "searching" and after.driver_id is None
    assert [o["status"] for o in offers(area, rescue.id)] == ["dropped"]
    doc = driver(area, near)
    assert doc.status == "available" and doc.rescue_id is None
    assert "driver_dropped" in event_types(area, rescue.id)
    area.svc.dispatcher.dispatch(rescue.id)
    assert [o["driver_id"] for o in offers(area, rescue.id, "open")] == [other.id], \
        "the driver who handed the job back is not asked again"


# --- dispatcher overrides ------------------------------------------------------------------------

def test_assign_a_searching_rescue_then_reassign(area):
    holder = area.driver(north_km=0.5)
    first = area.driver(north_km=1.0)
    second = area.driver(north_km=1.5)
    rescue = area.rescue()
    offer = offered(area, holder, rescue)

    result = area.svc.dispatcher.assign(rescue.id, first.id)
    assert result.status == "assigned" and result.driver_id == first.id
    doc = driver(area, first)
    assert doc.status == "on_job" and doc.rescue_id == rescue.id
    assert not indexed(area, first.id)
    assert area.db.offers.find_one({"_id": offer["_id"]})["status"] in ("taken", "withdrawn")
    doc = driver(area, holder)
    assert doc.status == "available" and doc.offer_id is None

    moved = area.svc.dispatcher.assign(rescue.id, second.id)
    assert moved.status == "assigned" and moved.driver_id == second.id
    assert area.svc.rescues.get(rescue.id).driver_id == second.id
    assert driver(area, second).status == "on_job"
    doc = driver(area, first)
    assert doc.status == "available" and doc.rescue_id is None
    assert indexed(area, first.id)
    reassigned = area.db.events.find_one({"rescue_id": rescue.id, "type": "driver_reassigned"})
    assert reassigned and reassigned["data"]["previous_driver_id"] == first.id


def test_assign_to_the_driver_holding_the_offer_does_not_tell_them_it_was_taken(area):
    holder = area.driver(north_km=0.5)
    rescue = area.rescue()
    offered(area, holder, rescue)
    result = area.svc.dispatcher.assign(rescue.id, holder.id)
    assert result.status == "assigned" and result.driver_id == holder.id
    assert driver(area, holder).status == "on_job"
    kinds = [m["kind"] for m in area.db.messages.find({"phone": holder.phone, "rescue_id": rescue.id})]
    assert "job_details" in kinds
    assert "offer_taken" not in kinds, (
        f"APP BUG: dispatch/dispatcher.py assign() withdraws the assignee's own open offer for this "
        f"same rescue and publishes offer_withdrawn, so the driver is texted 'Sorry, {rescue.code} has "
        f"been taken or cancelled' and then 'You've got {rescue.code}' (texts queued: {kinds})")


def test_assign_refusals(area):
    busy = area.driver(north_km=0.5)
    taken = assigned(area, busy)
    rescue = area.rescue(east_km=0.3)
    with pytest.raises(NotFound):
        area.svc.dispatcher.assign(rescue.id, f"nobody-{uuid.uuid4().hex}")
    with pytest.raises(Conflict):
        area.svc.dispatcher.assign(rescue.id, busy.id)
    assert driver(area, busy).rescue_id == taken.id
    assert area.svc.rescues.get(rescue.id).status == "searching"


def test_cancel_withdraws_open_offers(area, svc, services):
    fan = own_services(svc.settings, services, offer_fanout=2)
    a, b = area.driver(north_km=0.5), area.driver(north_km=1.0)
    rescue = area.rescue()
    assert fan.dispatcher.dispatch(rescue.id) == "offers:2"
    result = svc.dispatcher.cancel(rescue.id, "rider called", by="dispatcher")
    assert result.status == "cancelled" and result.cancel_reason == "rider called"
    assert [o["status"] for o in offers(area, rescue.id)] == ["withdrawn", "withdrawn"]
    for d in (a, b):
        doc = driver(area, d)
        assert doc.status == "available" and doc.offer_id is None
        assert indexed(area, d.id)


def test_cancel_frees_the_assigned_driver(area):
    near = area.driver(north_km=0.5)
    rescue = assigned(area, near)
    assert area.svc.dispatcher.cancel(rescue.id, "test", by="dispatcher").status == "cancelled"
    doc = driver(area, near)
    assert doc.status == "available" and doc.rescue_id is None
    assert indexed(area, near.id)


@pytest.mark.parametrize("who", ["another driver", "its former driver"])
def test_assign_a_closed_rescue_is_refused(area, who):
    near = area.driver(north_km=0.5)
    other = area.driver(north_km=1.0)
    rescue = assigned(area, near)
    area.svc.dispatcher.cancel(rescue.id, "test", by="dispatcher")
    target = other if who == "another driver" else near
    try:
        result = area.svc.dispatcher.assign(rescue.id, target.id)
    except Conflict:
        pass
    else:
        raise AssertionError(
            f"APP BUG: dispatch/dispatcher.py assign() returns early when rescue.driver_id == driver_id, "
            f"before the status check, so assigning cancelled {rescue.code} to {who} 'succeeds' "
            f"(POST /api/rescues/<id>/assign answers 200 with status {result.status!r}) while the same "
            f"request for any other driver is a 409 'cannot assign a rescue that is cancelled'")
    assert area.svc.rescues.get(rescue.id).status == "cancelled"
    assert driver(area, target).status == "available"


# --- searching: giving up, retrying ----------------------------------------------------------------

def test_search_window_passed_is_unfulfilled(area):
    near = area.driver(north_km=0.5)
    rescue = area.rescue()
    offer = offered(area, near, rescue)
    window = area.svc.settings.search_window_seconds * 1000
    area.db.rescues.update_one({"_id": rescue.id}, {"$set": {"searching_since": now_ms() - window - 60_000}})
    assert area.svc.dispatcher.dispatch(rescue.id) == "unfulfilled"
    assert area.svc.rescues.get(rescue.id).status == "unfulfilled"
    assert "rescue_unfulfilled" in event_types(area, rescue.id)
    assert area.db.offers.find_one({"_id": offer["_id"]})["status"] == "withdrawn"
    assert driver(area, near).status == "available"
    assert area.svc.dispatcher.dispatch(rescue.id) == "not-searching"


def test_no_candidates_schedules_one_follow_up(area, settings):
    rescue = area.rescue()  # nobody on this patch of ground
    live_queue = rq.Queue(urgent_queue_name(settings.queue_name), connection=area.svc.redis)

    def follow_ups() -> int:
        return sum(len(jobs(q, "dispatch_rescue", rescue.id, scheduled=True)) for q in (area.svc, live_queue))

    assert area.svc.dispatcher.dispatch(rescue.id) == "offers:0"
    due = area.db.rescues.find_one({"_id": rescue.id})["next_dispatch_at"]
    assert due > now_ms()
    assert area.svc.dispatcher.dispatch(rescue.id) == "offers:0"
    assert area.db.rescues.find_one({"_id": rescue.id})["next_dispatch_at"] == due
    assert follow_ups() == 1
    # Once that follow-up is due, the next empty search may schedule another.
    area.db.rescues.update_one({"_id": rescue.id}, {"$set": {"next_dispatch_at": now_ms() - 1}})
    assert area.svc.dispatcher.dispatch(rescue.id) == "offers:0"
    assert follow_ups() == 2


def test_a_driver_coming_free_gives_the_longest_waiting_rescues_another_look_at_once(area):
    """A rescue that found nobody waits on its retry timer; a driver freed by a decline
    re-drives the oldest such rescues now (FREED_DRIVER_LOOKS of them)."""
    from dispatch.dispatcher import FREED_DRIVER_LOOKS

    d = area.driver(north_km=0.5)
    held = area.rescue()
    offered(area, d, held)
    waiting = area.rescue(north_km=0.2)
    assert area.svc.dispatcher.dispatch(waiting.id) == "offers:0"  # the only driver holds an offer
    assert area.db.rescues.find_one({"_id": waiting.id})["next_dispatch_at"] > now_ms()
    oldest = [r["_id"] for r in area.db.rescues.find({"status": "searching", "next_dispatch_at": {"$gt": now_ms()}},
                                                    {"_id": 1}).sort("created_at", 1).limit(FREED_DRIVER_LOOKS)]
    area.svc.scheduler.waiting_dispatches(1000)  # as if the drain had taken what was waiting
    area.svc.dispatcher.decline(driver(area, d))
    assert {r: area.svc.scheduler.dispatch_waiting(r) for r in oldest} == {r: True for r in oldest}
    if waiting.id in oldest:  # other tests' rescues may be waiting longer on the shared database
        area.svc.dispatcher.dispatch(waiting.id)
        assert [o["driver_id"] for o in offers(area, waiting.id, "open")] == [d.id]


def test_dispatch_triggers_for_one_rescue_coalesce_until_a_drain_takes_it(area):
    rescue = area.rescue()  # its creation asked for the first search
    for _ in range(5):
        area.svc.scheduler.dispatch(rescue.id)
    taken = area.svc.scheduler.waiting_dispatches(1000)  # what the drain does before it reads anything
    assert taken.count(rescue.id) == 1 and not area.svc.scheduler.dispatch_waiting(rescue.id)
    assert not jobs(area.svc, "dispatch_rescue", rescue.id, scheduled=False), "a search now is no RQ job"
    area.svc.scheduler.dispatch(rescue.id)
    assert area.svc.scheduler.dispatch_waiting(rescue.id)


def test_texts_about_missed_offers_are_true(area):
    """An expired offer never claims it went to someone else; the third miss in a row takes the
    driver offline and says how to come back. The texts are read as queued for the phone."""
    from dispatch.model import offer as of

    near = area.driver(north_km=0.5)
    for _ in range(of.MISSED_IN_A_ROW_OFFLINE):
        rescue = area.rescue()
        offer = offered(area, near, rescue)
        area.db.offers.update_one({"_id": offer["_id"]}, {"$set": {"expires_at": now_ms() - 1000}})
        assert area.svc.dispatcher.expire(offer["_id"]) == "expired"
    texts = [m["body"] for m in area.db.messages.find({"phone": near.phone, "direction": "out"}).sort("created_at", 1)
             if m.get("kind") in ("driver_offer_expired", "driver_offline_missed")]
    assert len(texts) == of.MISSED_IN_A_ROW_OFFLINE
    assert all("another driver" not in t for t in texts)
    assert "You're still online" in texts[0]
    assert "offline now" in texts[-1] and "Text ON" in texts[-1]
    assert driver(area, near).status == "offline" and not indexed(area, near.id)
