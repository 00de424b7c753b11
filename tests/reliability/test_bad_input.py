"""Bad input: hypothesis fuzzing of the voice webhooks (signed random forms) and the Stripe
webhook (validly signed random JSON): never a 5xx. Plus odd callers: anonymous, `client:`
identities and short codes. The admin API is held to its OpenAPI document by schemathesis
(tests/reliability/test_api_schema.py).

The SMS and status webhooks have their own fuzz tests (tests/conversations/test_fuzz.py).
The fuzzed apps run in-process against the real Redis and MongoDB; the voice one has no
external geocoder (Nominatim is held to one lookup a second) and no flood limit, so the
examples reach deep into the flows instead of being refused early.
"""
from __future__ import annotations

import dataclasses
import json
import time
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app import create_app
from dispatch.bootstrap import Services
from flows import rider as rider_flow
from tests.conftest import RESCUE_NUMBER, new_number, post_stripe_event, sign
from tests.e2e.test_dispatch import NEAR_UNION_SQ, book, online_driver
from tests.reliability.support import REPEAT, call_params, signed_post, sms_params, texts_with

try:  # `slate` moved to tests/conftest.py; older trees define it next to the dispatch tests
    from tests.e2e.test_dispatch import slate  # noqa: F401
except ImportError:
    pass

EXAMPLES = 60 * REPEAT
FUZZ = hsettings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)

any_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300)
short_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=24)
hex32 = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


@dataclasses.dataclass
class World:
    """Real records the fuzzed requests can point at, so they reach past 'not found'."""
    rider: str
    driver: str
    rescue_id: str
    offer_id: str
    driver_id: str
    intake_rider: str
    numbers: list[str]


@pytest.fixture
def world(slate, phone, live_service, services) -> World:
    driver, rider, intake = phone(), phone(), phone()
    d = online_driver(live_service, driver, "Fuzz Driver", NEAR_UNION_SQ)
    code = book(rider)
    driver.wait_for(f"offer {code}")
    driver.ask("Y")
    intake.ask("hi")
    r = services.rescues.open_for_rider(rider.number)
    offer = services.db.offers.find_one({"rescue_id": r.id})
    return World(rider.number, driver.number, r.id, offer["_id"], d["id"], intake.number,
                 [rider.number, driver.number, intake.number, new_number(), new_number()])


@pytest.fixture
def fuzz_app(services, settings):
    quick = Services(dataclasses.replace(settings, geocoder="none", inbound_rate_limit=10**6), services.db,
                     services.redis)
    return create_app(services=quick).test_client()


# -- voice ---------------------------------------------------------------------------------------
VOICE_ROUTES = ["incoming", "intake", "rider", "driver", "dial-done"]


def voice_route(kind: str, w: World):
    ids = st.sampled_from([w.rescue_id, w.offer_id, w.driver_id, "", "nope"]) | short_text
    tries = st.sampled_from(["1", "2", "3", "0", "-1", "x", "99999999999999999999", ""]) | short_text
    states = st.sampled_from(rider_flow.STATES + ["", "bogus"]) | short_text
    def q(**kw) -> str:  # "?query", or nothing when it is empty (as Twilio calls an action URL)
        query = urlencode({k: v for k, v in kw.items() if v is not None})
        return f"?{query}" if query else ""
    return {
        "incoming": st.just("/twilio/voice"),
        "intake": st.builds(lambda e, t: "/twilio/voice/intake" + q(expect=e, tries=t), states, st.none() | tries),
        "rider": st.builds(lambda r: "/twilio/voice/rider" + q(rescue=r), st.none() | ids),
        "driver": st.builds(lambda o, j: "/twilio/voice/driver" + q(offer=o, job=j), st.none() | ids, st.none() | ids),
        "dial-done": st.builds(lambda r, to: "/twilio/voice/dial-done" + q(rescue=r, to=to), st.none() | ids,
                               st.none() | st.sampled_from(["rider", "driver", ""]) | short_text),
    }[kind]


def voice_form(w: World):
    callers = st.sampled_from(w.numbers + ["anonymous", "client:alice", "12345", "+1555", "", " ", "+442079460018",
                                           w.rider[1:], "(212) 555-01x9"]) | short_text
    digits = st.sampled_from(["1", "2", "3", "4", "5", "9", "0", "*", "#", "", "11", "1#"]) | short_text
    speech = st.sampled_from(["Union Square", "Times Square.", "Coney Island", "main street", "yes", "stop", ""]) \
        | any_text
    fields = {
        "CallSid": hex32.map(lambda h: "CA" + h) | short_text,
        "From": callers,
        "To": st.sampled_from([RESCUE_NUMBER, ""]) | short_text,
        "Digits": digits,
        "SpeechResult": speech,
        "Confidence": st.sampled_from(["0.9", "0", "-1", "NaN"]) | short_text,
        "DialCallStatus": st.sampled_from(["completed", "no-answer", "busy", "failed", "canceled", ""]) | short_text,
        "DialCallDuration": st.sampled_from(["0", "42", "-5", "9" * 30]) | short_text,
        "CallStatus": st.sampled_from(["in-progress", "ringing", "completed"]) | short_text,
        "AccountSid": st.just("AC" + "0" * 32) | short_text,
    }
    return st.fixed_dictionaries({"CallSid": fields["CallSid"], "From": fields["From"]},
                                 optional={k: v for k, v in fields.items() if k not in ("CallSid", "From")}).flatmap(
        lambda form: st.dictionaries(short_text, short_text, max_size=3).map(lambda extra: {**extra, **form}))


