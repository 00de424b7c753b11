"""Voice: signed Twilio voice webhooks, TwiML answers, the same conversation as texts."""
from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import RESCUE_NUMBER, TWILIO_SID, new_number, sign
from tests.e2e.test_dispatch import NEAR_UNION_SQ, online_driver


class Caller:
    """One phone call: every request carries the same CallSid and is signed like Twilio's."""

    def __init__(self, client, settings, number: str | None = None) -> None:
        self.client, self.settings = client, settings
        self.number = number or new_number()
        self.call_sid = "CA" + uuid.uuid4().hex

    def post(self, path: str, **form: str) -> ET.Element:
        params = {"CallSid": self.call_sid, "AccountSid": TWILIO_SID, "From": self.number, "To": RESCUE_NUMBER,
                  "CallStatus": "in-progress", **form}
        url = self.settings.public_base_url + path
        r = self.client.post(path, data=params, headers={"X-Twilio-Signature": sign(url, params)})
        assert r.status_code == 200, r.get_data(as_text=True)
        assert r.mimetype == "text/xml"
        self.last_raw = r.get_data(as_text=True)
        return ET.fromstring(self.last_raw)

    def call(self) -> ET.Element:
        return self.post("/twilio/voice")

    def answer(self, twiml: ET.Element, **form: str) -> ET.Element:
        """Answer the Gather (or Dial) in `twiml` as Twilio would call its action URL."""
        node = twiml.find("Gather")
        if node is None:
            node = twiml.find("Dial")
        action = node.get("action")
        return self.post(action[len(self.settings.public_base_url):], **form)


def spoken(twiml: ET.Element) -> str:
    return " ".join(s.text or "" for s in twiml.iter("Say"))


@pytest.fixture
def caller(client, settings, live_service):
    """Calls go to the in-process app; the live service's workers send the texts that follow."""
    return lambda number=None: Caller(client, settings, number)


def test_full_intake_by_speech_and_keypad(caller, services, fake_twilio):
    c = caller()
    twiml = c.call()
    gather = twiml.find("Gather")
    assert "Where are you?" in spoken(twiml) and gather.get("input") == "speech dtmf"
    assert "Union Square" in gather.get("hints")
    twiml = c.answer(twiml, SpeechResult="Union Square.", Confidence="0.91")
    assert "I have you at Union Square" in spoken(twiml)
    twiml = c.answer(twiml, Digits="1")
    assert "flat tire, press 1" in spoken(twiml)
    twiml = c.answer(twiml, Digits="1")
    assert "To book it, press 1" in spoken(twiml) and "dollars" in spoken(twiml)
    twiml = c.answer(twiml, Digits="1")
    assert "You're booked" in spoken(twiml) and twiml.find("Hangup") is not None
    rescue = services.rescues.open_for_rider(c.number)
    assert rescue.status == "searching" and rescue.channel == "voice" and rescue.problem == "flat_tire"
    assert " ".join(rescue.code) in spoken(twiml)
    assert "Booked! Rescue" in fake_twilio.wait_for_texts(c.number, 1)[0].body


def test_crash_by_keypad_gets_the_safety_line(caller):
    c = caller()
    twiml = c.answer(c.answer(c.call(), SpeechResult="Times Square"), Digits="1")
    twiml = c.answer(twiml, Digits="4")
    assert "call 9 1 1" in spoken(twiml) and "To book it" in spoken(twiml)


def test_no_input_reprompts_twice_then_continues_by_text(caller, phone, fake_twilio):
    rider = phone()
    c = caller(rider.number)
    twiml = c.call()
    for _ in range(2):
        twiml = c.answer(twiml)  # silence: Twilio calls the action with no SpeechResult
        assert "didn't catch that" in spoken(twiml) and twiml.find("Gather") is not None
    twiml = c.answer(twiml)
    assert "finish by text" in spoken(twiml) and twiml.find("Hangup") is not None
    assert "Where are you?" in rider.next_reply()
    # The call ended half-way; the same conversation goes on by SMS.
    assert "What's wrong" in rider.ask("Union Square")


