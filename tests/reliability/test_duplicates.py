"""Duplicates: every webhook delivered 2-5 times, concurrently from threads, has one effect.

Twilio redelivers a webhook it thinks failed and Stripe delivers events at least once, so
the same MessageSid, CallSid step, status callback or Stripe event id can arrive several
times at once across both web processes. Counted at the fakes: one reply text, one
rescue, one assignment, one receipt.
"""
from __future__ import annotations

import random
import re
import time
import uuid

import httpx

from tests.conftest import TWILIO_SID, post_stripe_event, stripe_event
from tests.conversations.test_voice import Caller
from tests.e2e.test_dispatch import NEAR_UNION_SQ, book, online_driver, rescue
from tests.reliability.support import LiveClient, at_once, call_params, reps, signed_post, tally, texts_with

try:  # `slate` moved to tests/conftest.py; older trees define it next to the dispatch tests
    from tests.e2e.test_dispatch import slate  # noqa: F401
except ImportError:
    pass

RNG = random.Random()


def _copies() -> int:
    return RNG.randint(2, 5)


def test_sms_delivered_2_to_5_times_at_once_is_applied_once(slate, phone, live_service, services, fake_twilio, table):
    """Each step of a booking, and the driver's accept, delivered 2-5 times from threads at once."""
    rounds = reps(1)
    extra = expected = lost = duplicated = 0
    for i in range(rounds):
        driver, rider = phone(), phone()
        online_driver(live_service, driver, f"Dup{i}", NEAR_UNION_SQ)
        for body in ("flat tire at Union Square", "skip", "y"):
            sid, k = "SM" + uuid.uuid4().hex, _copies()
            codes = at_once([lambda: rider.text(body, sid=sid).status_code] * k)
            assert codes == [200] * k, codes
            extra += k - 1
            assert services.db.messages.count_documents({"key": f"in:{sid}"}) == 1
            rider.next_reply()
        r = services.rescues.open_for_rider(rider.number)
        assert r is not None, "APP BUG: no rescue after a booking delivered several times"
        driver.wait_for(f"offer {r.code}")
        sid, k = "SM" + uuid.uuid4().hex, _copies()
        codes = at_once([lambda: driver.text("Y", sid=sid).status_code] * k)
        assert codes == [200] * k, codes
        extra += k - 1
        rider.wait_for("on the way")
        time.sleep(0.8)  # time for any duplicate effect to surface at the fake
        counts = {
            "rider texts": (4, len(rider.replies())),                    # where to?, quote, booked, on the way
            "booked texts": (1, len(texts_with(fake_twilio, rider.number, "Booked!"))),
            "rescues": (1, services.db.rescues.count_documents({"rider_phone": rider.number})),
            "assignments": (1, services.db.events.count_documents({"rescue_id": r.id, "type": "driver_assigned"})),
            "job texts": (1, len(texts_with(fake_twilio, driver.number, "You've got"))),
            "conversation steps": (3, services.db.conversations.find_one({"_id": rider.number})["version"]),
        }
        for name, (want, got) in counts.items():
            miss, dup = tally(want, got)
            expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
            assert (miss, dup) == (0, 0), f"APP BUG: {name}: expected {want}, got {got} (round {i})"
    table.record("Duplicate SMS webhook (same MessageSid)",
                 "each booking step and the driver's Y posted 2-5 times at once from threads, signed, "
                 "through both gunicorn workers", times=extra, expected=expected, lost=lost, duplicated=duplicated,
                 counted="texts at the fake Twilio, rescues, driver_assigned events, conversation versions")


def _post_step(live_service, settings, call_sid: str, caller: str, path: str, **form: str) -> tuple[int, str]:
    r = signed_post(live_service.url, settings.public_base_url, path, call_params(call_sid, caller, **form))
    return r.status_code, r.text


def _deliver(live_service, settings, call_sid, caller, path, k, **form) -> str:
    answers = at_once([lambda: _post_step(live_service, settings, call_sid, caller, path, **form)] * k)
    codes = {a[0] for a in answers}
    assert codes == {200}, answers
    bodies = {a[1] for a in answers}
    assert len(bodies) == 1, f"APP BUG: {k} deliveries of one CallSid step got different TwiML: {bodies}"
    return bodies.pop()


