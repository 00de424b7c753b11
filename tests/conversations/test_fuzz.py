"""Hypothesis: no body, field set or encoding makes a webhook answer 5xx or damage a record."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app import create_app
from dispatch.bootstrap import Services
from tests.conftest import apply_text, new_number, sign

FIELDS = ["MessageSid", "SmsSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "AccountSid",
          "MessageStatus", "ErrorCode", "FromCity", "OptOutType"]
any_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=1700)
senders = st.one_of(any_text, st.sampled_from(["+12125550199", "12345", "anonymous", "client:bob", "",
                                              "+4420 7946 0018", "+1 (212) 555-01x9"]))
forms = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=20)),
                        st.one_of(any_text, senders, st.sampled_from(["SMabc", "-1", "99999999999"])),
                        max_size=10)

FUZZ = hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(form=forms)
def test_sms_webhook_never_5xx_with_any_signed_form(client, settings, services, form):
    url = settings.public_base_url + "/twilio/sms"
    r = client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": sign(url, form)})
    assert r.status_code in (200, 400), (r.status_code, form)


@FUZZ
@given(form=forms)
def test_status_webhook_never_5xx(client, settings, form):
    url = settings.public_base_url + "/twilio/status"
    r = client.post("/twilio/status", data=form, headers={"X-Twilio-Signature": sign(url, form)})
    assert r.status_code in (200, 400)


@FUZZ
@given(raw=st.binary(max_size=4000), content_type=st.sampled_from(
    ["application/x-www-form-urlencoded", "application/json", "text/plain", "multipart/form-data"]))
def test_unsigned_raw_bodies_are_refused(client, raw, content_type):
    r = client.post("/twilio/sms", data=raw, headers={"Content-Type": content_type})
    assert r.status_code in (400, 403, 413)


@pytest.fixture
def without_geocoder(services, settings) -> Services:
    """Nominatim is held to one lookup a second; random bodies would spend the run waiting."""
    return Services(dataclasses.replace(settings, geocoder="none"), services.db, services.redis)


@FUZZ
@given(body=any_text)
def test_any_body_from_a_real_rider_mid_intake_leaves_a_valid_conversation(without_geocoder, settings,
                                                                            services, body):
    client = create_app(services=without_geocoder).test_client()
    sender = new_number()
    url = settings.public_base_url + "/twilio/sms"
    for i, text in enumerate(["flat tire at Union Square", body]):
        form = {"MessageSid": f"SMfz{sender[1:]}{i}", "From": sender, "Body": text}
        r = client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": sign(url, form)})
        assert r.status_code == 200
        apply_text(without_geocoder, form["MessageSid"])
    convo = services.db.conversations.find_one({"_id": sender})
    assert convo["state"] in ("idle", "ask_location", "pick_location", "ask_problem", "ask_dropoff",
                              "pick_dropoff", "confirm", "active")
    assert convo["version"] >= 1
