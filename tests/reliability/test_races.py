"""Races: drivers answering one rescue at once, and one number texting many times at once."""
from __future__ import annotations

import dataclasses
import time
import uuid

from dispatch.bootstrap import Services
from tests.e2e.test_dispatch import NEAR_UNION_SQ, online_driver
from tests.reliability.support import at_once, clear_dispatch, reps, tally, texts_with

try:  # `slate` moved to tests/conftest.py; older trees define it next to the dispatch tests
    from tests.e2e.test_dispatch import slate  # noqa: F401
except ImportError:
    pass

DRIVERS = 5


def test_concurrent_accepts_have_exactly_one_winner(slate, phone, live_service, services, settings, fake_twilio,
                                                    table):
    """Six drivers hold offers for one rescue (fan-out) and all reply Y at once, several rounds."""
    fan = Services(dataclasses.replace(settings, offer_fanout=DRIVERS), services.db, services.redis)
    rounds = reps(2)
    expected = lost = duplicated = 0
    for i in range(rounds):
        clear_dispatch(services)  # last round's drivers go offline, its rescue is closed
        drivers = [phone() for _ in range(DRIVERS)]
        for j, d in enumerate(drivers):
            online_driver(live_service, d, f"Racer{i}x{j}", NEAR_UNION_SQ)
        rider = phone()
        rider.ask("flat tire at Union Square")
        rider.ask("skip")
        rider.ask("y")
        r = services.rescues.open_for_rider(rider.number)
        fan.dispatcher.dispatch(r.id)
        for d in drivers:
            d.wait_for(f"offer {r.code}")
        codes = at_once([lambda d=d: d.text("Y").status_code for d in drivers])
        assert codes == [200] * DRIVERS, codes
        answers = [d.wait_for(r.code) for d in drivers]
        rider.wait_for("on the way")
        winners = sum(a.startswith("You've got") for a in answers)
        told_taken = sum("taken" in a for a in answers)
        assigned = services.db.events.count_documents({"rescue_id": r.id, "type": "driver_assigned"})
        on_job = services.db.drivers.count_documents({"phone": {"$in": [d.number for d in drivers]},
                                                      "status": "on_job"})
        rider_told = len(texts_with(fake_twilio, rider.number, "on the way"))
        for name, want, got in (("winners", 1, winners), ("losers told it is taken", DRIVERS - 1, told_taken),
                                ("driver_assigned events", 1, assigned), ("drivers on the job", 1, on_job),
                                ("rider told", 1, rider_told)):
            miss, dup = tally(want, got)
            expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
            assert (miss, dup) == (0, 0), f"APP BUG: accept race {name}: expected {want}, got {got}: {answers}"
        assert services.rescues.get(r.id).status == "assigned"
    table.record("Concurrent accepts (one rescue, several drivers)",
                 f"{DRIVERS} drivers holding offers for one rescue reply Y in the same instant (threads, barrier)",
                 times=rounds * DRIVERS, expected=expected, lost=lost, duplicated=duplicated,
                 counted="winners, 'taken' answers, driver_assigned events, drivers on_job, rider texts")


TEXTS = 8


