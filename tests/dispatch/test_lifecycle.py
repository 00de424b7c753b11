"""dispatch.lifecycle over the real MongoDB rescue store: idempotent creation, unique codes,
compare-and-set transitions with their timeline events, and races between threads and
between processes."""
from __future__ import annotations

import multiprocessing
import re
import threading
import time
import uuid

import pytest

from dispatch.adapters.mongo.events import MongoEventStore
from dispatch.adapters.mongo.rescues import MongoRescues, MongoRiders
from dispatch.bootstrap import Services
from dispatch.bus import EventBus
from dispatch.lifecycle import Lifecycle
from dispatch.model import events as ev
from dispatch.model.driver import Driver
from dispatch.model.rescue import IllegalTransition
from tests.conftest import new_number

# Far outside the service area: the dispatcher (subscribed to `rescue_requested` in the real
# wiring) finds no driver there, so these rescues are never offered to other tests' drivers.
PICKUP = {"lat": -45.0312, "lng": 168.6626, "label": "Test pickup, far away"}


_made: list[str] = []  # rescues the current test created


@pytest.fixture
def store(services):
    """The app's own services (real event bus with the real handlers). Rescues a test leaves
    open are cancelled afterwards so they do not skew surge or dispatch elsewhere."""
    _made.clear()
    yield services
    for rescue_id in list(_made):
        try:
            services.lifecycle.apply(rescue_id, "cancel", by="system:test-cleanup", event=ev.RescueCancelled)
        except Exception:  # noqa: BLE001 - already closed, or the app is mid-change: not this test's concern
            pass


def make(store: Services, phone: str | None = None, key: str | None = None, **overrides):
    kwargs = dict(request_key=key or f"req-{uuid.uuid4().hex}", rider_phone=phone or new_number(),
                  pickup=PICKUP, dropoff=None, problem="flat_tire", problem_note="", quote_cents=2800,
                  trip_miles=1.0, surge=1.0, channel="sms")
    kwargs.update(overrides)
    rescue = store.lifecycle.create(**kwargs)
    _made.append(rescue.id)
    return rescue


def new_driver(services) -> Driver:
    """A registered driver who stays offline (never a dispatch candidate)."""
    driver = Driver.new(new_number(), f"Test Driver {uuid.uuid4().hex[:4]}", "Cargo van")
    services.drivers.add(driver)
    return driver


def assign(store: Services, rescue_id: str, driver: Driver, by: str = "dispatcher"):
    return store.lifecycle.apply(rescue_id, "assign", by=by, event=ev.DriverAssigned,
                                 changes={"driver_id": driver.id}, driver_id=driver.id)


def events(services, rescue_id: str, kind: str | None = None) -> list[dict]:
    query = {"rescue_id": rescue_id, **({"type": kind} if kind else {})}
    return list(services.db.events.find(query))


# --- creation -------------------------------------------------------------------------------

def test_create_is_idempotent_on_request_key(services, store):
    phone, key = new_number(), f"req-{uuid.uuid4().hex}"
    first = make(store, phone, key)
    second = make(store, phone, key, quote_cents=9999, problem="crash")
    assert second.id == first.id and second.code == first.code
    assert second.quote_cents == 2800 and second.problem == "flat_tire", "a retry must not overwrite the rescue"
    assert services.db.rescues.count_documents({"request_key": key}) == 1
    requested = events(services, first.id, "rescue_requested")
    assert len(requested) == 1, requested
    assert requested[0]["by"] == "rider:sms" and requested[0]["data"]["quote_cents"] == 2800


def test_new_rescue_fields(services, store):
    phone = new_number()
    rescue = make(store, phone)
    assert rescue.status == "searching" and rescue.rider_phone == phone and rescue.version == 0
    assert rescue.pickup == PICKUP and rescue.dropoff is None and rescue.driver_id is None
    assert rescue.payment_status == "none"
    stored = store.rescues.get(rescue.id)
    assert stored is not None and stored.code == rescue.code and stored.pickup == PICKUP
    assert isinstance(stored.created_at, int) and stored.created_at == stored.updated_at
    assert store.rescues.get("no-such-rescue") is None


def test_create_concurrent_same_key_makes_one_rescue(services, store):
    phone, key = new_number(), f"req-{uuid.uuid4().hex}"
    barrier, results, errors = threading.Barrier(6), [], []

    def run():
        try:
            barrier.wait(5)
            results.append(make(store, phone, key))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors, errors
    assert len({r.id for r in results}) == 1 and len(results) == 6
    assert services.db.rescues.count_documents({"request_key": key}) == 1
    assert len(events(services, results[0].id, "rescue_requested")) == 1


