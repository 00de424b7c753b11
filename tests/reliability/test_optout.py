"""Opt-out: once a number has texted STOP, nothing reaches it (checked at send time) until
it texts START: not the flow's replies, not dispatchers, not notifications, not relays,
not a send that was already waiting for a retry. Every STOP of the suite is registered;
tests/reliability/test_zz_privacy.py checks the fake Twilio's timestamps for all of them."""
from __future__ import annotations

import time
import uuid

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.e2e.test_dispatch import NEAR_UNION_SQ, book, online_driver
from tests.reliability.support import canary, clear_failures, quiesce, text_start, text_stop, texts_with, wait_until

try:  # `slate` moved to tests/conftest.py; older trees define it next to the dispatch tests
    from tests.e2e.test_dispatch import slate  # noqa: F401
except ImportError:
    pass

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _after(fake_twilio, number: str, since: float) -> list[str]:
    return [t.body for t in fake_twilio.texts_to(number) if t.at > since]


def test_rider_stop_mid_rescue_then_nothing_reaches_them_until_start(slate, phone, live_service, services, fake_twilio,
                                                                      table):
    driver, rider = phone(), phone()
    online_driver(live_service, driver, "Opt Olga", NEAR_UNION_SQ)
    code = book(rider)
    driver.wait_for(f"offer {code}")
    driver.ask("Y")
    rider.wait_for("on the way")
    r = services.rescues.get(services.rescues.open_for_rider(rider.number).id)
    quiesce(services)
    stop = text_stop(rider)
    driver.wait_for(f"{code} has been cancelled")  # the driver is told; the rider opted out of everything
    attempts = 0
    # Everything that could text the rider now:
    driver.text(canary("driver relay"))  # no open job any more: not relayed
    attempts += 1
    msg = httpx.post(f"{live_service.url}/api/rescues/{r.id}/message", headers=AUTH, timeout=10,
                     json={"to": "rider", "body": canary("dispatcher to opted-out rider")})
    assert msg.status_code in (201, 409), msg.text
    attempts += 1
    for text in ("hello", "flat tire at Union Square", "STATUS", "HELP", "y"):
        assert rider.text(text).status_code == 200
        attempts += 1
    time.sleep(1.0)
    reached = _after(fake_twilio, rider.number, stop.answered_at)
    assert services.rescues.get(r.id).status == "cancelled"
    assert services.db.rescues.count_documents({"rider_phone": rider.number}) == 1, "no new rescue while opted out"
    table.record("Texts to a rider who sent STOP mid-rescue", "STOP with a driver assigned, then a driver relay, a "
                 "dispatcher text and 5 texts from the rider", times=attempts, expected=attempts, lost=0,
                 duplicated=len(reached), counted="texts at the fake Twilio after the STOP was answered")
    assert not reached, f"APP BUG: texts reached {rider.number} after STOP: {reached}"
    text_start(rider, stop)
    assert "Where are you?" in rider.ask("hi"), "after START the rider is answered again"


def test_stop_while_a_reply_waits_for_its_retry_suppresses_it(rq_scheduler, phone, services, fake_twilio, table):
    """The reply failed twice with a transient error and waits for its third try when the
    rider texts STOP: the retry must check the opt-out at send time."""
    rider = phone()
    quiesce(services)
    try:
        fake_twilio.fail_next(2, 500, 20500, to=rider.number)
        sid = "SM" + uuid.uuid4().hex
        assert rider.text("hello", sid=sid).status_code == 200
        assert wait_until(lambda: services.db.messages.find_one({"key": f"reply:{sid}", "attempts": 2,
                                                                 "status": "pending"}), 15), "two failures expected"
        stop = text_stop(rider)
        settled = wait_until(lambda: services.db.messages.find_one({"key": f"reply:{sid}",
                                                                    "status": {"$nin": ["pending", "sending"]}}), 25)
    finally:
        clear_failures(fake_twilio)
    reached = _after(fake_twilio, rider.number, stop.answered_at)
    table.record("Reply waiting for a retry when STOP arrives", "fake Twilio fails the reply twice (500), the rider "
                 "texts STOP before the third try", times=1, expected=1, lost=0, duplicated=len(reached),
                 counted="texts at the fake Twilio after STOP; final status `suppressed`")
    assert not reached, f"APP BUG: a retried reply reached {rider.number} after STOP: {reached}"
    assert settled and settled["status"] == "suppressed", settled


def test_driver_stop_means_no_offers_no_job_texts_no_relays(slate, phone, live_service, services, fake_twilio, table):
    online, on_job, rider1, rider2 = phone(), phone(), phone(), phone()
    online_driver(live_service, on_job, "Job Jo", NEAR_UNION_SQ)
    code1 = book(rider1)
    on_job.wait_for(f"offer {code1}")
    on_job.ask("Y")
    rider1.wait_for("on the way")
    d_online = online_driver(live_service, online, "Idle Ida", NEAR_UNION_SQ)
    quiesce(services)
    stop_online = text_stop(online)
    stop_job = text_stop(on_job)
    attempts = 0
    rider1.text(canary("rider relay to opted-out driver"))  # relayed to the driver on the job: must be suppressed
    attempts += 1
    code2 = book(rider2)  # the opted-out idle driver must not be offered it
    attempts += 1
    r2 = services.rescues.open_for_rider(rider2.number)
    assigned = httpx.post(f"{live_service.url}/api/rescues/{r2.id}/assign", headers=AUTH, timeout=10,
                          json={"driver_id": d_online["id"]})  # a dispatcher assigns them anyway
    attempts += 1
    time.sleep(1.2)
    reached = _after(fake_twilio, online.number, stop_online.answered_at) + \
        _after(fake_twilio, on_job.number, stop_job.answered_at)
    offers = texts_with(fake_twilio, online.number, f"offer {code2}")
    table.record("Texts to drivers who sent STOP", "STOP from an idle driver and from one on a job, then a rider "
                 "relay, a new rescue nearby and a dispatcher assignment", times=attempts, expected=attempts, lost=0,
                 duplicated=len(reached), counted=f"texts at the fake Twilio after STOP (assign answered "
                 f"{assigned.status_code})")
    assert not offers, f"APP BUG: an opted-out driver was offered {code2}"
    assert not reached, f"APP BUG: texts reached drivers after STOP: {reached}"