@pytest.mark.parametrize("kind", VOICE_ROUTES)
def test_voice_webhooks_never_5xx_with_signed_random_forms(kind, world, fuzz_app, settings, services, table):
    count = {"n": 0, "ok": 0}

    @FUZZ
    @given(data=st.data())
    def run(data):
        path = data.draw(voice_route(kind, world), label="path")
        form = data.draw(voice_form(world), label="form")
        url = settings.public_base_url + path
        r = fuzz_app.post(path, data=form, headers={"X-Twilio-Signature": sign(url, form)})
        count["n"] += 1
        assert r.status_code < 500, f"APP BUG: POST {path} answered {r.status_code} for the signed form {form!r}"
        assert r.status_code != 403, f"a correctly signed request was refused: {path} {form!r}"
        if r.status_code == 200:
            count["ok"] += 1
            assert r.mimetype == "text/xml", (path, form, r.mimetype)
            ET.fromstring(r.get_data(as_text=True))

    try:
        run()
        for number in world.numbers:  # nothing stored is damaged: every conversation is still a flow state
            convo = services.db.conversations.find_one({"_id": number})
            assert convo is None or convo["state"] in rider_flow.STATES, convo
    finally:
        table.record("Fuzzed voice webhooks (hypothesis)",
                     "signed random forms (random CallSid, caller, Digits, SpeechResult, DialCallStatus, extra "
                     "fields) and query strings on /twilio/voice, /intake, /rider, /driver, /dial-done",
                     times=count["n"], expected=count["n"], lost=0, duplicated=0,
                     counted="answers < 500 (200 TwiML that parses, or a 4xx)")


# -- Stripe --------------------------------------------------------------------------------------
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63, max_value=2**70)
           | st.floats() | short_text)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(short_text, c, max_size=3),
                           max_leaves=8)
EVENT_TYPES = ["checkout.session.completed", "checkout.session.async_payment_succeeded", "checkout.session.expired",
               "payment_intent.payment_failed", "charge.refunded", "customer.created"]


def stripe_payloads(w: World):
    rescue_ref = st.sampled_from([w.rescue_id]) | json_values
    obj = st.fixed_dictionaries({}, optional={
        "id": st.sampled_from(["cs_test_" + uuid.uuid4().hex]) | json_values,
        "object": st.sampled_from(["checkout.session", "payment_intent", "charge"]) | json_values,
        "payment_status": st.sampled_from(["paid", "unpaid"]) | json_values,
        "status": st.sampled_from(["complete", "expired", "open"]) | json_values,
        "amount_total": st.integers(min_value=0, max_value=10**6) | json_values,
        "amount_refunded": st.integers(min_value=0, max_value=10**6) | json_values,
        "payment_intent": st.sampled_from(["pi_" + uuid.uuid4().hex[:20]]) | json_values,
        "metadata": st.fixed_dictionaries({}, optional={"rescue_id": rescue_ref}) | json_values,
        "client_reference_id": rescue_ref,
    })
    event = st.fixed_dictionaries({"id": hex32.map(lambda h: "evt_" + h) | json_values,
                                   "type": st.sampled_from(EVENT_TYPES) | json_values},
                                  optional={"object": st.just("event"), "created": st.integers(),
                                            "data": st.fixed_dictionaries({"object": obj | json_values}) | json_values})
    return event | json_values


def test_stripe_webhook_never_5xx_with_validly_signed_random_json(world, client, table):
    count = {"n": 0}

    @FUZZ
    @given(payload=stripe_payloads(world))
    def run(payload):
        raw = json.dumps(payload)
        r = post_stripe_event(lambda p, h: client.post("/stripe/webhook", data=p, headers=h), payload)
        count["n"] += 1
        assert r.status_code < 500, (
            f"APP BUG: POST /stripe/webhook answered {r.status_code} for a validly signed payload {raw[:600]}")

    try:
        run()
    finally:
        table.record("Fuzzed Stripe webhook (hypothesis)",
                     "validly signed random JSON: event-shaped (real rescue id, odd types for every field) and "
                     "arbitrary values", times=count["n"], expected=count["n"], lost=0, duplicated=0,
                     counted="answers < 500")


# -- odd callers -----------------------------------------------------------------------------------
ODD = ["anonymous", "client:alice", "12345", "266696687", "+1555", "Restricted"]