def _action(twiml: str, settings) -> str:
    match = re.search(r'action="([^"]+)"', twiml)
    assert match, twiml
    return match.group(1).replace("&amp;", "&")[len(settings.public_base_url):]


def test_voice_steps_delivered_2_to_5_times_at_once_have_one_effect(slate, phone, live_service, services, settings,
                                                                    fake_twilio, table):
    """A whole voice intake where every CallSid step arrives 2-5 times at once, then a
    masked call whose dial-done callback arrives 2-5 times."""
    rounds = reps(1)
    extra = expected = lost = duplicated = 0
    for i in range(rounds):
        driver, rider = phone(), phone()
        online_driver(live_service, driver, f"Voice{i}", NEAR_UNION_SQ)
        call = "CA" + uuid.uuid4().hex
        path, twiml = "/twilio/voice", None
        for form in ({}, {"SpeechResult": "Union Square", "Confidence": "0.9"}, {"Digits": "1"}, {"Digits": "1"},
                     {"Digits": "1"}):
            k = _copies()
            twiml = _deliver(live_service, settings, call, rider.number, path, k, **form)
            extra += k - 1
            if "<Gather" in twiml:
                path = _action(twiml, settings)
        assert "booked" in twiml, twiml
        r = services.rescues.open_for_rider(rider.number)
        driver.wait_for(f"offer {r.code}")
        driver.ask("Y")
        rider.wait_for("on the way")
        # The rider calls the driver; the masked call is not answered; Twilio reports it 2-5 times.
        c = Caller(LiveClient(live_service.url), settings, rider.number)
        dial = c.answer(c.call(), Digits="1")
        assert dial.find("Dial") is not None, c.last_raw
        k = _copies()
        _deliver(live_service, settings, c.call_sid, rider.number,
                 dial.find("Dial").get("action")[len(settings.public_base_url):], k,
                 DialCallStatus="no-answer", DialCallDuration="0")
        extra += k - 1
        driver.wait_for("Your rider tried to call")
        time.sleep(0.8)
        counts = {
            "rescues": (1, services.db.rescues.count_documents({"rider_phone": rider.number})),
            "booked texts": (1, len(texts_with(fake_twilio, rider.number, "Booked!"))),
            "missed-call texts": (1, len(texts_with(fake_twilio, driver.number, "tried to call"))),
            "call_failed events": (1, services.db.events.count_documents({"rescue_id": r.id, "type": "call_failed"})),
        }
        for name, (want, got) in counts.items():
            miss, dup = tally(want, got)
            expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
            assert (miss, dup) == (0, 0), f"APP BUG: voice {name}: expected {want}, got {got} (round {i})"
    table.record("Duplicate voice webhook (same CallSid step)",
                 "every step of a voice intake (call, speech, keypad x3) and the dial-done callback posted "
                 "2-5 times at once", times=extra, expected=expected, lost=lost, duplicated=duplicated,
                 counted="identical TwiML per step, rescues, Booked! texts, missed-call texts, call_failed events")


