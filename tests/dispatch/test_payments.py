"""Payments and after-care in-process (PRODUCT.md §6, §4 step 7): the payment link against
the fake Stripe API, signed Stripe events in any order and twice, refunds through the admin
API, ratings through the SMS webhook, and the sandbox test-payment page.

Real Redis, real MongoDB, the real `stripe` client talking to tests/fakes/stripe_api.py.
Completing a rescue puts it in the shared set of rescues waiting for a link, which the
session's live service (if running) may take and bill against the same database and fake
Stripe; every assertion here holds whether or not its links drain also runs.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid

import pytest
import stripe
from rq import Worker
from rq.registry import StartedJobRegistry

from app import create_app
from dispatch.bootstrap import Services
from dispatch.model import events as ev
from dispatch.model.driver import Driver
from dispatch.ports import PaymentUnavailable
from tests.conftest import (
    RESCUE_NUMBER,
    STRIPE_WEBHOOK_SECRET,
    TWILIO_SID,
    apply_text,
    new_number,
    post_stripe_event,
    sign,
    stripe_event,
)

# Far outside the service area: the dispatcher finds nobody there, so these rescues are never
# offered to other tests' drivers while they are briefly `searching`.
PICKUP = {"lat": -45.0312, "lng": 168.6626, "label": "Test pickup, far away"}
QUOTE = 2800


# --- helpers ----------------------------------------------------------------------------------

def completed_rescue(svc: Services, quote_cents: int = QUOTE, rider: str | None = None,
                     driver: Driver | None = None):
    """A rescue moved to `completed` through the real lifecycle (events, notifications, jobs)."""
    if driver is None:
        driver = Driver.new(new_number(), "Dee Test", "Van")
        svc.drivers.add(driver)
    r = svc.lifecycle.create(request_key=f"test-pay-{uuid.uuid4().hex}", rider_phone=rider or new_number(),
                           pickup=PICKUP, dropoff=None, problem="flat_tire", problem_note="",
                           quote_cents=quote_cents, trip_miles=0, surge=1.0, channel="sms")
    svc.lifecycle.apply(r.id, "assign", by="test", event=ev.DriverAssigned, changes={"driver_id": driver.id},
                        driver_id=driver.id)
    svc.lifecycle.apply(r.id, "arrive", by="test", event=ev.DriverArrived, driver_id=driver.id)
    done, changed = svc.lifecycle.apply(r.id, "complete", by="test", event=ev.RescueCompleted, driver_id=driver.id)
    assert changed and done.status == "completed"
    return done, driver


def doc(svc: Services, rescue_id: str) -> dict:
    return svc.db.rescues.find_one({"_id": rescue_id})


def linked(svc: Services, fake_stripe, quote_cents: int = QUOTE, **kw):
    """A completed rescue with its payment link created; returns (rescue, driver, fake session)."""
    r, d = completed_rescue(svc, quote_cents, **kw)
    assert svc.payments.create_link(r.id) == "sent"
    session_id = doc(svc, r.id)["payment_session_id"]
    return r, d, dict(fake_stripe.sessions[session_id])


def paid_obj(session: dict, payment_intent: str | None = None) -> dict:
    return {**session, "payment_status": "paid", "status": "complete",
            "payment_intent": payment_intent or "pi_" + uuid.uuid4().hex[:24]}


def hook(client):
    return lambda payload, headers: client.post("/stripe/webhook", data=payload, headers=headers)


def send_event(client, event: dict):
    r = post_stripe_event(hook(client), event)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_data(as_text=True).strip()


def texts(svc: Services, rescue_id: str, kind: str) -> list[dict]:
    return list(svc.db.messages.find({"rescue_id": rescue_id, "kind": kind, "direction": "out"}))


def events(svc: Services, rescue_id: str, kind: str) -> list[dict]:
    return list(svc.db.events.find({"rescue_id": rescue_id, "type": kind}))


def ledger_sessions(svc: Services, rescue_id: str) -> list[dict]:
    return list(svc.db.ledger.find({"rescue_id": rescue_id, "kind": "session"}))


def fake_sessions_for(fake_stripe, rescue_id: str) -> list[dict]:
    with fake_stripe.lock:
        return [s for s in fake_stripe.sessions.values() if s["client_reference_id"] == rescue_id]


def checkout_calls(fake_stripe, rescue_id: str):
    return [c for c in fake_stripe.calls("/v1/checkout/sessions") if c.form.get("client_reference_id") == rescue_id]


def refunds_at_stripe(fake_stripe, payment_intent: str) -> list[dict]:
    with fake_stripe.lock:
        return [r for r in fake_stripe.refunds.values() if r["payment_intent"] == payment_intent]


def text_in(client, settings, svc: Services, sender: str, body: str) -> str | None:
    """One signed inbound SMS through the Twilio webhook and its step; returns the reply queued."""
    sid = "SM" + uuid.uuid4().hex
    params = {"MessageSid": sid, "AccountSid": TWILIO_SID, "From": sender, "To": RESCUE_NUMBER,
              "Body": body, "NumMedia": "0"}
    url = settings.public_base_url + "/twilio/sms"
    r = client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": sign(url, params)})
    assert r.status_code == 200, r.get_data(as_text=True)
    apply_text(svc, sid)
    reply = svc.db.messages.find_one({"key": f"reply:{sid}"})
    return reply["body"] if reply else None


def pay(svc: Services, client, fake_stripe, **kw):
    """A rescue paid through a signed checkout.session.completed; returns (rescue, driver, paid object)."""
    r, d, session = linked(svc, fake_stripe, **kw)
    obj = paid_obj(session)
    assert send_event(client, stripe_event("checkout.session.completed", obj)) == "checkout.session.completed"
    assert doc(svc, r.id)["payment_status"] == "paid"
    return r, d, obj


@pytest.fixture
def svc(settings, services):
    """The app's own wiring on the same stores, with an RQ queue no worker listens to, so
    what a test does is not also done concurrently by the live service's workers. (The fake
    Stripe does not serialise two simultaneous requests with one Idempotency-Key as Stripe
    does, so a live worker racing a test's direct call could get a second session from it.)
    `test_link_job_run_by_a_live_worker_too_still_makes_one_link` uses the shared queue."""
    private = Services(dataclasses.replace(settings, queue_name=f"q_private_{uuid.uuid4().hex[:8]}"),
                       services.db, services.redis)
    yield private
    private.scheduler.queue.empty()


@pytest.fixture
def web(svc):
    """The Flask app in-process over `svc` (Stripe configured: the fake)."""
    return create_app(services=svc).test_client()


@pytest.fixture
def no_armed_stripe_failures(fake_stripe):
    yield
    with fake_stripe.lock:
        leftover = list(fake_stripe.failures)
        fake_stripe.failures.clear()
    assert not leftover, f"armed Stripe failures were never consumed: {leftover}"


def wait_for_shared_queue_idle(services, timeout: float = 10.0) -> None:
    """Let the live workers (if any) finish jobs already queued, so they do not take a
    failure this test arms at the fake Stripe."""
    if Worker.count(connection=services.redis, queue=services.scheduler.queue) == 0:
        return  # no live service in this run: nobody else calls the fake Stripe
    deadline = time.time() + timeout
    while time.time() < deadline:
        if services.scheduler.queue.count == 0 and StartedJobRegistry(queue=services.scheduler.queue).count == 0:
            return
        time.sleep(0.05)


# --- the link ---------------------------------------------------------------------------------

def test_checkout_session_is_for_the_quote_in_usd_and_names_the_rescue(svc, fake_stripe):
    r, _ = completed_rescue(svc, quote_cents=3150)
    before = int(time.time())
    assert svc.payments.create_link(r.id) == "sent"
    after = int(time.time())
    d = doc(svc, r.id)
    session = fake_stripe.sessions[d["payment_session_id"]]
    assert session["amount_total"] == 3150 == r.quote_cents
    assert session["currency"] == "usd"
    assert session["mode"] == "payment"
    assert r.code in session["product_name"]
    assert session["metadata"]["rescue_id"] == r.id and session["client_reference_id"] == r.id
    assert before + 30 * 60 <= session["expires_at"] <= after + 24 * 3600
    calls = checkout_calls(fake_stripe, r.id)
    assert calls and {c.idempotency_key for c in calls} == {f"checkout-{r.id}-1"}
    # PaymentIntent events (payment_failed, charges) must carry the rescue id too.
    assert calls[0].form.get("payment_intent_data[metadata][rescue_id]") == r.id
    assert d["payment_status"] == "link_sent" and d["payment_url"] == session["url"]


def test_retried_link_job_makes_one_session_one_event_one_text(svc, fake_stripe):
    r, _ = completed_rescue(svc)
    first = svc.payments.create_link(r.id)
    second = svc.payments.create_link(r.id)
    assert (first, second) == ("sent", "exists")
    [entry] = ledger_sessions(svc, r.id)
    assert len(fake_sessions_for(fake_stripe, r.id)) == 1
    assert len(events(svc, r.id, "payment_link_sent")) == 1
    [link_text] = texts(svc, r.id, "payment_link")
    assert entry["url"] in link_text["body"] and "$28.00" in link_text["body"] and r.code in link_text["body"]
    assert link_text["phone"] == r.rider_phone


def test_concurrent_link_jobs_still_make_one_link(svc, fake_stripe):
    r, _ = completed_rescue(svc)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def job():
        barrier.wait()
        outcomes.append(svc.payments.create_link(r.id))

    threads = [threading.Thread(target=job) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(outcomes) == 4 and outcomes.count("sent") == 1, outcomes
    assert {c.idempotency_key for c in checkout_calls(fake_stripe, r.id)} == {f"checkout-{r.id}-1"}
    # (Not the number of sessions at the fake: unlike Stripe, it does not serialise two
    # simultaneous requests with one Idempotency-Key.)
    assert len(ledger_sessions(svc, r.id)) == 1
    assert len(events(svc, r.id, "payment_link_sent")) == 1
    [link_text] = texts(svc, r.id, "payment_link")
    assert doc(svc, r.id)["payment_url"] in link_text["body"]


def test_link_job_run_by_a_live_worker_too_still_makes_one_link(services, fake_stripe):
    """The shared set: the live service's links drain (when this run has one) takes the rescue
    that completion put there, while the test calls `create_link` directly."""
    r, _ = completed_rescue(services)
    outcomes = [services.payments.create_link(r.id), services.payments.create_link(r.id)]
    wait_for_shared_queue_idle(services)
    assert set(outcomes) <= {"sent", "exists", "raced"} and outcomes[1] != "sent", outcomes
    assert {c.idempotency_key for c in checkout_calls(fake_stripe, r.id)} == {f"checkout-{r.id}-1"}
    assert len(ledger_sessions(services, r.id)) == 1
    assert len(events(services, r.id, "payment_link_sent")) == 1
    [link_text] = texts(services, r.id, "payment_link")
    d = doc(services, r.id)
    assert d["payment_status"] == "link_sent" and d["payment_url"] in link_text["body"]


def test_link_only_for_a_completed_unpaid_rescue(svc, web, fake_stripe):
    open_one = svc.lifecycle.create(request_key=f"test-pay-{uuid.uuid4().hex}", rider_phone=new_number(),
                                       pickup=PICKUP, dropoff=None, problem="flat_tire", problem_note="",
                                       quote_cents=QUOTE, trip_miles=0, surge=1.0, channel="sms")
    assert svc.payments.create_link(open_one.id) == "not-completed"
    assert checkout_calls(fake_stripe, open_one.id) == []
    svc.lifecycle.apply(open_one.id, "cancel", by="test", event=ev.RescueCancelled)
    r, _, _ = pay(svc, web, fake_stripe)
    assert svc.payments.create_link(r.id) == "paid"
    assert len(fake_sessions_for(fake_stripe, r.id)) == 1


def test_stripe_outage_raises_for_a_retry_and_the_retry_reuses_the_key(svc, services, fake_stripe,
                                                                       no_armed_stripe_failures):
    r, _ = completed_rescue(svc)
    wait_for_shared_queue_idle(services)
    fake_stripe.fail_next(3, 500, rescue_id=r.id)  # the client's own two network retries fail as well
    with pytest.raises(PaymentUnavailable):
        svc.payments.create_link(r.id)
    with fake_stripe.lock:
        assert fake_stripe.failures == []
    assert len(checkout_calls(fake_stripe, r.id)) == 3
    d = doc(svc, r.id)
    assert d["payment_status"] == "none" and not d.get("payment_session_id")
    assert ledger_sessions(svc, r.id) == [] and events(svc, r.id, "payment_link_sent") == []

    assert svc.payments.create_link(r.id) == "sent"  # RQ's retry
    calls = checkout_calls(fake_stripe, r.id)
    assert len(calls) == 4 and {c.idempotency_key for c in calls} == {f"checkout-{r.id}-1"}
    assert len(fake_sessions_for(fake_stripe, r.id)) == 1
    assert doc(svc, r.id)["payment_status"] == "link_sent"
    assert len(texts(svc, r.id, "payment_link")) == 1


# --- Stripe events ----------------------------------------------------------------------------

def test_signed_event_is_applied_once(svc, web, fake_stripe):
    r, _, session = linked(svc, fake_stripe)
    event = stripe_event("checkout.session.completed", paid_obj(session))
    assert send_event(web, event) == "checkout.session.completed"
    assert send_event(web, event) == "duplicate"
    d = doc(svc, r.id)
    assert d["payment_status"] == "paid" and d["paid_cents"] == QUOTE and d["refunded_cents"] == 0
    assert len(events(svc, r.id, "payment_paid")) == 1
    [receipt] = texts(svc, r.id, "payment_receipt")
    assert "$28.00" in receipt["body"] and r.code in receipt["body"] and "1 (poor) to 5 (great)" in receipt["body"]
    assert svc.db.stripe_events.count_documents({"_id": event["id"]}) == 1


def _bad_posts(web, event):
    payload = json.dumps(event)
    good = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_WEBHOOK_SECRET)
    stale = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_WEBHOOK_SECRET,
                                                               timestamp=int(time.time()) - 3600)
    wrong = stripe.WebhookSignature.generate_signature_header(payload, "whsec_someone_else")
    not_json = "this is {not json"
    not_json_sig = stripe.WebhookSignature.generate_signature_header(not_json, STRIPE_WEBHOOK_SECRET)
    tampered = payload.replace('"paid"', '"paid" ', 1)
    return {
        "wrong secret": (payload, {"Stripe-Signature": wrong}),
        "missing header": (payload, {}),
        "garbage header": (payload, {"Stripe-Signature": "t=1,v1=abc"}),
        "stale timestamp": (payload, {"Stripe-Signature": stale}),
        "body changed after signing": (tampered, {"Stripe-Signature": good}),
        "signed non-JSON": (not_json, {"Stripe-Signature": not_json_sig}),
    }


@pytest.mark.parametrize("case", ["wrong secret", "missing header", "garbage header", "stale timestamp",
                                  "body changed after signing", "signed non-JSON"])
def test_unverifiable_webhook_is_400_and_changes_nothing(svc, web, fake_stripe, case):
    r, _, session = linked(svc, fake_stripe)
    event = stripe_event("checkout.session.completed", paid_obj(session))
    payload, headers = _bad_posts(web, event)[case]
    resp = web.post("/stripe/webhook", data=payload, headers={**headers, "Content-Type": "application/json"})
    assert resp.status_code == 400
    d = doc(svc, r.id)
    assert d["payment_status"] == "link_sent" and not d.get("paid_cents")
    assert svc.db.stripe_events.count_documents({"_id": event["id"]}) == 0
    assert texts(svc, r.id, "payment_receipt") == []
    # The genuine delivery afterwards is still applied (the rejected one did not burn the id).
    assert send_event(web, event) == "checkout.session.completed"
    assert doc(svc, r.id)["payment_status"] == "paid"


@pytest.mark.parametrize("payload", ["[1, 2]", "null"])
def test_signed_json_that_is_not_an_object_is_a_clean_400(web, payload):
    header = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_WEBHOOK_SECRET)
    resp = web.post("/stripe/webhook", data=payload,
                       headers={"Stripe-Signature": header, "Content-Type": "application/json"})
    assert resp.status_code == 400, (
        f"APP BUG: dispatch/http/payments.py stripe_webhook: a correctly signed body {payload!r} that is "
        f"valid JSON but not an object makes stripe.Webhook.construct_event raise AttributeError (not caught), "
        f"so the webhook answers {resp.status_code} instead of 400; the isinstance(event, dict) check after it "
        f"is never reached")


def test_refund_event_before_completed_event_ends_refunded(svc, web, fake_stripe):
    r, _, session = linked(svc, fake_stripe)
    obj = paid_obj(session)
    charge = {"id": "ch_" + uuid.uuid4().hex[:24], "object": "charge", "amount": QUOTE, "amount_refunded": QUOTE,
              "refunded": True, "payment_intent": obj["payment_intent"], "metadata": {"rescue_id": r.id}}
    assert send_event(web, stripe_event("charge.refunded", charge)) == "charge.refunded"
    assert doc(svc, r.id)["payment_status"] != "paid"
    assert send_event(web, stripe_event("checkout.session.completed", obj)) == "checkout.session.completed"
    d = doc(svc, r.id)
    assert d["payment_status"] == "refunded"
    assert d["paid_cents"] == d["refunded_cents"] == QUOTE


def test_expiry_after_payment_leaves_it_paid(svc, web, fake_stripe):
    r, _, obj = pay(svc, web, fake_stripe)
    expired = {**obj, "status": "expired", "payment_status": "unpaid"}
    assert send_event(web, stripe_event("checkout.session.expired", expired)) == "checkout.session.expired"
    d = doc(svc, r.id)
    assert d["payment_status"] == "paid" and d["paid_cents"] == QUOTE
    assert svc.db.ledger.find_one({"_id": obj["id"]})["status"] == "paid"
    assert events(svc, r.id, "payment_link_expired") == []
    assert texts(svc, r.id, "payment_link_expired") == []


def test_failed_payment_then_success(svc, web, fake_stripe):
    r, _, session = linked(svc, fake_stripe)
    intent = {"id": "pi_" + uuid.uuid4().hex[:24], "object": "payment_intent", "amount": QUOTE,
              "status": "requires_payment_method", "metadata": {"rescue_id": r.id, "rescue_code": r.code}}
    assert send_event(web, stripe_event("payment_intent.payment_failed", intent)) == "payment_intent.payment_failed"
    assert doc(svc, r.id)["payment_status"] == "failed"
    assert len(events(svc, r.id, "payment_failed")) == 1
    [failed] = texts(svc, r.id, "payment_failed")
    assert "PAY" in failed["body"]
    send_event(web, stripe_event("checkout.session.completed", paid_obj(session, intent["id"])))
    d = doc(svc, r.id)
    assert d["payment_status"] == "paid" and d["paid_cents"] == QUOTE
    assert len(texts(svc, r.id, "payment_receipt")) == 1


def test_unpaid_completion_waits_for_async_success(svc, web, fake_stripe):
    r, _, session = linked(svc, fake_stripe)
    pending = {**session, "status": "complete", "payment_status": "unpaid", "payment_intent": "pi_" + uuid.uuid4().hex}
    send_event(web, stripe_event("checkout.session.completed", pending))
    assert doc(svc, r.id)["payment_status"] == "link_sent"
    assert texts(svc, r.id, "payment_receipt") == []
    send_event(web, stripe_event("checkout.session.async_payment_succeeded", {**pending, "payment_status": "paid"}))
    assert doc(svc, r.id)["payment_status"] == "paid"
    assert len(texts(svc, r.id, "payment_receipt")) == 1


def test_expiry_of_the_current_link_tells_the_rider_and_pay_gets_a_second_session(svc, web, settings,
                                                                                  fake_stripe):
    r, _, s1 = linked(svc, fake_stripe)
    expired = {**s1, "status": "expired"}
    assert send_event(web, stripe_event("checkout.session.expired", expired)) == "checkout.session.expired"
    assert len(events(svc, r.id, "payment_link_expired")) == 1
    [note] = texts(svc, r.id, "payment_link_expired")
    assert note["phone"] == r.rider_phone and "PAY" in note["body"] and r.code in note["body"]
    assert svc.db.ledger.find_one({"_id": s1["id"]})["status"] == "expired"

    reply = text_in(web, settings, svc, r.rider_phone, "pay")
    assert reply is not None and "fresh payment link" in reply and r.code in reply
    assert doc(svc, r.id)["payment_attempt"] == 2
    assert svc.payments.create_link(r.id) == "sent"  # the job PAY queued
    assert svc.payments.create_link(r.id) == "exists"
    d = doc(svc, r.id)
    assert d["payment_session_id"] != s1["id"] and d["payment_status"] == "link_sent"
    keys = {c.idempotency_key for c in checkout_calls(fake_stripe, r.id)}
    assert keys == {f"checkout-{r.id}-1", f"checkout-{r.id}-2"}
    assert len(fake_sessions_for(fake_stripe, r.id)) == 2 and len(ledger_sessions(svc, r.id)) == 2
    assert len(events(svc, r.id, "payment_link_sent")) == 2
    links = texts(svc, r.id, "payment_link")
    assert len(links) == 2 and any(d["payment_url"] in t["body"] for t in links)
    # A late re-delivery about the old session says nothing: the rider already has a live link.
    send_event(web, stripe_event("checkout.session.expired", expired))
    assert len(events(svc, r.id, "payment_link_expired")) == 1
    # The new link pays the rescue.
    s2 = fake_stripe.sessions[d["payment_session_id"]]
    send_event(web, stripe_event("checkout.session.completed", paid_obj(s2)))
    d = doc(svc, r.id)
    assert d["payment_status"] == "paid" and d["paid_cents"] == QUOTE


# --- refunds ----------------------------------------------------------------------------------

def test_partial_then_full_refund_through_the_api(svc, web, admin_headers, fake_stripe):
    r, _, obj = pay(svc, web, fake_stripe)
    url = f"/api/rescues/{r.id}/refund"
    keyed = {**admin_headers, "Idempotency-Key": f"k-{uuid.uuid4().hex[:8]}"}
    part = web.post(url, json={"amount_cents": 500}, headers=keyed)
    again = web.post(url, json={"amount_cents": 500}, headers=keyed)
    assert part.status_code == 201 and again.status_code == 201, (part.get_json(), again.get_json())
    assert part.get_json()["id"] == again.get_json()["id"] and part.get_json()["amount_cents"] == 500
    assert [x["amount"] for x in refunds_at_stripe(fake_stripe, obj["payment_intent"])] == [500]
    d = doc(svc, r.id)
    assert d["payment_status"] == "paid" and d["refunded_cents"] == 500
    assert len(texts(svc, r.id, "payment_refunded")) == 1

    full = web.post(url, json={}, headers=admin_headers)
    assert full.status_code == 201 and full.get_json()["amount_cents"] == QUOTE - 500
    assert sorted(x["amount"] for x in refunds_at_stripe(fake_stripe, obj["payment_intent"])) == [500, QUOTE - 500]
    d = doc(svc, r.id)
    assert d["payment_status"] == "refunded" and d["refunded_cents"] == d["paid_cents"] == QUOTE

    for body in ({}, {"amount_cents": 1}):
        nothing_left = web.post(url, json=body, headers=admin_headers)
        assert nothing_left.status_code == 409, nothing_left.get_json()
    assert len(refunds_at_stripe(fake_stripe, obj["payment_intent"])) == 2

    ledger = web.get(f"/api/rescues/{r.id}/payments", headers=admin_headers)
    assert ledger.status_code == 200
    body = ledger.get_json()
    assert body["payment_status"] == "refunded" and body["quote_cents"] == QUOTE
    sessions = [e for e in body["entries"] if e["kind"] == "session"]
    refunds = [e for e in body["entries"] if e["kind"] == "refund"]
    assert body["paid_cents"] == sum(e["amount_cents"] for e in sessions if e["status"] == "paid") == QUOTE
    assert body["refunded_cents"] == sum(e["amount_cents"] for e in refunds if e["status"] == "succeeded") == QUOTE
    assert body["paid_cents"] - body["refunded_cents"] == 0
    assert len(refunds) == 2 and all(e.get("stripe_refund_id") for e in refunds)
    assert [e["type"] for e in body["stripe_events"]] == ["checkout.session.completed"]


@pytest.mark.parametrize("amount", [0, -5, "10", True, 1.5, [500], QUOTE + 1])
def test_bad_refund_amounts_are_400_and_refund_nothing(svc, web, admin_headers, fake_stripe, amount):
    r, _, obj = pay(svc, web, fake_stripe)
    resp = web.post(f"/api/rescues/{r.id}/refund", json={"amount_cents": amount}, headers=admin_headers)
    assert resp.status_code == 400, resp.get_json()
    assert refunds_at_stripe(fake_stripe, obj["payment_intent"]) == []
    d = doc(svc, r.id)
    assert d["payment_status"] == "paid" and d["refunded_cents"] == 0
    assert svc.db.ledger.count_documents({"rescue_id": r.id, "kind": "refund"}) == 0


def test_refund_more_than_remaining_after_a_partial_is_400(svc, web, admin_headers, fake_stripe):
    r, _, obj = pay(svc, web, fake_stripe)
    url = f"/api/rescues/{r.id}/refund"
    assert web.post(url, json={"amount_cents": 500}, headers=admin_headers).status_code == 201
    too_much = web.post(url, json={"amount_cents": QUOTE - 499}, headers=admin_headers)
    assert too_much.status_code == 400 and str(QUOTE - 500) in too_much.get_json()["error"]
    assert doc(svc, r.id)["refunded_cents"] == 500
    exact = web.post(url, json={"amount_cents": QUOTE - 500}, headers=admin_headers)
    assert exact.status_code == 201
    assert sum(x["amount"] for x in refunds_at_stripe(fake_stripe, obj["payment_intent"])) == QUOTE


def test_refund_retried_after_a_stripe_outage_refunds_once(svc, web, services, admin_headers, fake_stripe,
                                                           no_armed_stripe_failures):
    r, _, obj = pay(svc, web, fake_stripe)
    url = f"/api/rescues/{r.id}/refund"
    keyed = {**admin_headers, "Idempotency-Key": f"k-{uuid.uuid4().hex[:8]}"}
    wait_for_shared_queue_idle(services)
    fake_stripe.fail_next(3, 500, path="/v1/refunds")
    down = web.post(url, json={"amount_cents": 700}, headers=keyed)
    assert down.status_code == 503 and "Idempotency-Key" in down.get_json()["error"]
    assert refunds_at_stripe(fake_stripe, obj["payment_intent"]) == []
    d = doc(svc, r.id)
    assert d["payment_status"] == "paid" and d["refunded_cents"] == 0
    assert texts(svc, r.id, "payment_refunded") == []
    retry = web.post(url, json={"amount_cents": 700}, headers=keyed)
    assert retry.status_code == 201 and retry.get_json()["amount_cents"] == 700
    keys = {c.idempotency_key for c in fake_stripe.calls("/v1/refunds")
            if c.form.get("payment_intent") == obj["payment_intent"]}
    assert len(keys) == 1
    assert [x["amount"] for x in refunds_at_stripe(fake_stripe, obj["payment_intent"])] == [700]
    assert doc(svc, r.id)["refunded_cents"] == 700
    assert len(texts(svc, r.id, "payment_refunded")) == 1


def test_refund_needs_a_paid_rescue(svc, web, admin_headers, fake_stripe):
    r, _, _ = linked(svc, fake_stripe)
    resp = web.post(f"/api/rescues/{r.id}/refund", json={}, headers=admin_headers)
    assert resp.status_code == 409
    assert web.post("/api/rescues/no-such-rescue/refund", json={}, headers=admin_headers).status_code == 404
    assert web.get("/api/rescues/no-such-rescue/payments", headers=admin_headers).status_code == 404
    assert web.post(f"/api/rescues/{r.id}/refund", json={}).status_code == 401


def test_a_rider_who_paid_both_links_can_be_refunded_per_payment(svc, web, settings, admin_headers,
                                                                 fake_stripe):
    """A link about to expire is replaced on PAY; a rider can still pay both before it does."""
    r, _, s1 = linked(svc, fake_stripe)
    svc.db.ledger.update_one({"_id": s1["id"]}, {"$set": {"expires_at": int(time.time()) + 60}})
    assert "fresh payment link" in text_in(web, settings, svc, r.rider_phone, "PAY")
    assert svc.payments.create_link(r.id) == "sent"
    s2 = fake_stripe.sessions[doc(svc, r.id)["payment_session_id"]]
    assert s2["id"] != s1["id"]
    p1, p2 = paid_obj(s1), paid_obj(s2)
    send_event(web, stripe_event("checkout.session.completed", p1))
    send_event(web, stripe_event("checkout.session.completed", p2))
    assert doc(svc, r.id)["paid_cents"] == 2 * QUOTE
    resp = web.post(f"/api/rescues/{r.id}/refund", json={}, headers=admin_headers)
    assert resp.status_code == 201
    per_intent = {pi: sum(x["amount"] for x in refunds_at_stripe(fake_stripe, pi))
                  for pi in (p1["payment_intent"], p2["payment_intent"])}
    assert sorted(per_intent.values()) == [QUOTE, QUOTE], (
        f"APP BUG: dispatch/payments.py Payments.refund refunds the whole remaining {2 * QUOTE} cents against "
        f"the first paid session's PaymentIntent (ledger.find_one(... status 'paid')), more than was charged on "
        f"it: refunds per PaymentIntent {per_intent}; real Stripe rejects such a refund, so a double payment "
        f"can never be refunded through the API")


# --- ratings ----------------------------------------------------------------------------------

def test_rating_after_the_receipt(svc, web, settings, admin_headers, fake_stripe):
    r, driver, _ = pay(svc, web, fake_stripe)
    rider = r.rider_phone

    out_of_range = text_in(web, settings, svc, rider, "9")
    assert out_of_range is not None and "1 (poor) to 5 (great)" in out_of_range
    assert doc(svc, r.id).get("rating") is None
    assert events(svc, r.id, "rescue_rated") == []

    thanks = text_in(web, settings, svc, rider, "5 great")
    assert thanks is not None and "Thanks for rating" in thanks and "5/5" in thanks
    shown = web.get(f"/api/rescues/{r.id}", headers=admin_headers).get_json()
    assert shown["rating"] == 5 and shown["rating_comment"] == "great"
    d = web.get(f"/api/drivers/{driver.id}", headers=admin_headers).get_json()
    assert d["rating"] == 5.0 and d["rating_count"] == 1

    second = text_in(web, settings, svc, rider, "1 actually terrible")
    assert second is None or "Thanks for rating" not in second
    shown = web.get(f"/api/rescues/{r.id}", headers=admin_headers).get_json()
    assert shown["rating"] == 5 and shown["rating_comment"] == "great"
    d = web.get(f"/api/drivers/{driver.id}", headers=admin_headers).get_json()
    assert d["rating"] == 5.0 and d["rating_count"] == 1
    assert len(events(svc, r.id, "rescue_rated")) == 1
    assert svc.payments.rate(r.id, 1, "a retried effect") is False  # the store refuses a second one too
    assert doc(svc, r.id)["rating"] == 5 and svc.drivers.get(driver.id).rating_count == 1

    # The driver's running average over a second rescue.
    r2, _, _ = pay(svc, web, fake_stripe, driver=driver)
    assert "Thanks for rating" in text_in(web, settings, svc, r2.rider_phone, "2/5 slow")
    d = web.get(f"/api/drivers/{driver.id}", headers=admin_headers).get_json()
    assert d["rating"] == 3.5 and d["rating_count"] == 2
    assert doc(svc, r2.id)["rating_comment"] == "slow"


def test_non_number_after_the_receipt_starts_a_new_intake(svc, web, settings, fake_stripe):
    r, driver, _ = pay(svc, web, fake_stripe)
    reply = text_in(web, settings, svc, r.rider_phone, "hello")
    assert reply is not None and "Where are you?" in reply and "Thanks for rating" not in reply
    assert doc(svc, r.id).get("rating") is None
    assert svc.db.conversations.find_one({"_id": r.rider_phone})["state"] == "ask_location"
    assert svc.drivers.get(driver.id).rating_count == 0


def test_a_number_before_any_receipt_is_not_a_rating(svc, web, settings, fake_stripe):
    r, driver, _ = linked(svc, fake_stripe)
    reply = text_in(web, settings, svc, r.rider_phone, "5")
    assert reply is None or "Thanks for rating" not in reply
    assert doc(svc, r.id).get("rating") is None
    assert svc.drivers.get(driver.id).rating_count == 0


# --- sandbox payments -------------------------------------------------------------------------

@pytest.fixture
def sandbox_services(settings, services):
    """No Stripe key. Its own queue, so no live worker (which has Stripe configured) runs its jobs."""
    svc = Services(dataclasses.replace(settings, stripe_secret_key=None,
                                       queue_name=f"q_sandbox_{uuid.uuid4().hex[:8]}"),
                   services.db, services.redis)
    yield svc
    svc.scheduler.queue.empty()


@pytest.fixture
def sandbox_client(sandbox_services):
    return create_app(services=sandbox_services).test_client()


def test_sandbox_page_completes_the_payment_through_apply_event(sandbox_services, sandbox_client, web,
                                                                fake_stripe):
    svc = sandbox_services
    r, _ = completed_rescue(svc)
    assert svc.payments.create_link(r.id) == "sent"
    d = doc(svc, r.id)
    session_id = d["payment_session_id"]
    assert session_id.startswith("cs_sandbox_") and d["payment_url"].endswith(f"/sandbox/pay/{session_id}")
    assert checkout_calls(fake_stripe, r.id) == []
    [link] = texts(svc, r.id, "payment_link")
    assert d["payment_url"] in link["body"]

    page = sandbox_client.get(f"/sandbox/pay/{session_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<title>TEST PAYMENT" in html and "no money moves" in html and "$28.00" in html and r.code in html
    assert "<form" in html

    # Stripe configured: the page does not exist.
    assert web.get(f"/sandbox/pay/{session_id}").status_code == 404
    assert web.post(f"/sandbox/pay/{session_id}").status_code == 404
    assert doc(svc, r.id)["payment_status"] == "link_sent"

    done = sandbox_client.post(f"/sandbox/pay/{session_id}")
    assert done.status_code == 200 and "Test payment recorded" in done.get_data(as_text=True)
    d = doc(svc, r.id)
    assert d["payment_status"] == "paid" and d["paid_cents"] == QUOTE
    [receipt] = texts(svc, r.id, "payment_receipt")
    assert "$28.00" in receipt["body"]
    [seen] = list(svc.db.stripe_events.find({"rescue_id": r.id}))
    assert seen["type"] == "checkout.session.completed" and seen["object_id"] == session_id

    again = sandbox_client.post(f"/sandbox/pay/{session_id}")
    assert again.status_code == 200
    assert doc(svc, r.id)["paid_cents"] == QUOTE and len(texts(svc, r.id, "payment_receipt")) == 1
    assert "<form" not in sandbox_client.get(f"/sandbox/pay/{session_id}").get_data(as_text=True)


def test_sandbox_unknown_session_is_404(sandbox_client):
    assert sandbox_client.get("/sandbox/pay/cs_sandbox_nope").status_code == 404
    assert sandbox_client.post("/sandbox/pay/cs_sandbox_nope").status_code == 404


def test_pay_while_the_link_still_works_resends_the_same_link(svc, web, settings, fake_stripe):
    """No second way to pay while the first link is good: the rider gets the same URL again."""
    r, _, s1 = linked(svc, fake_stripe)
    before = len(fake_stripe.calls("/v1/checkout/sessions"))
    assert "fresh payment link" in text_in(web, settings, svc, r.rider_phone, "PAY")
    sent = [e for e in svc.events.timeline(r.id) if e["type"] == "payment_link_sent"]
    assert len(sent) == 2 and {e["data"]["url"] for e in sent} == {s1["url"]}
    assert len(fake_stripe.calls("/v1/checkout/sessions")) == before