def test_odd_callers_and_senders_get_a_calm_answer_and_nothing_is_sent(live_service, services, settings, fake_twilio,
                                                                       table):
    sent_before = len(fake_twilio.sent)
    answered = 0
    for who in ODD:
        call = signed_post(live_service.url, settings.public_base_url, "/twilio/voice",
                           call_params("CA" + uuid.uuid4().hex, who))
        assert call.status_code == 200 and call.headers["content-type"].startswith("text/xml"), (who, call.text)
        twiml = ET.fromstring(call.text)
        assert twiml.find("Hangup") is not None and "phone number" in " ".join(s.text or "" for s in twiml.iter("Say"))
        params = sms_params(who, "flat tire at Union Square")
        sms = signed_post(live_service.url, settings.public_base_url, "/twilio/sms", params)
        assert sms.status_code == 200 and sms.text.strip().endswith("<Response />"), (who, sms.text)
        assert services.db.messages.find_one({"key": f"in:{params['MessageSid']}"}) is not None
        answered += 2
    time.sleep(1.0)
    to_odd = [t for t in fake_twilio.sent[sent_before:] if t.to.strip() in ODD or not t.to.startswith("+")]
    rescues = services.db.rescues.count_documents({"rider_phone": {"$in": ODD}})
    table.record("Odd callers and senders", f"calls and texts from {', '.join(ODD)}", times=answered,
                 expected=answered, lost=0, duplicated=len(to_odd) + rescues,
                 counted="200 TwiML answers; texts attempted to them and rescues for them (must be 0)")
    assert not to_odd, f"APP BUG: texts sent to non-numbers: {to_odd}"
    assert rescues == 0
    assert not texts_with(fake_twilio, "anonymous", "")


# -- what the fuzzing found, pinned down ---------------------------------------------------------------
def _signed_stripe(client, event):
    return post_stripe_event(lambda p, h: client.post("/stripe/webhook", data=p, headers=h), event)


def test_signed_stripe_event_whose_data_is_not_an_object_is_not_a_500(client, table):
    answers = {repr(data): _signed_stripe(client, {"id": "evt_" + uuid.uuid4().hex,
                                                   "type": "checkout.session.completed", "data": data}).status_code
               for data in ([1], "text", True, 7)}
    bad = {k: v for k, v in answers.items() if v >= 500}
    table.record("Signed Stripe event whose `data` is not an object", "validly signed events with data = [1], "
                 "\"text\", true, 7", times=len(answers), expected=len(answers), lost=len(bad), duplicated=0,
                 counted="answers < 500")
    assert not bad, (f"APP BUG: POST /stripe/webhook answers 500 for a validly signed event whose `data` is not a JSON "
                     f"object ({bad}): Payments.apply_event (dispatch/payments.py:117) calls .get() on it "
                     f"(AttributeError) instead of treating the event as malformed.")


def test_signed_stripe_event_with_an_integer_beyond_64_bits_is_not_a_500(client, table):
    shapes = {
        "data.object.id": {"id": 2**64, "object": "checkout.session"},
        "data.object.payment_intent": {"object": "checkout.session", "payment_intent": 2**64},
    }
    answers = {}
    for where, obj in shapes.items():
        event = {"id": "evt_" + uuid.uuid4().hex, "type": "checkout.session.completed", "data": {"object": obj}}
        answers[where] = _signed_stripe(client, event).status_code
    bad = {k: v for k, v in answers.items() if v >= 500}
    table.record("Signed Stripe event with an integer beyond 64 bits", "validly signed events with 2**64 as the "
                 "session id or payment_intent", times=len(answers), expected=len(answers), lost=len(bad), duplicated=0,
                 counted="answers < 500")
    assert not bad, (f"APP BUG: POST /stripe/webhook answers 500 for validly signed events holding an integer MongoDB "
                     f"cannot store ({bad}): Payments.apply_event stores obj['id'] as object_id "
                     f"(dispatch/payments.py:122) and Payments._rescue_of queries the ledger with the payment_intent "
                     f"(dispatch/payments.py:153); both raise OverflowError ('MongoDB can only handle up to "
                     f"8-byte ints'), "
                     f"which nothing catches.")


def test_admin_patch_with_a_huge_integer_location_is_a_400(world, client, admin_headers, table):
    body = '{"location": {"lat": 1' + "0" * 400 + ', "lng": -73.99}}'
    r = client.patch(f"/api/drivers/{world.driver_id}", data=body,
                     headers={**admin_headers, "Content-Type": "application/json"})
    table.record("Admin PATCH with a huge integer coordinate", "PATCH /api/drivers/<id> with lat = 10**400 (valid "
                 "JSON)", times=1, expected=1, lost=int(r.status_code >= 500), duplicated=0, counted="a 400 answer")
    assert r.status_code == 400, (
        f"APP BUG: PATCH /api/drivers/<id> with {{\"location\": {{\"lat\": 10**400, ...}}}} answered {r.status_code}: "
        f"dispatch/http/api.py calls float() on the integer, which raises OverflowError "
        f"('int too large to convert to "
        f"float'); only TypeError, KeyError and ValueError are caught.")