@pytest.mark.parametrize("speech", ["blorp florp", "the place by the thing"])
def test_garbled_speech_or_nothing_found_asks_again(caller, speech):
    c = caller()
    twiml = c.answer(c.call(), SpeechResult=speech)
    assert "couldn't find that place" in spoken(twiml) and "Where are you?" in spoken(twiml)


def test_outside_the_area_is_refused_by_voice(caller):
    c = caller()
    twiml = c.answer(c.call(), SpeechResult="Coney Island")
    assert "outside the area we cover" in spoken(twiml)


def test_text_half_way_then_call_continues(caller, phone):
    rider = phone()
    rider.ask("hi")
    rider.ask("Union Square")  # by text: now at the problem question
    twiml = caller(rider.number).call()
    assert "flat tire, press 1" in spoken(twiml)


def test_duplicate_callback_has_one_effect(caller, services):
    c = caller()
    twiml = c.answer(c.answer(c.answer(c.call(), SpeechResult="Union Square"), Digits="1"), Digits="2")
    gather_action = twiml.find("Gather").get("action")[len(c.settings.public_base_url):]
    c.post(gather_action, Digits="1")
    first_raw = c.last_raw
    second = c.post(gather_action, Digits="1")
    assert c.last_raw == first_raw and "You're booked" in spoken(second)
    assert services.db.rescues.count_documents({"rider_phone": c.number}) == 1


def test_anonymous_caller_is_told_why_we_cannot_help(caller):
    twiml = caller("anonymous").call()
    assert "can't see your phone number" in spoken(twiml) and twiml.find("Hangup") is not None


def test_unsigned_voice_webhook_is_403(client):
    assert client.post("/twilio/voice", data={"CallSid": "CA1", "From": "+12125550123"}).status_code == 403


def _assigned_rescue(phone, live_service, services):
    driver_phone, rider = phone(), phone()
    online_driver(live_service, driver_phone, "Ann Lee", NEAR_UNION_SQ)
    rider.ask("flat tire at Union Square")
    rider.ask("skip")
    rider.ask("y")
    rescue = services.rescues.open_for_rider(rider.number)
    driver_phone.wait_for(f"offer {rescue.code}")
    return driver_phone, rider, rescue


def test_rider_hears_status_and_is_connected_masked(slate, phone, live_service, services, caller, settings):
    driver_phone, rider, rescue = _assigned_rescue(phone, live_service, services)
    driver_phone.ask("Y")
    twiml = caller(rider.number).call()
    assert "driver on the way" in spoken(twiml) and "press 1" in spoken(twiml)
    c = caller(rider.number)
    twiml = c.answer(c.call(), Digits="1")
    dial = twiml.find("Dial")
    assert dial.get("callerId") == settings.twilio_phone_number == RESCUE_NUMBER
    assert dial.find("Number").text == driver_phone.number
    assert rider.number not in c.last_raw


def test_driver_accepts_an_offer_by_phone_and_calls_the_rider(slate, phone, live_service, services, caller):
    driver_phone, rider, rescue = _assigned_rescue(phone, live_service, services)
    d = caller(driver_phone.number)
    twiml = d.call()
    assert "You have an offer" in spoken(twiml) and "press 1" in spoken(twiml)
    twiml = d.answer(twiml, Digits="1")
    assert "It's yours" in spoken(twiml)
    assert services.rescues.get(rescue.id).status == "assigned"
    driver_phone.wait_for(f"You've got {rescue.code}")
    rider.wait_for("Ann is on the way")
    d2 = caller(driver_phone.number)
    twiml = d2.answer(d2.call(), Digits="1")
    dial = twiml.find("Dial")
    assert dial.get("callerId") == RESCUE_NUMBER and dial.find("Number").text == rider.number
    assert driver_phone.number not in re.sub(r"From=[^&]*", "", d2.last_raw)