def test_status_callbacks_delivered_2_to_5_times_at_once_change_nothing_else(phone, live_service, services, settings,
                                                                             fake_twilio, table):
    rounds = reps(2)
    extra = expected = lost = duplicated = 0
    for _ in range(rounds):
        rider = phone()
        rider.ask("hello")
        sid = fake_twilio.texts_to(rider.number)[-1].sid
        sent_before = len(fake_twilio.sent)
        calls = []
        for status in ("sent", "delivered", "sent"):
            k = _copies()
            extra += k - 1
            calls += [lambda s=status: signed_post(live_service.url, settings.public_base_url, "/twilio/status",
                                                   {"MessageSid": sid, "MessageStatus": s, "AccountSid": TWILIO_SID,
                                                    "To": rider.number}).status_code] * k
        RNG.shuffle(calls)
        codes = at_once(calls)
        assert set(codes) == {200}, codes
        msg = services.db.messages.find_one({"twilio_sid": sid})
        assert msg["status"] == "delivered", f"APP BUG: status went to {msg['status']} after duplicate callbacks"
        assert services.db.receipts.count_documents({"_id": sid}) == 1
        assert services.db.messages.count_documents({"twilio_sid": sid}) == 1
        inbound = services.db.messages.count_documents({"phone": rider.number, "direction": "in"})
        time.sleep(0.3)
        new_texts = len(fake_twilio.sent) - sent_before
        want_records, got_records = 2, services.db.messages.count_documents({"phone": rider.number})
        for want, got in ((0, new_texts), (1, inbound), (want_records, got_records)):
            miss, dup = tally(want, got)
            expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
            assert (miss, dup) == (0, 0), f"APP BUG: status callbacks: expected {want}, got {got}"
    table.record("Duplicate status callback (same MessageSid + status)",
                 "sent / delivered / sent callbacks each posted 2-5 times, shuffled, at once",
                 times=extra, expected=expected, lost=lost, duplicated=duplicated,
                 counted="final status stays `delivered`, one receipt, no new texts or message records")


def _paid_link(live_service, fake_stripe, rider, driver, name: str) -> tuple[dict, dict]:
    online_driver(live_service, driver, name, NEAR_UNION_SQ)
    code = book(rider)
    driver.wait_for(f"offer {code}")
    driver.ask("Y")
    driver.ask("ARRIVED")
    driver.ask("DONE")
    link = rider.wait_for("Pay $", timeout=15)
    session_id = re.search(r"https://\S+", link).group(0).rsplit("/", 1)[1]
    return rescue(live_service, code), fake_stripe.sessions[session_id]


def test_stripe_event_delivered_2_to_5_times_at_once_is_applied_once(slate, phone, live_service, services,
                                                                     fake_stripe, fake_twilio, table):
    rounds = reps(1)
    extra = expected = lost = duplicated = 0
    url = f"{live_service.url}/stripe/webhook"

    def post(payload, headers):
        return httpx.post(url, content=payload, headers=headers, timeout=30)

    for i in range(rounds):
        driver, rider = phone(), phone()
        r, session = _paid_link(live_service, fake_stripe, rider, driver, f"Pay{i}")
        paid = {**session, "payment_status": "paid", "status": "complete",
                "payment_intent": "pi_" + uuid.uuid4().hex[:20]}
        event = stripe_event("checkout.session.completed", paid)
        k = _copies()
        answers = at_once([lambda: post_stripe_event(post, event)] * k)
        assert {a.status_code for a in answers} == {200}, [(a.status_code, a.text) for a in answers]
        # Stripe may also report the same payment as a second event type: still one payment.
        again = post_stripe_event(post, stripe_event("checkout.session.async_payment_succeeded", paid))
        assert again.status_code == 200
        extra += k
        rider.wait_for("Receipt:")
        time.sleep(0.8)
        done = rescue(live_service, r["code"])
        counts = {
            "receipts": (1, len(texts_with(fake_twilio, rider.number, "Receipt:"))),
            "payment_paid events": (1, [e["type"] for e in done["timeline"]].count("payment_paid")),
            "recorded Stripe events": (2, services.db.stripe_events.count_documents({"rescue_id": r["id"]})),
            "cents paid (x quote)": (1, done["paid_cents"] // max(1, done["quote_cents"])),
        }
        assert done["payment_status"] == "paid"
        for name, (want, got) in counts.items():
            miss, dup = tally(want, got)
            expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
            assert (miss, dup) == (0, 0), f"APP BUG: Stripe {name}: expected {want}, got {got}"
    table.record("Duplicate Stripe event (same event id)",
                 "signed checkout.session.completed posted 2-5 times at once, plus the same payment as "
                 "async_payment_succeeded", times=extra, expected=expected, lost=lost, duplicated=duplicated,
                 counted="receipt texts, payment_paid events, stored events, paid_cents vs quote")
