"""Process and store faults: RQ workers SIGKILLed mid-job, Redis keys lost mid-rescue,
Redis unreachable while webhooks arrive.

The kill scenarios are made deterministic by stalling the fake vendor a job is talking to
(holding the fake Stripe's lock, or a delay in the fake Twilio), so each kill lands exactly
while a send or a Checkout Session request is in flight. The launcher restarts the workers;
the sweeper (every SWEEP_SECONDS=1 here; texts stuck `sending` after 30 s) must finish the
rest without losing or doubling a text or a session.

Those 30 s are the app's own: the scenarios that wait on them share one timeline (the
`timeline` fixture), and the Redis-loss and slow-geocoder scenarios run inside its wait.
Each scenario has its own phones, drivers and rescues and its own test.
"""
from __future__ import annotations

import random
import re
import time
import uuid

import httpx
import pytest
import redis as redis_lib
from rq.job import Job
from rq.registry import StartedJobRegistry

from app import create_app
from dispatch.bootstrap import Services
from tests.conftest import post_stripe_event, sign, stripe_event
from tests.e2e.test_dispatch import NEAR_UNION_SQ, book, online_driver, rescue
from tests.reliability.support import (
    REPEAT,
    at_once,
    call_params,
    clear_dispatch,
    delete_redis_keys,
    kill_workers,
    new_phone,
    quiesce,
    scheduler_pids,
    sms_params,
    tally,
    texts_with,
    wait_for_new_workers,
    wait_until,
)

try:  # `slate` moved to tests/conftest.py; older trees define it next to the dispatch tests
    from tests.e2e.test_dispatch import slate  # noqa: F401
except ImportError:
    pass

PAYMENT_PATIENCE = 35  # s after the kill: the sweeper's own limit for a stuck send is 30 s