def test_failed_dial_is_recorded_and_falls_back_to_a_text(slate, phone, live_service, services, caller):
    driver_phone, rider, rescue = _assigned_rescue(phone, live_service, services)
    driver_phone.ask("Y")
    c = caller(rider.number)
    twiml = c.answer(c.call(), Digits="1")
    twiml = c.answer(twiml, DialCallStatus="no-answer", DialCallDuration="0")
    assert "couldn't connect" in spoken(twiml)
    driver_phone.wait_for("Your rider tried to call")
    kinds = [e["type"] for e in services.events.timeline(rescue.id)]
    assert "call_failed" in kinds
    c2 = caller(rider.number)
    twiml = c2.answer(c2.answer(c2.call(), Digits="1"), DialCallStatus="completed", DialCallDuration="42")
    assert "call_connected" in [e["type"] for e in services.events.timeline(rescue.id)]


def test_hang_up_mid_intake_then_finish_by_sms(caller, phone):
    rider = phone()
    c = caller(rider.number)
    c.answer(c.answer(c.call(), SpeechResult="Union Square"), Digits="1")  # now at the problem menu
    # The caller hangs up here: no more callbacks. A text picks up the same conversation.
    assert "Where should we take you" in rider.ask("1")


# -- Spanish calls ----------------------------------------------------------------------------------

def _says(twiml: ET.Element) -> list[tuple[str, str | None, str | None]]:
    return [(s.text or "", s.get("language"), s.get("voice")) for s in twiml.iter("Say")]


def test_every_call_offers_the_other_language_in_its_own_voice(caller):
    twiml = caller().call()
    offer = [s for s in _says(twiml) if "español" in s[0]]
    assert offer == [("Para español, oprima nueve.", "es-US", "Polly.Lupe")]
    assert twiml.find("Gather").get("language") == "en-US"


def test_a_spanish_booking_by_voice(caller, services, fake_twilio):
    c = caller()
    twiml = c.answer(c.call(), Digits="9")
    gather = twiml.find("Gather")
    assert gather.get("language") == "es-US" and gather.get("input") == "speech dtmf"
    assert any("¿Dónde estás?" in text and lang == "es-US" and voice == "Polly.Lupe"
               for text, lang, voice in _says(twiml))
    assert ("For English, press nine.", "en-US", None) in _says(twiml)
    twiml = c.answer(twiml, SpeechResult="Union Square.", Confidence="0.9")
    assert "Union Square" in spoken(twiml) and twiml.find("Gather").get("action")
    assert all(lang == "es-US" for _, lang, _ in _says(twiml))
    twiml = c.answer(twiml, Digits="1")           # yes, that's the place
    twiml = c.answer(twiml, Digits="1")           # flat tire
    assert "dólares" in spoken(twiml) and "marca 1" in spoken(twiml)
    twiml = c.answer(twiml, Digits="1")           # book it
    assert twiml.find("Hangup") is not None
    rescue = services.rescues.open_for_rider(c.number)
    assert rescue.status == "searching" and rescue.language == "es" and rescue.channel == "voice"
    assert " ".join(rescue.code) in spoken(twiml)
    booked = fake_twilio.wait_for_texts(c.number, 1)[0].body
    assert booked.startswith("¡Listo! Rescate")


def test_a_rider_who_texted_in_spanish_is_answered_in_spanish_by_phone(caller, phone):
    rider = phone()
    assert "¿En qué lugar" in rider.ask("hola, necesito ayuda")
    twiml = caller(rider.number).call()
    assert twiml.find("Gather").get("language") == "es-US"
    assert "¿Dónde estás?" in spoken(twiml) and "For English, press nine." in spoken(twiml)


def test_nine_switches_back_to_english(caller):
    c = caller()
    twiml = c.answer(c.call(), Digits="9")
    twiml = c.answer(twiml, Digits="9")
    assert twiml.find("Gather").get("language") == "en-US" and "Where are you?" in spoken(twiml)
