"""The dispatch loop end to end: riders and drivers texting the running service."""
from __future__ import annotations

import dataclasses
import re
import threading
import time

import httpx
import pytest

from dispatch.bootstrap import Services
from dispatch.messaging import CLAIM_DEAD_MS
from dispatch.model.clock import now_ms
from tests.conftest import ADMIN_TOKEN, OFFER_TIMEOUT

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
UNION_SQ, NEAR_UNION_SQ, COLUMBUS_CIRCLE = "40.7359,-73.9911", "40.7368,-73.9900", "40.7681,-73.9819"
PHONE_RE = re.compile(r"\+?1?\d{10}")


def register(live_service, phone, name: str, vehicle: str = "Ford Transit"):
    r = httpx.post(f"{live_service.url}/api/drivers", headers=AUTH, timeout=10,
                   json={"phone": phone.number, "name": name, "vehicle": vehicle})
    assert r.status_code == 201, r.text
    return r.json()


def online_driver(live_service, phone, name: str, where: str):
    driver = register(live_service, phone, name)
    assert "Where are you?" in phone.ask("ON")
    assert "Location updated" in phone.ask(where)
    return driver


def book(rider, place: str = "Union Square") -> str:
    rider.ask(f"flat tire at {place}")
    rider.ask("skip")
    booked = rider.ask("y")
    return re.search(r"R\d{4,}", booked).group(0)


def rescue(live_service, code: str) -> dict:
    rescues = httpx.get(f"{live_service.url}/api/rescues?limit=200", headers=AUTH, timeout=10).json()["rescues"]
    summary = next(r for r in rescues if r["code"] == code)
    return httpx.get(f"{live_service.url}/api/rescues/{summary['id']}", headers=AUTH, timeout=10).json()


def wait_status(live_service, code: str, status: str, timeout: float = 10) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = rescue(live_service, code)
        if r["status"] == status:
            return r
        time.sleep(0.1)
    raise AssertionError(f"{code} never became {status}: {rescue(live_service, code)['status']}")


def test_nearest_driver_gets_the_offer_and_finishes_by_sms(slate, phone, live_service):
    near, far, rider = phone(), phone(), phone()
    online_driver(live_service, near, "Ann Lee", NEAR_UNION_SQ)
    online_driver(live_service, far, "Bo Chen", COLUMBUS_CIRCLE)
    code = book(rider)
    offer = near.wait_for(f"offer {code}")
    assert "Reply Y" in offer and "Pays $" in offer and "near Union Square" in offer
    far.assert_no_reply(0.5)
    details = near.ask("Y")
    assert code in details and "ARRIVED" in details
    assigned = rider.wait_for("on the way")
    assert "Ann" in assigned and "Lee" not in assigned and "Ford Transit" in assigned and "min" in assigned
    assert wait_status(live_service, code, "assigned")["driver_id"]

    rider.text("I'm by the fountain")
    relayed = near.wait_for("rider: I'm by the fountain")
    near.text("2 min away")
    to_rider = rider.wait_for("Driver Ann: 2 min away")
    for text in (relayed, to_rider):
        assert not PHONE_RE.search(text), text

    assert "Marked arrived" in near.ask("ARRIVED")
    rider.wait_for("has arrived")
    assert "complete" in near.ask("DONE")
    rider.wait_for("is complete")
    done = wait_status(live_service, code, "completed")
    assert [e["type"] for e in done["timeline"]][:4] == ["rescue_requested", "offer_made", "driver_assigned",
                                                         "driver_arrived"]
    driver = httpx.get(f"{live_service.url}/api/drivers/{done['driver_id']}", headers=AUTH).json()
    assert driver["status"] == "available"


def test_decline_moves_to_the_next_driver_at_once(slate, phone, live_service):
    near, far, rider = phone(), phone(), phone()
    online_driver(live_service, near, "Ann", NEAR_UNION_SQ)
    online_driver(live_service, far, "Bo", COLUMBUS_CIRCLE)
    code = book(rider)
    near.wait_for(f"offer {code}")
    assert "passed on" in near.ask("N")
    far.wait_for(f"offer {code}", timeout=3)
    far.ask("yes")
    rider.wait_for("Bo is on the way")


def test_silent_driver_expires_then_next_and_late_accept_is_refused(slate, phone, live_service):
    near, far, rider = phone(), phone(), phone()
    online_driver(live_service, near, "Ann", NEAR_UNION_SQ)
    online_driver(live_service, far, "Bo", COLUMBUS_CIRCLE)
    code = book(rider)
    near.wait_for(f"offer {code}")
    started = time.time()
    near.wait_for("has expired", timeout=OFFER_TIMEOUT + 5)
    assert time.time() - started >= OFFER_TIMEOUT - 0.5  # never early
    far.wait_for(f"offer {code}", timeout=5)
    assert "expired" in near.ask(f"Y {code[1:]}")
    assert code in far.ask("ACCEPT")
    assert wait_status(live_service, code, "assigned")["driver_id"] != ""


