"""Vendor faults: Twilio 429/500 bursts, 21610 (opted out at the carrier), 21211 (bad
number), Stripe 500s on Checkout, a geocoder slower than GEOCODER_TIMEOUT_SECONDS.

Failures are injected at the local fakes the real `twilio`, `stripe` and geopy clients
talk to; each test first waits until no other text is in flight, so an injected failure
hits only the sends the test itself starts. (The slow geocoder is tested in
test_process_faults.py, inside the timeline that waits for the sweeper anyway.)
"""
from __future__ import annotations

import time

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.e2e.test_dispatch import NEAR_UNION_SQ, book, online_driver, rescue
from tests.reliability.support import (
    at_once,
    canary,
    clear_failures,
    quiesce,
    reps,
    sms_params,
    tally,
    texts_with,
    wait_until,
)

try:  # `slate` moved to tests/conftest.py; older trees define it next to the dispatch tests
    from tests.e2e.test_dispatch import slate  # noqa: F401
except ImportError:
    pass

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_twilio_429_and_500_bursts_are_retried_and_each_text_sent_once(rq_scheduler, phone, services, fake_twilio,
                                                                          table):
    rounds = reps(1)
    injected = expected = lost = duplicated = 0
    attempts_seen = 0
    try:
        for _ in range(rounds):
            quiesce(services)
            riders = [phone() for _ in range(4)]
            fake_twilio.fail_next(2, 429, 20429)
            fake_twilio.fail_next(2, 500, 20500)
            injected += 4
            before = fake_twilio.requests
            codes = at_once([lambda r=r: r.text("hello").status_code for r in riders])
            assert codes == [200] * 4, codes
            for r in riders:
                fake_twilio.wait_for_texts(r.number, 1, timeout=30)
            time.sleep(1.5)  # a retry that sends again would land here
            assert not fake_twilio.failures, "the burst was not used up by these sends"
            attempts = fake_twilio.requests - before
            attempts_seen += attempts
            got = sum(len(r.replies()) for r in riders)
            miss, dup = tally(4, got)
            expected, lost, duplicated = expected + 4, lost + miss, duplicated + dup
            assert (miss, dup) == (0, 0), f"APP BUG: 4 replies due through a 429/500 burst, {got} arrived"
            assert attempts == 4 + 4, f"APP BUG: {attempts} send attempts for 4 texts and 4 failures"
            stored = services.db.messages.find({"phone": {"$in": [r.number for r in riders]}, "direction": "out"})
            assert sorted(m["status"] for m in stored) == ["sent"] * 4
    finally:
        clear_failures(fake_twilio)
    table.record("Twilio 429 / 500 burst", "fake Twilio answers the next 4 sends 429 (20429) x2 then 500 (20500) x2 "
                 "while 4 riders text at once", times=injected, expected=expected, lost=lost, duplicated=duplicated,
                 counted=f"replies at the fake Twilio; {attempts_seen} send attempts in all (texts + failures)")


def test_21610_opts_the_number_out_and_nothing_more_is_sent(slate, phone, live_service, services, fake_twilio, table):
    rider = phone()
    book(rider)
    r = services.rescues.open_for_rider(rider.number)
    quiesce(services)
    texts_before, requests_before = len(rider.replies()), fake_twilio.requests
    url = f"{live_service.url}/api/rescues/{r.id}/message"
    try:
        fake_twilio.fail_next(1, 400, 21610, to=rider.number)
        first = httpx.post(url, headers=AUTH, json={"to": "rider", "body": canary("dispatcher note")}, timeout=10)
        assert first.status_code == 201, first.text
        failed = wait_until(lambda: services.db.messages.find_one({"_id": first.json()["id"], "status": "failed"}), 10)
        assert failed and failed["error_code"] == "21610" and failed["attempts"] == 1, failed
        optout = services.db.optouts.find_one({"_id": rider.number})
        assert optout and bool(optout["opted_out"]), "APP BUG: error 21610 did not opt the number out"
        # Everything that would text this number now: its own texts, dispatchers, a cancellation.
        assert rider.text("STATUS").status_code == 200
        assert rider.text(canary("rider asks")).status_code == 200
        again = httpx.post(url, headers=AUTH, json={"to": "rider", "body": "are you still there?"}, timeout=10)
        assert again.status_code in (201, 409), again.text
        cancel = httpx.post(f"{live_service.url}/api/rescues/{r.id}/cancel", headers=AUTH,
                            json={"reason": "rider unreachable"}, timeout=10)
        assert cancel.status_code == 200
        time.sleep(1.2)
    finally:
        clear_failures(fake_twilio)
    sent_after = len(rider.replies()) - texts_before
    attempts = fake_twilio.requests - requests_before
    suppressed = services.db.messages.count_documents({"phone": rider.number, "status": "suppressed"})
    table.record("Twilio 21610 (recipient opted out at the carrier)",
                 "fake Twilio answers a dispatcher's text 400/21610; then the rider texts twice, a dispatcher "
                 "texts again and cancels", times=1, expected=4, lost=0, duplicated=sent_after + (attempts - 1),
                 counted=f"texts / send attempts reaching Twilio after the 21610 ({suppressed} suppressed at "
                 f"send time)")
    assert sent_after == 0, f"APP BUG: {sent_after} texts reached a number after Twilio said 21610: {rider.replies()}"
    assert attempts == 1, f"APP BUG: {attempts} send attempts; the 21610 send was retried or others went out"
    assert suppressed >= 1