def test_codes_are_unique_and_sequential(store):
    rescues = [make(store) for _ in range(5)]
    codes = [r.code for r in rescues]
    assert all(re.fullmatch(r"R\d{4,}", c) for c in codes), codes
    numbers = [int(c[1:]) for c in codes]
    assert min(numbers) >= 1001, "codes start at R1001"
    assert len(set(codes)) == 5
    assert numbers == sorted(numbers), f"codes are handed out in order: {codes}"


# --- transitions ----------------------------------------------------------------------------

def test_apply_legal_transition_changes_status_and_records_event(services, store):
    rescue, driver = make(store), new_driver(services)
    assigned, changed = assign(store, rescue.id, driver, by="dispatcher")
    assert changed is True
    assert assigned.status == "assigned" and assigned.driver_id == driver.id and assigned.version == 1
    assert store.rescues.get(rescue.id).status == "assigned"
    [event] = events(services, rescue.id, "driver_assigned")
    assert event["by"] == "dispatcher"
    assert event["data"] == {"status": "assigned", "driver_id": driver.id, "offer_id": None}
    assert isinstance(event["at"], int)
    timeline = store.events.timeline(rescue.id)
    assert [e["type"] for e in timeline][:2] == ["rescue_requested", "driver_assigned"]
    assert all("_id" not in e for e in timeline)


def test_apply_repeating_current_status_is_a_noop(services, store):
    rescue, first, second = make(store), new_driver(services), new_driver(services)
    assign(store, rescue.id, first, by=f"driver:{first.id}")
    before = services.db.rescues.find_one({"_id": rescue.id})
    again, changed = assign(store, rescue.id, second, by=f"driver:{second.id}")
    assert changed is False and again.status == "assigned" and again.driver_id == first.id
    assert services.db.rescues.find_one({"_id": rescue.id}) == before, "a no-op must not touch the document"
    assert len(events(services, rescue.id, "driver_assigned")) == 1


def test_a_search_that_read_the_rescue_before_its_cancel_books_nothing(services, store):
    """A search reads the rescue, the rider cancels, then the search finds nobody: it must
    book no follow-up search and send no "still searching" update for a closed rescue."""
    searching, cancelled = make(store), make(store)
    store.lifecycle.apply(cancelled.id, "cancel", by="rider:sms", event=ev.RescueCancelled)
    later = int(time.time() * 1000) + 60_000  # past any follow-up the live service booked
    for rescue, expected in ((searching, True), (cancelled, False)):
        last = services.rescues.get(rescue.id).extra.get("rider_updated_at")
        assert services.rescues.claim_next_dispatch(rescue.id, later, later + 1) is expected
        assert services.rescues.claim_rider_update(rescue.id, last, later) is expected


def test_apply_illegal_transition_raises_and_changes_nothing(services, store):
    rescue = make(store)
    store.lifecycle.apply(rescue.id, "cancel", by="rider:sms", event=ev.RescueCancelled,
                changes={"cancel_reason": "rider", "cancelled_by": "rider"})
    before = services.db.rescues.find_one({"_id": rescue.id})
    n_events = len(events(services, rescue.id))
    for action in ("assign", "complete", "arrive", "give_up", "requeue"):
        with pytest.raises(IllegalTransition):
            store.lifecycle.apply(rescue.id, action, by="dispatcher", event=ev.RescueCancelled)
    with pytest.raises(IllegalTransition):
        store.lifecycle.apply(rescue.id, "teleport", by="dispatcher", event=ev.RescueCancelled)
    assert services.db.rescues.find_one({"_id": rescue.id}) == before
    assert len(events(services, rescue.id)) == n_events


def test_apply_full_lifecycle(services, store):
    rescue, driver = make(store), new_driver(services)
    by = f"driver:{driver.id}"
    assign(store, rescue.id, driver, by=by)
    for action, event, status in [("drive", ev.DriverEnRoute, "en_route"),
                                  ("arrive", ev.DriverArrived, "arrived"),
                                  ("load", ev.RiderLoaded, "in_transit"),
                                  ("complete", ev.RescueCompleted, "completed")]:
        after, changed = store.lifecycle.apply(rescue.id, action, by=by, event=event, driver_id=driver.id)
        assert changed and after.status == status, (action, after.status)
    kinds = [e["type"] for e in store.events.timeline(rescue.id)]
    lifecycle = ["rescue_requested", "driver_assigned", "driver_en_route", "driver_arrived", "rider_loaded",
                 "rescue_completed"]
    assert [k for k in kinds if k in lifecycle] == lifecycle
    assert store.rescues.get(rescue.id).version == 5
    with pytest.raises(IllegalTransition):
        store.lifecycle.apply(rescue.id, "cancel", by="rider:sms", event=ev.RescueCancelled)