def test_drop_hands_the_job_back_and_redispatches(slate, phone, live_service):
    near, far, rider = phone(), phone(), phone()
    online_driver(live_service, near, "Ann", NEAR_UNION_SQ)
    online_driver(live_service, far, "Bo", COLUMBUS_CIRCLE)
    code = book(rider)
    near.wait_for(f"offer {code}")
    near.ask("Y")
    assert "handed back" in near.ask("DROP")
    rider.wait_for("hand back")
    far.wait_for(f"offer {code}", timeout=5)
    far.ask("Y")
    assert "Bo" in rider.wait_for("on the way")


def test_dispatcher_assign_and_cancel(slate, phone, live_service):
    near, other, rider = phone(), phone(), phone()
    online_driver(live_service, near, "Ann", NEAR_UNION_SQ)
    bo = online_driver(live_service, other, "Bo", COLUMBUS_CIRCLE)
    code = book(rider)
    near.wait_for(f"offer {code}")
    r = rescue(live_service, code)
    assigned = httpx.post(f"{live_service.url}/api/rescues/{r['id']}/assign", headers=AUTH,
                          json={"driver_id": bo["id"]})
    assert assigned.status_code == 200 and assigned.json()["driver_id"] == bo["id"]
    other.wait_for(f"You've got {code}")
    near.wait_for("taken or cancelled")
    rider.wait_for("Bo is on the way")
    assert "taken or cancelled" in near.ask("Y")  # an honest answer to a late reply

    bad = httpx.post(f"{live_service.url}/api/rescues/{r['id']}/assign", headers=AUTH, json={})
    assert bad.status_code == 400
    cancelled = httpx.post(f"{live_service.url}/api/rescues/{r['id']}/cancel", headers=AUTH,
                           json={"reason": "rider called in"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    rider.wait_for("cancelled by our dispatch team (rider called in)")
    other.wait_for(f"{code} has been cancelled")
    # Repeating the current status is a no-op, not an error, and tells nobody anything again.
    again = httpx.post(f"{live_service.url}/api/rescues/{r['id']}/cancel", headers=AUTH, json={})
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert [e["type"] for e in rescue(live_service, code)["timeline"]].count("rescue_cancelled") == 1
    driver = httpx.get(f"{live_service.url}/api/drivers/{bo['id']}", headers=AUTH).json()
    assert driver["status"] == "available" and driver["rescue_id"] is None


def test_rider_cancel_frees_the_driver(slate, phone, live_service):
    near, rider = phone(), phone()
    online_driver(live_service, near, "Ann", NEAR_UNION_SQ)
    code = book(rider)
    near.wait_for(f"offer {code}")
    near.ask("Y")
    rider.wait_for("Ann is on the way")
    rider.text("CANCEL RESCUE")
    rider.wait_for(f"Rescue {code} is cancelled")
    near.wait_for(f"{code} has been cancelled")
    assert wait_status(live_service, code, "cancelled")["cancelled_by"] == "rider"


@pytest.mark.parametrize("round_", range(4))
def test_accept_race_has_exactly_one_winner(slate, phone, live_service, services, settings, round_):
    """Eight drivers hold offers for one rescue and all reply at once, through both gunicorn
    worker processes: exactly one gets it, the rest are told it is taken."""
    fan = Services(dataclasses.replace(settings, offer_fanout=8), services.db, services.redis)
    drivers = [phone() for _ in range(8)]
    for i, d in enumerate(drivers):
        online_driver(live_service, d, f"Driver{i}", NEAR_UNION_SQ)
    rider = phone()
    rider.ask("flat tire at Union Square")
    rider.ask("skip")
    rider.ask("y")
    r = services.rescues.open_for_rider(rider.number)
    fan.dispatcher.dispatch(r.id)
    for d in drivers:
        d.wait_for(f"offer {r.code}")
    replies: list[int] = []
    barrier = threading.Barrier(len(drivers))

    def answer(d):
        barrier.wait()
        replies.append(d.text("Y").status_code)

    threads = [threading.Thread(target=answer, args=(d,)) for d in drivers]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert replies == [200] * len(drivers)
    answers = [d.wait_for(r.code) for d in drivers]
    winners = [a for a in answers if a.startswith("You've got")]
    assert len(winners) == 1, answers
    assert sum("taken" in a for a in answers) == len(drivers) - 1
    final = services.rescues.get(r.id)
    assert final.status == "assigned"
    statuses = sorted(services.db.drivers.find_one({"phone": d.number})["status"] for d in drivers)
    assert statuses == ["available"] * 7 + ["on_job"]
    offers = sorted(o["status"] for o in services.db.offers.find({"rescue_id": r.id}))
    assert offers == ["accepted"] + ["taken"] * 7


def test_rescue_survives_a_redis_flush_mid_search(slate, phone, live_service, services):
    near, far, rider = phone(), phone(), phone()
    online_driver(live_service, near, "Ann", NEAR_UNION_SQ)
    online_driver(live_service, far, "Bo", COLUMBUS_CIRCLE)
    code = book(rider)
    near.wait_for(f"offer {code}")
    # Lose everything the service keeps in Redis: queues, scheduled timers, the geo index.
    for pattern in ("rq:*", "geo:*", "lock:*"):
        keys = list(services.redis.scan_iter(pattern))
        if keys:
            services.redis.delete(*keys)
    # The offer's expiry timer is gone with Redis; the sweeper expires it from MongoDB and
    # the rebuilt index finds the next driver.
    near.wait_for("has expired", timeout=OFFER_TIMEOUT + 8)
    far.wait_for(f"offer {code}", timeout=8)
    far.ask("Y")
    assert wait_status(live_service, code, "assigned")


def test_twilio_errors_are_retried_and_sent_once(slate, phone, fake_twilio):
    rider = phone()
    fake_twilio.fail_next(1, 500, 20500, to=rider.number)
    fake_twilio.fail_next(1, 429, 20429, to=rider.number)
    before = fake_twilio.requests
    assert "Where are you?" in rider.ask("hello", timeout=20)
    assert fake_twilio.requests - before >= 3
    rider.assert_no_reply(1.0)
    assert len(rider.replies()) == 1


def test_out_of_order_status_callbacks_never_go_backwards(phone, live_service, services, fake_twilio):
    from tests.conftest import sign

    rider = phone()
    rider.ask("hello")
    sid = fake_twilio.texts_to(rider.number)[-1].sid
    url = f"{live_service.url}/twilio/status"
    for status in ("delivered", "sent", "queued"):
        params = {"MessageSid": sid, "MessageStatus": status, "To": rider.number}
        r = httpx.post(url, data=params, headers={"X-Twilio-Signature": sign(url, params)})
        assert r.status_code == 200
    assert services.db.messages.find_one({"twilio_sid": sid})["status"] == "delivered"


def test_unfulfilled_after_the_search_window(slate, phone, services, settings):
    rider = phone()
    code = book(rider)
    r = services.rescues.open_for_rider(rider.number)
    services.db.rescues.update_one({"_id": r.id}, {"$set": {"searching_since": now_ms() - 16 * 60 * 1000}})
    assert services.dispatcher.dispatch(r.id) == "unfulfilled"
    assert services.rescues.get(r.id).status == "unfulfilled"
    assert "no driver could reach you" in rider.wait_for(code)


@pytest.mark.parametrize("delay", [0.0, 0.05])
def test_workers_killed_mid_offer_still_offer_once(slate, phone, live_service, delay):
    """SIGKILL every RQ worker right after the rider confirms: whatever the dispatch job had
    done, the restarted workers and the sweeper finish it, and the driver is offered once."""
    import os
    import signal

    near, rider = phone(), phone()
    online_driver(live_service, near, "Ann", NEAR_UNION_SQ)
    rider.ask("flat tire at Union Square")
    rider.ask("skip")
    before = set(live_service.worker_pids())
    rider.text("y")
    time.sleep(delay)
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    # The driver answers each offer as it comes, as a driver would; an offer that ran out
    # while the texts were held up by the restart comes again once the cool-off passes. An
    # offer whose worker died mid-send holds the texts after it (the answer to this Y) until
    # its claim is CLAIM_DEAD_MS old and the lanes pass it.
    answer_wait = CLAIM_DEAD_MS / 1000 + 10
    deadline = time.time() + 60
    while True:
        offer = near.wait_for("SupportCarr offer", timeout=max(1.0, deadline - time.time()))
        if "You've got" in near.ask("Y", timeout=answer_wait):
            break
    code = re.search(r"R\d{4,}", offer).group(0)
    # A reply whose worker died mid-send waits for the sweeper to ask Twilio whether it went.
    assert code in rider.wait_for("Booked!", timeout=60)
    assert wait_status(live_service, code, "assigned")
    offer_texts = [t for t in near.replies() if t.startswith(f"SupportCarr offer {code}")]
    r = rescue(live_service, code)
    assert len(offer_texts) == [e["type"] for e in r["timeline"]].count("offer_made"), offer_texts
    after = set(live_service.worker_pids())
    assert after and not (after & before)