def test_21211_fails_the_text_without_retrying_it(rq_scheduler, phone, services, fake_twilio, table):
    rider = phone()
    quiesce(services)
    before = fake_twilio.requests
    params = sms_params(rider.number, "hello")
    try:
        fake_twilio.fail_next(1, 400, 21211, to=rider.number)
        assert rider.text("hello", sid=params["MessageSid"]).status_code == 200
        failed = wait_until(lambda: services.db.messages.find_one({"key": f"reply:{params['MessageSid']}",
                                                                   "status": "failed"}), 10)
        time.sleep(2.0)  # past the first retry interval (1 s, give or take the scheduler's second)
    finally:
        clear_failures(fake_twilio)
    attempts = fake_twilio.requests - before
    msg = services.db.messages.find_one({"key": f"reply:{params['MessageSid']}"})
    table.record("Twilio 21211 (invalid 'To' number)", "fake Twilio answers the reply 400/21211",
                 times=1, expected=1, lost=0, duplicated=attempts - 1,
                 counted="send attempts at the fake Twilio; final message status")
    assert failed, f"APP BUG: a 21211 reply is not marked failed: {msg}"
    assert attempts == 1 and msg["attempts"] == 1, f"APP BUG: a 21211 send was retried ({attempts} attempts)"
    assert msg["status"] == "failed" and msg["error_code"] == "21211"
    assert not services.optouts.is_opted_out(rider.number), "a bad-number error must not opt the number out"
    assert "What's wrong" in rider.ask("Union Square"), "the number still gets answers afterwards"


def test_stripe_500s_on_checkout_still_deliver_one_link(rq_scheduler, slate, phone, live_service, services, fake_stripe,
                                                        fake_twilio, table):
    rounds = reps(1)
    injected = expected = lost = duplicated = 0
    try:
        for i in range(rounds):
            driver, rider = phone(), phone()
            online_driver(live_service, driver, f"Stripey{i}", NEAR_UNION_SQ)
            code = book(rider)
            driver.wait_for(f"offer {code}")
            driver.ask("Y")
            driver.ask("ARRIVED")
            r = rescue(live_service, code)
            quiesce(services)
            fake_stripe.fail_next(3, 500)  # the client's own 2 retries fail too: the link's retry job must bring it
            injected += 3
            driver.ask("DONE")
            rider.wait_for("Pay $", timeout=30)
            time.sleep(1.0)
            calls = [c for c in fake_stripe.calls("/v1/checkout/sessions")
                     if c.form.get("client_reference_id") == r["id"]]
            sessions = [s for s in fake_stripe.sessions.values() if s["client_reference_id"] == r["id"]]
            links = texts_with(fake_twilio, rider.number, "Pay $")
            for name, want, got in (("link texts", 1, len(links)), ("Checkout Sessions", 1, len(sessions))):
                miss, dup = tally(want, got)
                expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
                assert (miss, dup) == (0, 0), f"APP BUG: after Stripe 500s: {name}: expected {want}, got {got}"
            assert len(calls) >= 4 and {c.idempotency_key for c in calls} == {f"checkout-{r['id']}-1"}, \
                [(c.idempotency_key) for c in calls]
    finally:
        with fake_stripe.lock:
            fake_stripe.failures.clear()
    table.record("Stripe 500 on Checkout Session creation",
                 "fake Stripe answers the next 3 session requests 500 (the client's retries included)",
                 times=injected, expected=expected, lost=lost, duplicated=duplicated,
                 counted="payment-link texts, Checkout Sessions for the rescue (one idempotency key)")