def test_apply_unknown_rescue_raises_key_error(store):
    with pytest.raises(KeyError):
        store.lifecycle.apply("missing-" + uuid.uuid4().hex, "cancel", by="dispatcher", event=ev.RescueCancelled)


def test_a_failing_subscriber_neither_undoes_nor_breaks_the_change(services):
    """dispatch/bus.py promises: a handler failing never undoes the change, and the other
    handlers still run. A private bus (not the session's) so nothing leaks out."""
    bus = EventBus(MongoEventStore(services.db))
    rescues = MongoRescues(services.db)
    lifecycle = Lifecycle(rescues, MongoRiders(services.db), bus)
    seen: list[str] = []

    def broken(event):
        raise RuntimeError("a subscriber's bug")

    bus.handlers = {ev.RescueCancelled: [broken, lambda event: seen.append(event.type)]}
    rescue = lifecycle.create(request_key=f"req-{uuid.uuid4().hex}", rider_phone=new_number(), pickup=PICKUP,
                              dropoff=None, problem="flat_tire", problem_note="", quote_cents=2800, trip_miles=1.0,
                              surge=1.0, channel="sms")
    try:
        after, changed = lifecycle.apply(rescue.id, "cancel", by="dispatcher", event=ev.RescueCancelled)
        outcome = (after.status, changed)
    except Exception as exc:  # noqa: BLE001 - the assertion below shows it
        outcome = repr(exc)
    assert outcome == ("cancelled", True), outcome
    assert rescues.get(rescue.id).status == "cancelled"
    assert len(events(services, rescue.id, "rescue_cancelled")) == 1
    assert seen == ["rescue_cancelled"], "the later subscriber must still run"


# --- races ----------------------------------------------------------------------------------

def _race_args(services, action: str, n: int) -> list[dict]:
    """What each racer passes to apply: cancels by several parties, or several drivers accepting."""
    if action == "cancel":
        return [dict(by=f"rider:racer{i}", event=ev.RescueCancelled) for i in range(n)]
    drivers = [new_driver(services) for _ in range(n)]
    return [dict(by=f"driver:{d.id}", event=ev.DriverAssigned, changes={"driver_id": d.id},
                 driver_id=d.id) for d in drivers]


def _check_race(services, rescue_id: str, action: str, winners: list[dict]) -> None:
    event = "rescue_cancelled" if action == "cancel" else "driver_assigned"
    written = events(services, rescue_id, event)
    assert len(written) == 1, written
    [winner] = winners
    assert written[0]["by"] == winner["by"]
    doc = services.db.rescues.find_one({"_id": rescue_id})
    assert doc["version"] == 1 and doc["status"] == ("cancelled" if action == "cancel" else "assigned")
    if action == "assign":
        assert doc["driver_id"] == winner["driver_id"] == written[0]["data"]["driver_id"]


@pytest.mark.parametrize("action", ["cancel", "assign"])
def test_threads_racing_one_transition(services, store, action):
    rescue = make(store)
    racers = _race_args(services, action, 8)
    barrier, results, errors = threading.Barrier(8), [], []

    def run(kwargs: dict):
        try:
            barrier.wait(5)
            _, changed = store.lifecycle.apply(rescue.id, action, **kwargs)
            results.append((changed, kwargs))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(kw,)) for kw in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sorted(changed for changed, _ in results) == [False] * 7 + [True], results
    _check_race(services, rescue.id, action, [kw for changed, kw in results if changed])


def _apply_in_process(env: dict, rescue_id: str, action: str, kwargs: dict, start, out) -> None:
    # A fresh interpreter wires its own Services (new pymongo client) the way a web or
    # worker process does, so the store is built exactly as the app builds it.
    from dispatch.bootstrap import build_services
    from dispatch.config import load_settings

    services = build_services(load_settings(env))
    try:
        services.db.command("ping")  # connected before the start line, so the race is tight
        start.wait(30)
        _, changed = services.lifecycle.apply(rescue_id, action, **kwargs)
        out.put((changed, kwargs, None))
    except Exception as exc:  # noqa: BLE001 - sent back to the test
        start.abort()  # do not leave the other racers waiting at the start line
        out.put((None, kwargs, repr(exc)))
    finally:
        services.db.client.close()