def test_concurrent_texts_from_one_number_are_each_applied_once(phone, live_service, services, fake_twilio, table):
    """Eight texts with different MessageSids from one phone at the same instant: each applied
    exactly once, one at a time (the conversation version rises by exactly eight)."""
    rounds = reps(3)
    expected = lost = duplicated = 0
    for _i in range(rounds):
        rider = phone()
        rider.ask("hi")  # now at "Where are you?"
        before = services.db.conversations.find_one({"_id": rider.number})
        sids = ["SM" + uuid.uuid4().hex for _ in range(TEXTS)]
        codes = at_once([lambda s=s: rider.text("status", sid=s).status_code for s in sids])
        assert codes == [200] * TEXTS, codes
        fake_twilio.wait_for_texts(rider.number, 1 + TEXTS, timeout=15)
        after = services.db.conversations.find_one({"_id": rider.number})
        applied = [s for s in after["applied"] if s in sids]
        processed = services.db.messages.count_documents({"key": {"$in": [f"in:{s}" for s in sids]},
                                                          "processed": True})
        replies = services.db.messages.count_documents({"key": {"$in": [f"reply:{s}" for s in sids]}})
        time.sleep(0.5)
        texts = len(fake_twilio.texts_to(rider.number)) - 1
        for name, want, got in (("version increments", TEXTS, after["version"] - before["version"]),
                                ("applied MessageSids", TEXTS, len(applied)),
                                ("distinct applied MessageSids", TEXTS, len(set(applied))),
                                ("processed inbound records", TEXTS, processed), ("replies queued", TEXTS, replies),
                                ("reply texts", TEXTS, texts)):
            miss, dup = tally(want, got)
            expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
            assert (miss, dup) == (0, 0), f"APP BUG: {TEXTS} concurrent texts: {name}: expected {want}, got {got}"
        assert after["state"] == before["state"] == "ask_location"
    table.record("Concurrent texts from one number",
                 f"{TEXTS} signed texts (distinct MessageSids) from one phone posted in the same instant",
                 times=rounds * TEXTS, expected=expected, lost=lost, duplicated=duplicated,
                 counted="conversation version delta, applied sids, processed records, reply texts")


OUT_TEXTS = 20


def test_texts_to_one_number_leave_in_order_from_two_workers(live_service, services, fake_twilio, table):
    """Twenty texts queued to one number, each also handed to its own send job at once: the
    outbox drain and the send jobs run on both RQ workers side by side, and the texts must
    still reach Twilio in the order they were queued (PRODUCT.md §7)."""
    from rq.job import Job

    from dispatch.adapters.rq_scheduler import SEND_TEXT
    from tests.conftest import new_number

    rounds = reps(2)
    expected = lost = duplicated = out_of_order = 0
    workers: set[str] = set()
    for i in range(rounds):
        to = new_number()
        bodies = [f"update {i}.{n:02d}" for n in range(OUT_TEXTS)]
        jobs = []
        for body in bodies:
            doc = services.outbox.queue_text(to, body, key=f"order:{uuid.uuid4().hex}", kind="test")
            jobs.append(services.scheduler.queue.enqueue(SEND_TEXT, doc["_id"]))
        fake_twilio.wait_for_texts(to, OUT_TEXTS, timeout=40)
        time.sleep(1.0)  # a doubled send would show
        got = [t.body for t in fake_twilio.texts_to(to)]
        miss, dup = tally(OUT_TEXTS, len(got))
        expected, lost, duplicated = expected + OUT_TEXTS, lost + miss, duplicated + dup
        received = [b for b in got if b in bodies]
        out_of_order += sum(1 for a, b in zip(received, received[1:], strict=False) if a > b)
        for job in jobs:
            try:
                name = Job.fetch(job.id, connection=services.redis).worker_name
            except Exception:  # noqa: BLE001 - an expired job result: its worker is unknown
                continue
            if name:
                workers.add(name)
        assert (miss, dup) == (0, 0), f"APP BUG: {OUT_TEXTS} texts to one number: {len(got)} reached Twilio: {got}"
        assert received == bodies, f"APP BUG: texts to one number left out of order: {received}"
    table.record("Texts to one number from two workers",
                 f"{OUT_TEXTS} texts queued to one number, each also given its own send job at once, so the "
                 "outbox drain and the send jobs of both RQ workers race for them",
                 times=rounds * OUT_TEXTS, expected=expected, lost=lost, duplicated=duplicated,
                 counted="texts at the fake Twilio per number, and their order (out of order: "
                         f"{out_of_order})")
    table.figure("Outbound order", f"{rounds} x {OUT_TEXTS} texts to one number; send jobs run by "
                                   f"{len(workers)} workers; {out_of_order} pairs out of order")
    assert len(workers) >= 2, f"the send jobs all ran on one worker ({workers}): the race was not run"