def _unreachable_redis() -> redis_lib.Redis:
    """A real Redis client whose server is down (nothing listens on port 1): no retries."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.3, socket_timeout=0.3,
                           retry=Retry(NoBackoff(), 0), retry_on_error=[])


def _running_jobs(services) -> list[str]:
    registry = StartedJobRegistry(queue=services.scheduler.queue)
    found = []
    for job_id in registry.get_job_ids(cleanup=False):
        try:
            job = Job.fetch(job_id, connection=services.redis)
            found.append(f"{job.func_name}{job.args}")
        except Exception:  # noqa: BLE001 - the job vanished meanwhile
            found.append(job_id)
    return found


def _sending(services, key: str) -> dict | None:
    return services.db.messages.find_one({"key": key, "status": "sending"})


def _settled(services, key: str) -> bool:
    msg = services.db.messages.find_one({"key": key})
    return bool(msg) and msg["status"] not in ("pending", "sending")


def _accept_when_offered(driver, code: str, deadline: float, offered: bool = False) -> None:
    """Offers held up by a kill may run out before they arrive; the next one comes after the
    cool-off. Answer each offer until one is won (`offered`: the first one is already seen).
    The answer to Y waits behind an offer whose worker was killed mid-send until that claim
    counts as dead (texts to one number leave in order, PRODUCT.md §7)."""
    from dispatch.messaging import CLAIM_DEAD_MS

    while True:
        if not offered:
            driver.wait_for(f"offer {code}", timeout=max(1.0, deadline - time.time()))
        offered = False
        if "You've got" in driver.ask("Y", timeout=CLAIM_DEAD_MS / 1000 + 10):
            return


@pytest.fixture(scope="module")
def timeline(live_service, services, settings, fake_twilio, fake_stripe, fake_geocoder):
    """One timeline, two SIGKILLs of every worker:

    kill 1 -- A's payment link is inside the Stripe call (fake Stripe stalled) and B's
              "Booked!" reply is inside the Twilio call (fake Twilio stalled; Twilio then takes
              it: a text whose worker is dead), while B's offer waits in the queue.
    kill 2 -- C's reply is inside the Twilio call and Twilio fails it (never a text); C had
              been sent the very same words a moment before.
    then    -- D: Stripe fails the first Checkout request after the restart (its retry job must bring it);
              R: Redis keys deleted three times mid-rescue; G: four texts at once from one
              number while the geocoder is slow. Then everyone waits for the sweeper.
    """
    clear_dispatch(services)
    quiesce(services)
    phone = lambda: new_phone(live_service, fake_twilio)  # noqa: E731
    obs: dict = {"kills": 0, "workers_killed": 0}

    def kill() -> tuple[float, list[int]]:
        killed = kill_workers(live_service)
        at = time.time()
        obs["kills"] += 1
        obs["workers_killed"] += len(killed)
        return at, killed

    # -- the cast -----------------------------------------------------------------------------
    driver_a, rider_a = phone(), phone()
    online_driver(live_service, driver_a, "Kay Aye", NEAR_UNION_SQ)
    code_a = book(rider_a)
    driver_a.wait_for(f"offer {code_a}")
    driver_a.ask("Y")
    driver_a.ask("ARRIVED")
    rescue_a = rescue(live_service, code_a)
    driver_d, rider_d = phone(), phone()
    online_driver(live_service, driver_d, "Kay Dee", NEAR_UNION_SQ)
    code_d = book(rider_d)
    driver_d.wait_for(f"offer {code_d}")
    driver_d.ask("Y")
    driver_d.ask("ARRIVED")
    rescue_d = rescue(live_service, code_d)
    rider_c = phone()
    rider_c.ask("hi")
    first_c = rider_c.ask("status")
    rider_b = phone()
    rider_b.ask("flat tire at Union Square")
    rider_b.ask("skip")
    quiesce(services, 15)

    # -- kill 1: A's payment link inside the Stripe call, B's Booked! inside the Twilio call --
    driver_b = phone()
    # D is on a job; A is freed by DONE just before B books, so B, idle longer, wins the tie for it
    online_driver(live_service, driver_b, "Kay Bee", NEAR_UNION_SQ)
    sid_b, sid_c = "SM" + uuid.uuid4().hex, "SM" + uuid.uuid4().hex
    stripe_held = twilio_held = False
    try:
        stripe_held = fake_stripe.lock.acquire(timeout=5)
        assert driver_a.text("DONE").status_code == 200
        assert wait_until(lambda: fake_stripe.checkout_arrived(rescue_a["id"]), 10), \
            f"the payment link's Checkout request never reached Stripe; jobs running: {_running_jobs(services)}"
        quiesce(services, 15)  # A's "complete" texts are out: the other worker is free
        twilio_held = fake_twilio.lock.acquire(timeout=5)
        arrived = fake_twilio.arrived
        assert rider_b.text("y", sid=sid_b).status_code == 200  # dispatch runs, the offer is queued,
        assert wait_until(lambda: _sending(services, f"reply:{sid_b}"), 10), \
            f"the Booked! reply was never sent; jobs running: {_running_jobs(services)}"  # Booked! goes out
        assert wait_until(lambda: fake_twilio.arrived > arrived, 10), "the Booked! reply never reached the fake"
        obs["t_kill1"], killed = kill()
    finally:
        if twilio_held:
            fake_twilio.lock.release()  # the stalled request now reaches Twilio: a text, whose worker is dead
        if stripe_held:
            fake_stripe.lock.release()  # and the Checkout Session is created, for a dead job
    wait_for_new_workers(live_service, killed)
    driver_a.ask("OFF")  # free again after DONE: out of the way of the next rescues
    code_b = services.rescues.open_for_rider(rider_b.number).code
    _accept_when_offered(driver_b, code_b, time.time() + 30)  # B's queued offer goes out after the restart
    rider_b.wait_for("on the way", timeout=10)

    # -- kill 2: C's reply inside the Twilio call, and Twilio fails it (it never becomes a text) ----
    stuck_b = services.db.messages.find_one({"key": f"reply:{sid_b}"})["_id"]
    wait_until(lambda: services.db.messages.count_documents(
        {"direction": "out", "status": {"$in": ["pending", "sending"]}, "_id": {"$ne": stuck_b}}) == 0, 15)
    twilio_held = False
    try:
        twilio_held = fake_twilio.lock.acquire(timeout=5)
        arrived = fake_twilio.arrived
        assert rider_c.text("status", sid=sid_c).status_code == 200
        assert wait_until(lambda: _sending(services, f"reply:{sid_c}"), 10), "C's reply was never sent"
        # Claimed is not yet at Twilio: kill only once the request is stalled inside the fake.
        assert wait_until(lambda: fake_twilio.arrived > arrived, 10), "C's reply never reached the fake Twilio"
        fake_twilio.failures.append((500, 20500))  # we hold the fake's lock: the stalled request fails
        obs["t_kill2"], killed = kill()
    finally:
        if twilio_held:
            fake_twilio.lock.release()
    wait_for_new_workers(live_service, killed)
    assert not fake_twilio.failures and len(fake_twilio.texts_to(rider_c.number)) == 2, \
        "scenario setup: C's stalled request should have taken the injected failure"
    obs["scheduler_after_restart"] = bool(scheduler_pids(live_service))

    # -- R: Redis keys deleted mid-rescue ---------------------------------------------------------------
    obs["redis"] = _redis_keys_lost_mid_rescue(live_service, services, fake_twilio, phone,
                                               stuck=[f"reply:{sid_b}", f"reply:{sid_c}"])

    # -- D: a Stripe error right after the restart; its retry job's back-off needs the RQ scheduler --
    fake_stripe.fail_next(3, 500)  # the client's own two retries fail too: the link's retry job must bring it
    assert driver_d.text("DONE").status_code == 200
    obs["t_done_d"] = time.time()

    # -- G: texts queued behind a slow geocoder (a vendor fault, run here to share the wait) -----------
    obs["geocoder"] = _texts_behind_a_slow_geocoder(services, settings, fake_geocoder, phone)

    # -- the sweeper's turn ---------------------------------------------------------------------------
    r = obs["redis"]

    def done() -> bool:
        a_done = bool(texts_with(fake_twilio, rider_a.number, "Pay $")) or \
            time.time() > obs["t_kill1"] + PAYMENT_PATIENCE
        d_done = bool(texts_with(fake_twilio, rider_d.number, "Pay $")) or time.time() > obs["t_done_d"] + 25
        r_done = bool(texts_with(fake_twilio, r["rider"], "Booked!")) or time.time() > r["t_deleted"] + 40
        return a_done and d_done and r_done and _settled(services, f"reply:{sid_b}") and \
            _settled(services, f"reply:{sid_c}")
    wait_until(done, PAYMENT_PATIENCE + 60, 0.2)
    time.sleep(1.0)  # a late duplicate would show up here

    rescue_b = rescue(live_service, code_b)
    obs.update(
        booked_b=texts_with(fake_twilio, rider_b.number, "Booked!"),
        booked_msg_b=services.db.messages.find_one({"key": f"reply:{sid_b}"}),
        fake_sids_b=[t.sid for t in fake_twilio.texts_to(rider_b.number) if "Booked!" in t.body],
        offers_b=texts_with(fake_twilio, driver_b.number, f"SupportCarr offer {code_b}"),
        offer_events_b=[e["type"] for e in rescue_b["timeline"]].count("offer_made"),
        status_b=rescue_b["status"],
        first_c=first_c,
        texts_c=[t.body for t in fake_twilio.texts_to(rider_c.number)],
        msg_c=services.db.messages.find_one({"key": f"reply:{sid_c}"}),
        links_a=texts_with(fake_twilio, rider_a.number, "Pay $"),
        sessions_a=len({s["id"] for s in fake_stripe.sessions.values() if s["client_reference_id"] == rescue_a["id"]}),
        stripe_calls_a=len([c for c in fake_stripe.calls("/v1/checkout/sessions")
                            if c.form.get("client_reference_id") == rescue_a["id"]]),
        payment_status_a=rescue(live_service, code_a)["payment_status"],
        links_d=texts_with(fake_twilio, rider_d.number, "Pay $"),
        stripe_calls_d=len([c for c in fake_stripe.calls("/v1/checkout/sessions")
                            if c.form.get("client_reference_id") == rescue_d["id"]]),
        scheduler_later=bool(scheduler_pids(live_service)),
    )
    r.update(_redis_outcome(live_service, fake_twilio, r))
    g = obs["geocoder"]
    g["replies"] = [t.body for t in fake_twilio.texts_to(g.pop("rider").number)][1:]  # after "Where are you?"
    with fake_stripe.lock:
        fake_stripe.failures.clear()
    # The long variant adds kills at random moments right after a booking (no stalls).
    obs["random_rounds"] = []
    for i in range(REPEAT - 1):
        clear_dispatch(services)
        quiesce(services)
        driver, rider = phone(), phone()
        online_driver(live_service, driver, f"Rand{i}", NEAR_UNION_SQ)
        rider.ask("flat tire at Union Square")
        rider.ask("skip")
        rider.text("y")
        time.sleep(random.uniform(0, 0.15))
        _, killed = kill()
        wait_for_new_workers(live_service, killed)
        rider.wait_for("Booked!", timeout=60)
        code = services.rescues.open_for_rider(rider.number).code
        _accept_when_offered(driver, code, time.time() + 60)
        time.sleep(1.0)
        rr = rescue(live_service, code)
        obs["random_rounds"].append({
            "booked": len(texts_with(fake_twilio, rider.number, "Booked!")),
            "offers": len(texts_with(fake_twilio, driver.number, f"SupportCarr offer {code}")),
            "offer_events": [e["type"] for e in rr["timeline"]].count("offer_made"),
            "status": rr["status"]})
    yield obs
    clear_dispatch(services)


def _redis_keys_lost_mid_rescue(live_service, services, fake_twilio, phone, stuck: list[str]) -> dict:
    """Both workers' outbox drains are held in sends while a rider confirms, so the Booked!
    reply is still waiting (and the booking's dispatch job perhaps queued) when every rq:*,
    geo:*, lock:* and kick:* key is deleted; the keys go again with the offer open and after
    the accept."""
    driver, rider, decoys = phone(), phone(), [phone(), phone()]
    online_driver(live_service, driver, "Reddy", NEAR_UNION_SQ)
    rider.ask("flat tire at Union Square")
    rider.ask("skip")
    stuck_ids = [m["_id"] for m in services.db.messages.find({"key": {"$in": stuck}})]
    wait_until(lambda: services.db.messages.count_documents(
        {"direction": "out", "status": {"$in": ["pending", "sending"]}, "_id": {"$nin": stuck_ids}}) == 0, 15)
    deleted = []
    held = fake_twilio.lock.acquire(timeout=5)
    try:
        for d in decoys:
            assert d.text("hello").status_code == 200
        assert wait_until(lambda: services.db.messages.count_documents(
            {"phone": {"$in": [d.number for d in decoys]}, "status": "sending"}) == 2, 10), "workers not held"
        assert rider.text("y").status_code == 200
        deleted.append(delete_redis_keys(services))
        t_deleted = time.time()
    finally:
        if held:
            fake_twilio.lock.release()
    # The Y's own apply job was among the deleted keys: the sweeper finds it unapplied in MongoDB.
    assert wait_until(lambda: services.rescues.open_for_rider(rider.number), 30), "the Y was never applied"
    code = services.rescues.open_for_rider(rider.number).code
    driver.wait_for(f"offer {code}", timeout=20)
    t_offer = time.time() - t_deleted
    deleted.append(delete_redis_keys(services))
    _accept_when_offered(driver, code, time.time() + 40, offered=True)
    assert wait_until(lambda: texts_with(fake_twilio, rider.number, "on the way"), 10)
    t_assigned = time.time() - t_deleted
    deleted.append(delete_redis_keys(services))
    return {"rider": rider.number, "driver": driver.number, "decoys": [d.number for d in decoys], "code": code,
            "deleted": deleted, "t_deleted": t_deleted, "t_offer": t_offer, "t_assigned": t_assigned}


def _redis_outcome(live_service, fake_twilio, r: dict) -> dict:
    booked = fake_twilio.texts_to(r["rider"])
    booked_at = next((t.at for t in booked if "Booked!" in t.body), None)
    rr = rescue(live_service, r["code"])
    kinds = [e["type"] for e in rr["timeline"]]
    return {"checks": [
        ("Booked! texts", 1, len(texts_with(fake_twilio, r["rider"], "Booked!"))),
        ("offer texts vs offers made", kinds.count("offer_made"),
         len(texts_with(fake_twilio, r["driver"], f"SupportCarr offer {r['code']}"))),
        ("assignments", 1, kinds.count("driver_assigned")),
        ("'on the way' texts", 1, len(texts_with(fake_twilio, r["rider"], "on the way"))),
        ("decoy replies", 2, sum(len(fake_twilio.texts_to(n)) for n in r["decoys"]))],
        "status": rr["status"], "t_booked": (booked_at - r["t_deleted"]) if booked_at else None}


def _texts_behind_a_slow_geocoder(services, settings, fake_geocoder, phone) -> dict:
    rider = phone()
    rider.ask("hi")
    count, delay = 4, settings.geocoder_timeout_seconds + 1.5
    sids = ["SM" + uuid.uuid4().hex for _ in range(count)]

    def text(sid: str):
        started = time.time()
        r = rider.text(f"the old mill on zq{uuid.uuid4().hex[:8]} lane", sid=sid)
        return r.status_code, time.time() - started

    fake_geocoder.delay = delay
    try:
        answers = at_once([lambda s=s: text(s) for s in sids])
    finally:
        fake_geocoder.delay = 0.0
    return {"count": count, "delay": delay, "codes": [a[0] for a in answers], "times": [a[1] for a in answers],
            "slowest": max(a[1] for a in answers), "rider": rider,
            "recorded": services.db.messages.count_documents({"key": {"$in": [f"in:{s}" for s in sids]}})}


def test_booked_reply_and_offer_exactly_once_after_workers_are_sigkilled_mid_send(timeline, table):
    o = timeline
    checks = [("Booked! texts to the rider", 1, len(o["booked_b"])),
              ("offer texts vs offers made", o["offer_events_b"], len(o["offers_b"]))]
    for r in o["random_rounds"]:
        checks += [("Booked! texts (random kill)", 1, r["booked"]),
                   ("offer texts vs offers made (random kill)", r["offer_events"], r["offers"])]
    expected = lost = duplicated = 0
    for _, want, got in checks:
        miss, dup = tally(want, got)
        expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
    table.record("RQ workers SIGKILLed mid-rescue",
                 f"SIGKILL of every RQ worker process ({o['workers_killed']} processes in {o['kills']} kills), once "
                 "while the rider's Booked! reply was inside the Twilio call and the driver's offer was queued" +
                 ("; plus kills at random moments after a booking" if o["random_rounds"] else ""),
                 times=o["kills"], expected=expected, lost=lost, duplicated=duplicated,
                 counted="Booked! and offer texts at the fake Twilio vs offer_made events; reconciled send status")
    for name, want, got in checks:
        assert want == got, f"APP BUG: after SIGKILL of the workers: {name}: expected {want}, got {got}"
    assert o["offer_events_b"] >= 1 and o["status_b"] == "assigned"
    msg = o["booked_msg_b"]
    assert msg["status"] == "sent" and msg.get("twilio_sid") in o["fake_sids_b"], msg
    assert all(r["status"] == "assigned" for r in o["random_rounds"])


def test_reply_that_never_reached_twilio_is_still_sent_after_workers_are_sigkilled(timeline, table):
    """The worker died while Twilio was failing the request, so the text never went. The
    same words had gone to this rider a moment earlier (a repeated STATUS answer): the
    sweeper must not take that older text for this one."""
    o = timeline
    want, got = 2, o["texts_c"].count(o["first_c"])
    lost, duplicated = tally(want, got)
    table.record("RQ worker SIGKILLed mid-send, text never reached Twilio",
                 "SIGKILL while a reply was inside a Twilio call that then failed (500); the rider had been "
                 "sent the same words earlier", times=1, expected=want, lost=lost, duplicated=duplicated,
                 counted="copies of the reply at the fake Twilio")
    assert got == want, (
        f"APP BUG: a reply whose worker was SIGKILLed before Twilio accepted it was never sent: the rider "
        f"got {got} of {want} identical STATUS answers. Delivery.reconcile -> TwilioSender.find_sent matched the "
        f"*earlier* identical text (same To and Body, created within a minute of the claim) and marked this one "
        f"sent (message status {o['msg_c']['status']!r}, twilio_sid {o['msg_c'].get('twilio_sid')!r}).")


def test_payment_link_after_workers_are_sigkilled_mid_stripe_call(timeline, table):
    o = timeline
    links, sessions = len(o["links_a"]), o["sessions_a"]
    lost, duplicated = tally(1, links)
    s_lost, s_dup = tally(1, sessions)
    table.record("RQ workers SIGKILLed mid payment link",
                 "SIGKILL of every worker while the links drain was inside the Stripe call "
                 "(fake Stripe stalled)", times=1, expected=2, lost=lost + s_lost, duplicated=duplicated + s_dup,
                 counted="payment-link texts, Checkout Sessions at the fake Stripe for the rescue")
    assert sessions <= 1, f"APP BUG: {sessions} Checkout Sessions for one rescue after a worker kill"
    assert links == 1, (
        f"APP BUG: the links drain was SIGKILLed inside the Stripe call and no payment link reached "
        f"the rider within {PAYMENT_PATIENCE} s ({links} link texts; payment_status {o['payment_status_a']!r}; "
        f"{o['stripe_calls_a']} Checkout call(s), {sessions} session(s) at Stripe). The rescue taken from the "
        f"links set died with the drain thread, and the sweeper (dispatch/sweeper.py, completed_without_link) "
        f"did not re-drive it.")


def test_payment_link_retried_after_a_stripe_error_once_the_workers_have_restarted(timeline, table):
    """Right after the killed workers were restarted, Stripe fails a Checkout request three
    times (the client's own retries included): the link's retry job must still bring it."""
    o = timeline
    links = len(o["links_d"])
    lost, duplicated = tally(1, links)
    table.record("Stripe error right after the workers were restarted",
                 "fake Stripe answers 500 x3 to the first Checkout request after every worker was SIGKILLed and "
                 "restarted", times=3, expected=1, lost=lost, duplicated=duplicated,
                 counted="payment-link texts within 25 s")
    assert links == 1, (
        f"APP BUG: after the RQ workers were SIGKILLed and restarted, a payment link that failed on a Stripe "
        f"500 was never retried ({links} link texts within 25 s, {o['stripe_calls_d']} Checkout call(s)). No RQ "
        f"scheduler runs after the restart (scheduler process after the restart: "
        f"{o['scheduler_after_restart']}, at the end: {o['scheduler_later']}): the dead scheduler's lock "
        f"rq:scheduler-lock:<queue> lives 61 s, and the restarted `rq worker --with-scheduler` processes try it "
        f"once at start and then only at their 10-minute maintenance, so every Retry back-off and enqueue_in "
        f"timer waits up to 10 minutes. Texts and offers have sweeper fallbacks; payment links "
        f"(dispatch/adapters/rq_scheduler.py retry_payment_link, back-off 2..300 s) have none.")


def test_rescue_still_dispatched_when_redis_keys_are_deleted_mid_rescue(timeline, table):
    r = timeline["redis"]
    expected = lost = duplicated = 0
    for _, want, got in r["checks"]:
        miss, dup = tally(want, got)
        expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
    table.record("Redis keys deleted mid-rescue",
                 "DEL of every rq:* key and <prefix>:geo:*, lock:*, kick:* and dispatch:* key: with the Booked! "
                 "reply still waiting, with the offer open, after the accept (never FLUSHDB)", times=len(r["deleted"]),
                 expected=expected, lost=lost, duplicated=duplicated,
                 counted="Booked!, offer, assignment and decoy texts at the fake; events")
    booked = f"{r['t_booked']:.1f} s" if r["t_booked"] is not None else "never"
    table.figure("Redis keys lost with the Booked! reply waiting",
                 f"offer after {r['t_offer']:.1f} s, driver assigned after {r['t_assigned']:.1f} s, the Booked! "
                 f"reply sent after {booked} (whatever the deletion lost, the sweeper re-drives from MongoDB)")
    for name, want, got in r["checks"]:
        assert want == got, f"APP BUG: after Redis keys were deleted mid-rescue: {name}: expected {want}, got {got}"
    # The first two deletions must have hit something (the booking's kicks and jobs, the offer's
    # timer); after the accept nothing of this rescue's may be left in Redis to lose.
    assert r["status"] == "assigned" and r["deleted"][0] > 0 and r["deleted"][1] > 0


def test_slow_geocoder_gets_the_map_lookup_is_slow_answer_and_a_200(timeline, settings, table):
    """The geocoder sleeps longer than GEOCODER_TIMEOUT_SECONDS: each text it holds up is still
    answered 200 well inside Twilio's 15 s, and the rider is told the map lookup is slow (or,
    for a text the webhook deferred until the lock was free, the honest answer once the
    geocoder has recovered)."""
    g = timeline["geocoder"]
    answered = [t for c, t in zip(g["codes"], g["times"], strict=False) if c == 200]
    slow_replies = sum("map lookup is slow" in body or "couldn't find that place" in body for body in g["replies"])
    # Nobody is left looping (PRODUCT.md §4 step 9): the third place in a row not found brings a
    # person in and the rider is told so; a fourth is answered by that person, not by the same words.
    helped = next((i for i, body in enumerate(g["replies"]) if "dispatcher to text you" in body), None)
    if helped is not None:
        slow_replies += 1 + (len(answered) - len(g["replies"]))
    lost, duplicated = tally(len(answered), slow_replies)
    table.record("Geocoder slower than GEOCODER_TIMEOUT_SECONDS",
                 f"fake Nominatim sleeps {g['delay']:.1f} s per lookup "
                 f"(timeout {settings.geocoder_timeout_seconds:.0f} s)",
                 times=len(answered), expected=len(answered), lost=lost, duplicated=duplicated,
                 counted="200 answers and a reply to each (slow lookup, or the later honest answer)")
    table.figure("Slow geocoder", f"the SMS webhook answered 200 in {min(answered):.1f} s with the geocoder stalled "
                 f"{g['delay']:.1f} s (timeout {settings.geocoder_timeout_seconds:.0f} s); texts queued behind it "
                 f"were answered after up to {max(answered):.1f} s")
    assert answered and min(answered) < settings.geocoder_timeout_seconds + 2.5, g
    assert max(answered) < 15, f"APP BUG: a webhook took {max(answered):.1f} s (Twilio gives up at 15 s)"
    assert slow_replies == len(answered), f"APP BUG: replies to texts held up by the geocoder: {g['replies']}"
    assert helped is None or helped == len(g["replies"]) - 1 >= 2, g["replies"]


def test_texts_queued_behind_a_slow_geocoder_are_not_dropped(timeline, table):
    """Four texts from one rider at once while the geocoder is slow: each waits for the one
    before (per-number lock), and none may be lost. A 503 is lost for good: Twilio does not
    redeliver an SMS webhook that answered 5xx (it retries only failed connections)."""
    g = timeline["geocoder"]
    lost, _ = tally(g["count"], g["recorded"])
    table.record("Texts from one number queued behind a slow geocoder",
                 f"{g['count']} texts at once while the fake Nominatim sleeps {g['delay']:.1f} s per lookup "
                 f"(GEOCODER_TIMEOUT_SECONDS={g['delay'] - 1.5:.0f})", times=g["count"], expected=g["count"],
                 lost=lost, duplicated=0, counted="texts recorded and applied")
    assert g["recorded"] == g["count"] and g["codes"] == [200] * g["count"], (
        f"APP BUG: {g['count']} texts sent at once by one rider while the geocoder was slow: answers {g['codes']} "
        f"(slowest {g['slowest']:.1f} s), only {g['recorded']} recorded. The geocoder is called inside the SMS "
        f"webhook under the per-number lock (up to GEOCODER_TIMEOUT_SECONDS waiting for the 1/s slot, then up to "
        f"the same again for the lookup), so texts queue behind it; once one has waited PHONE_LOCK_WAIT_SECONDS "
        f"(8 s) it is answered 503 and not recorded, and Twilio does not redeliver an SMS webhook on 5xx, so it "
        f"is lost.")


def test_healthz_still_sees_the_workers_after_redis_keys_are_lost(phone, live_service, services, table):
    """/healthz reports whether the workers answer. After the rq:* keys are lost the workers
    go on answering (a text is still replied to), so health must come back."""
    assert httpx.get(f"{live_service.url}/healthz", timeout=10).status_code in (200, 503)
    delete_redis_keys(services, ("rq:*",))
    rider = phone()
    assert "Where are you?" in rider.ask("hello", timeout=20)  # the workers are alive and working
    health = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
        httpx.get(f"{live_service.url}/healthz", timeout=10)), 3, 0.5)
    last = httpx.get(f"{live_service.url}/healthz", timeout=10)
    table.record("Health check after Redis keys are lost", "DEL rq:* then GET /healthz for 3 s while texts are "
                 "being answered", times=1, expected=1, lost=0 if health else 1, duplicated=0,
                 counted="/healthz answering 200 with workers > 0")
    assert health, (f"APP BUG: /healthz answers {last.status_code} {last.json()} for good after the rq:* keys are "
                    f"lost, although both workers are alive and still sending texts: "
                    f"dispatch/http/api.py healthz counts "
                    f"workers with rq's Worker.count(), i.e. the rq:workers registration set, which workers only "
                    f"write when they start.")


def test_sms_and_voice_retried_after_a_redis_outage_apply_once(phone, live_service, services, settings, fake_twilio,
                                                               table):
    """Redis unreachable (a real client pointed at a closed port): the SMS webhook keeps the
    text in MongoDB and answers 200 (the sweeper applies it once Redis is back); the voice
    webhook says sorry in words and asks the caller to text (Twilio does not retry a call).
    The text is applied exactly once."""
    down = create_app(services=Services(settings, services.db, _unreachable_redis())).test_client()
    rider = phone()
    sms = sms_params(rider.number, "flat tire at Union Square")
    call = call_params("CA" + uuid.uuid4().hex, rider.number)
    first = {}
    for path, params in (("/twilio/sms", sms), ("/twilio/voice", call)):
        r = down.post(path, data=params, headers={"X-Twilio-Signature": sign(settings.public_base_url + path, params)})
        first[path] = r.status_code
        assert r.status_code in (200, 503), (path, r.status_code)
        if path == "/twilio/voice":
            assert "text this number" in r.get_data(as_text=True), "the caller is sent to SMS"
    if first["/twilio/sms"] == 503:  # refused whole: nothing stored, and the redelivery applies it
        assert services.db.messages.count_documents({"phone": rider.number}) == 0
        assert services.db.conversations.find_one({"_id": rider.number}) is None
        assert rider.text("flat tire at Union Square", sid=sms["MessageSid"]).status_code == 200
    rider.next_reply()
    assert first["/twilio/voice"] == 200
    time.sleep(0.8)
    counts = [("replies", 1, len(rider.replies())),
              ("inbound records", 1, services.db.messages.count_documents({"key": f"in:{sms['MessageSid']}"}))]
    expected = lost = duplicated = 0
    for _, want, got in counts:
        miss, dup = tally(want, got)
        expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
    table.record("Redis unreachable during Twilio webhooks",
                 "SMS and voice webhooks answered by an app whose Redis is a closed port, then redelivered",
                 times=2, expected=expected, lost=lost, duplicated=duplicated,
                 counted="200 with the text kept (SMS) and a spoken apology sending the caller to SMS (voice), "
                         "then one record and one reply")
    table.figure("Redis unreachable", f"the SMS and voice webhooks answered {first['/twilio/sms']} and "
                 f"{first['/twilio/voice']}: the text is kept in MongoDB and applied by the sweeper; the caller "
                 f"hears that we are having trouble and to text the same number")
    for name, want, got in counts:
        assert want == got, f"APP BUG: after a Redis outage: {name}: expected {want}, got {got}"


def test_stripe_event_retried_after_a_redis_outage_is_applied(slate, phone, live_service, services, settings,
                                                              fake_stripe, fake_twilio, table):
    """The Stripe webhook answers 503 "Stripe will retry" while Redis is unreachable; when
    Stripe retries the same event, it must be applied (paid, one receipt)."""
    driver, rider = phone(), phone()
    online_driver(live_service, driver, "Outage", NEAR_UNION_SQ)
    code = book(rider)
    driver.wait_for(f"offer {code}")
    driver.ask("Y")
    driver.ask("ARRIVED")
    driver.ask("DONE")
    link = rider.wait_for("Pay $", timeout=15)
    session = fake_stripe.sessions[re.search(r"https://\S+", link).group(0).rsplit("/", 1)[1]]
    paid = {**session, "payment_status": "paid", "status": "complete", "payment_intent": "pi_" + uuid.uuid4().hex[:20]}
    event = stripe_event("checkout.session.completed", paid)
    down = create_app(services=Services(settings, services.db, _unreachable_redis())).test_client()
    first = post_stripe_event(lambda p, h: down.post("/stripe/webhook", data=p, headers=h), event)
    assert first.status_code in (200, 503), first.status_code
    retry = first
    if first.status_code >= 500:  # Stripe redelivers any non-2xx answer
        retry = post_stripe_event(lambda p, h: httpx.post(f"{live_service.url}/stripe/webhook", content=p, headers=h,
                                                          timeout=20), event)
    receipt = wait_until(lambda: texts_with(fake_twilio, rider.number, "Receipt:"), 2)
    r = rescue(live_service, code)
    lost, duplicated = tally(1, len(receipt or []))
    table.record("Redis unreachable during a Stripe webhook",
                 "checkout.session.completed answered by an app whose Redis is a closed port (503), then "
                 "Stripe's retry of the same event", times=1, expected=1, lost=lost, duplicated=duplicated,
                 counted="receipt texts, payment_status")
    assert r["payment_status"] == "paid" and len(receipt or []) == 1, (
        f"APP BUG: a Stripe event first answered 503 ('temporarily unavailable; Stripe will retry') is lost: the "
        f"retry is answered {retry.status_code} {retry.text.strip()!r}, the rescue stays {r['payment_status']!r} "
        f"and no receipt is sent. Payments.apply_event (dispatch/payments.py) stores the event id in "
        f"stripe_events before taking the Redis lock, so the failed first attempt already counts as applied.")