@pytest.mark.parametrize("action", ["cancel", "assign"])
def test_processes_racing_one_transition(service_env, services, store, action):
    rescue = make(store)
    racers = _race_args(services, action, 3)
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, fresh pymongo clients
    out, start = ctx.Queue(), ctx.Barrier(len(racers))
    procs = [ctx.Process(target=_apply_in_process, args=(dict(service_env), rescue.id, action, kw, start, out))
             for kw in racers]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    assert all(err is None for _, _, err in results), results
    assert sorted(changed for changed, _, _ in results) == [False, False, True], results
    _check_race(services, rescue.id, action, [kw for changed, kw, _ in results if changed])


# --- queries --------------------------------------------------------------------------------

def test_open_for_rider_is_the_newest_open_rescue(services, store):
    phone = new_number()
    assert store.rescues.open_for_rider(phone) is None
    old = make(store, phone)
    time.sleep(0.005)
    newer = make(store, phone)
    time.sleep(0.005)
    closed = make(store, phone)
    store.lifecycle.apply(closed.id, "cancel", by="rider:sms", event=ev.RescueCancelled)
    make(store, new_number())  # somebody else's
    found = store.rescues.open_for_rider(phone)
    assert found is not None and found.id == newer.id, (found, old.id, newer.id, closed.id)
    store.lifecycle.apply(newer.id, "cancel", by="rider:sms", event=ev.RescueCancelled)
    assert store.rescues.open_for_rider(phone).id == old.id
    assign(store, old.id, new_driver(services))
    assert store.rescues.open_for_rider(phone).id == old.id, "an assigned rescue is still open"
    store.lifecycle.apply(old.id, "cancel", by="rider:sms", event=ev.RescueCancelled)
    assert store.rescues.open_for_rider(phone) is None


def test_list_filters_by_status_newest_first(store):
    phone = new_number()
    made = []
    for _ in range(4):
        made.append(make(store, phone))
        time.sleep(0.005)
    store.lifecycle.apply(made[1].id, "give_up", by="dispatcher", event=ev.RescueUnfulfilled)
    store.lifecycle.apply(made[3].id, "give_up", by="dispatcher", event=ev.RescueUnfulfilled)

    def mine(rescues):
        return [r.id for r in rescues if r.rider_phone == phone]

    assert mine(store.rescues.list(status="unfulfilled", limit=10_000)) == [made[3].id, made[1].id]
    assert mine(store.rescues.list(status="searching", limit=10_000)) == [made[2].id, made[0].id]
    assert mine(store.rescues.list(limit=10_000)) == [m.id for m in reversed(made)]
    everything = store.rescues.list(limit=10_000)
    stamps = [r.created_at for r in everything]
    assert stamps == sorted(stamps, reverse=True)
    assert all(r.status == "unfulfilled" for r in store.rescues.list(status="unfulfilled", limit=10_000))
    # offset/limit page through the same order
    first, second = store.rescues.list(limit=2), store.rescues.list(limit=2, offset=2)
    assert [r.id for r in first + second] == [r.id for r in everything[:4]]


def test_count_open(services, store):
    before = store.rescues.count_open()
    a, b = make(store), make(store)
    assert store.rescues.count_open() == before + 2
    store.lifecycle.apply(a.id, "cancel", by="rider:sms", event=ev.RescueCancelled)
    assign(store, b.id, new_driver(services))
    assert store.rescues.count_open() == before + 1


def test_rider_profile_counts_rescues(services):
    from tests.conftest import new_number as _new

    phone = _new()
    for i in range(2):
        r = services.lifecycle.create(request_key=f"profile-{phone}-{i}", rider_phone=phone,
                                    pickup={"lat": 41.5, "lng": -72.5, "label": "x"}, dropoff=None, problem="other",
                                    problem_note="", quote_cents=2800, trip_miles=0, surge=1.0, channel="sms")
        services.dispatcher.cancel(r.id, "test", by="test")
    profile = services.db.riders.find_one({"phone": phone})
    assert profile["rescues"] == 2 and profile["last_rescue_at"] > 0
