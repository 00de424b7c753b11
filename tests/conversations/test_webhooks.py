"""The SMS and status webhooks in-process (Flask test client) against real Redis and MongoDB."""
from __future__ import annotations

import dataclasses
import uuid

import pytest

from app import create_app
from dispatch.services import Services
from tests.conftest import RESCUE_NUMBER, TWILIO_SID, new_number, sign


def sms_params(sender: str, body: str = "hi", sid: str | None = None) -> dict[str, str]:
    sid = sid or "SM" + uuid.uuid4().hex
    return {"MessageSid": sid, "AccountSid": TWILIO_SID, "From": sender, "To": RESCUE_NUMBER,
            "Body": body, "NumMedia": "0"}


def post_signed(client, settings, path: str, params: dict[str, str], token: str | None = None):
    url = settings.public_base_url + path
    signature = sign(url, params, token) if token else sign(url, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def inbound(services, sid: str):
    return services.db.messages.find_one({"key": f"in:{sid}"})


def test_signed_text_is_recorded_and_answered_with_empty_twiml(client, settings, services):
    params = sms_params(new_number())
    r = post_signed(client, settings, "/twilio/sms", params)
    assert r.status_code == 200 and r.mimetype == "text/xml"
    assert r.get_data(as_text=True).endswith("<Response />")
    stored = inbound(services, params["MessageSid"])
    assert bool(stored["processed"]) and stored["body"] == "hi"
    reply = services.db.messages.find_one({"key": f"reply:{params['MessageSid']}"})
    assert reply is not None and "Where are you?" in reply["body"]


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}])
def test_missing_or_wrong_signature_is_403_and_changes_nothing(client, services, headers):
    params = sms_params(new_number())
    r = client.post("/twilio/sms", data=params, headers=headers)
    assert r.status_code == 403
    assert inbound(services, params["MessageSid"]) is None
    assert services.db.conversations.find_one({"_id": params["From"]}) is None


def test_signature_from_another_token_or_for_another_body_is_403(client, settings, services):
    params = sms_params(new_number())
    assert post_signed(client, settings, "/twilio/sms", params, token="someone-elses-token").status_code == 403
    url = settings.public_base_url + "/twilio/sms"
    signature = sign(url, params)
    tampered = {**params, "Body": "STOP"}
    assert client.post("/twilio/sms", data=tampered, headers={"X-Twilio-Signature": signature}).status_code == 403
    assert inbound(services, params["MessageSid"]) is None


def test_status_callback_needs_a_signature_too(client, settings):
    params = {"MessageSid": "SM" + uuid.uuid4().hex, "MessageStatus": "delivered"}
    assert client.post("/twilio/status", data=params).status_code == 403
    assert post_signed(client, settings, "/twilio/status", params).status_code == 200


@pytest.mark.parametrize("drop", ["MessageSid", "From"])
def test_missing_fields_get_a_clear_400(client, settings, drop):
    params = sms_params(new_number())
    del params[drop]
    r = post_signed(client, settings, "/twilio/sms", params)
    assert r.status_code == 400 and drop in r.get_data(as_text=True)


def test_json_body_is_a_400_not_a_crash(client, settings):
    url = settings.public_base_url + "/twilio/sms"
    r = client.post("/twilio/sms", json={"From": "+12125551234"}, headers={"X-Twilio-Signature": sign(url, {})})
    assert r.status_code == 400


@pytest.mark.parametrize("sender", ["12345", "anonymous", "client:alice", "+1555", "  "])
def test_odd_senders_are_recorded_without_a_reply(client, settings, services, sender):
    params = sms_params(sender)
    r = post_signed(client, settings, "/twilio/sms", params)
    if not sender.strip():
        assert r.status_code == 400
        return
    assert r.status_code == 200
    assert inbound(services, params["MessageSid"]) is not None
    assert services.db.messages.find_one({"key": f"reply:{params['MessageSid']}"}) is None


@pytest.mark.parametrize("body", ["", "x" * 1600, "🚲💥 help", "a\x00b\x07c\x1b[31m", "\u202eevil", "' OR 1=1 --",
                                  "{\"$gt\": \"\"}"])
def test_odd_bodies_get_200(client, settings, services, body):
    params = sms_params(new_number(), body)
    r = post_signed(client, settings, "/twilio/sms", params)
    assert r.status_code == 200
    stored = inbound(services, params["MessageSid"])
    assert bool(stored["processed"]) and "\x00" not in stored["body"]


def test_duplicate_delivery_applies_once(client, settings, services):
    params = sms_params(new_number(), "flat tire at Union Square")
    for _ in range(3):
        assert post_signed(client, settings, "/twilio/sms", params).status_code == 200
    assert services.db.messages.count_documents({"key": f"in:{params['MessageSid']}"}) == 1
    convo = services.db.conversations.find_one({"_id": params["From"]})
    assert convo["version"] == 1 and convo["state"] == "ask_dropoff"
    assert services.db.messages.count_documents({"key": f"reply:{params['MessageSid']}"}) == 1


def test_flood_from_one_number_is_recorded_but_not_processed(client, settings, services):
    sender = new_number()
    # STATUS mid-intake needs no geocoder lookup (held to 1/s), so the flood is quick.
    codes = [post_signed(client, settings, "/twilio/sms", sms_params(sender, "status")).status_code
             for i in range(settings.inbound_rate_limit + 5)]
    assert set(codes) == {200}
    assert services.db.messages.count_documents({"phone": sender, "direction": "in"}) == len(codes)
    limited = services.db.messages.count_documents({"phone": sender, "direction": "in", "status": "rate_limited"})
    assert limited >= 5
    replies = services.db.messages.count_documents({"phone": sender, "direction": "out"})
    assert replies <= settings.inbound_rate_limit


def test_number_busy_beyond_the_wait_is_kept_and_applied_in_turn(services, settings):
    """Twilio does not redeliver on 5xx, so a text that cannot get its number's lock in time
    is recorded, answered 200, and applied by a job once the lock is free."""
    from conversations.engine import Engine

    quick = Services(settings=dataclasses.replace(settings, phone_lock_wait_seconds=0.2),
                     db=services.db, redis=services.redis)
    client = create_app(services=quick).test_client()
    params = sms_params(new_number())
    lock = services.redis.lock(f"lock:phone:{params['From']}", timeout=5)
    assert lock.acquire()
    try:
        assert post_signed(client, settings, "/twilio/sms", params).status_code == 200
        stored = inbound(services, params["MessageSid"])
        assert stored["status"] == "deferred" and not stored["processed"]
    finally:
        lock.release()
    Engine(quick).apply_recorded(stored["_id"])  # what the apply_inbound job runs
    assert bool(inbound(services, params["MessageSid"])["processed"])
    assert services.db.messages.find_one({"key": f"reply:{params['MessageSid']}"}) is not None
