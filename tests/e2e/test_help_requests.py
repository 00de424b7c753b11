"""Help requests end to end (PRODUCT.md §3, §4 step 9): riders texting the running service ask
for a person or are not understood three times; dispatchers find them at /api/help-requests,
the on-call dispatcher (DISPATCH_ALERT_PHONE) is texted once, and resolving records who and when."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, ALERT_PHONE

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def help_requests(live_service, status: str = "open") -> list[dict]:
    r = httpx.get(f"{live_service.url}/api/help-requests?status={status}&limit=200", headers=AUTH, timeout=10)
    assert r.status_code == 200
    return r.json()["help_requests"]


def alert_for(fake_twilio, number: str, fragment: str, timeout: float = 10.0) -> str:
    """The on-call dispatcher's text about this rider (the masked number ends in their last four)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for text in fake_twilio.texts_to(ALERT_PHONE):
            if number[-4:] in text.body and fragment in text.body:
                return text.body
        time.sleep(0.05)
    raise AssertionError(f"no alert with {fragment!r} about ...{number[-4:]}")


def mine(live_service, number: str, status: str = "open") -> list[dict]:
    return [r for r in help_requests(live_service, status) if r["phone"] == number]


@pytest.mark.parametrize("words", ["talk to a person", "can I speak to a real human", "operator", "humano"])
def test_asking_for_a_person_opens_one_and_alerts_the_dispatcher(phone, live_service, fake_twilio, words):
    rider = phone()
    rider.ask("flat tire at union square")
    reply = rider.ask(words)
    assert "dispatcher" in reply or "despachador" in reply
    [request] = mine(live_service, rider.number)
    assert request["reason"] == "asked" and request["text"] == words and request["status"] == "open"
    alert = alert_for(fake_twilio, rider.number, "asked for a person")
    assert rider.number not in alert  # masked
    # The conversation kept its place ("humano" may have turned it to Spanish).
    quote = rider.ask("skip")
    assert "Reply Y" in quote or "Responde S" in quote


def test_three_texts_not_understood_open_one_and_a_dispatcher_resolves_it(phone, live_service, fake_twilio):
    rider = phone()
    rider.ask("hi")
    rider.ask("🚲💥😭")
    rider.ask("??? !!!")
    assert "asked a SupportCarr dispatcher to text you" in rider.ask("🙃")
    [request] = mine(live_service, rider.number)
    assert request["reason"] == "not_understood" and request["rescue_id"] is None
    assert "🙃" in alert_for(fake_twilio, rider.number, "was not understood 3 times")
    done = httpx.post(f"{live_service.url}/api/help-requests/{request['id']}/resolve", json={"note": "texted back"},
                      headers=AUTH, timeout=10)
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "resolved" and body["resolved_by"] and body["resolved_at"]
    assert request["id"] in [r["id"] for r in help_requests(live_service, "resolved")]
    assert mine(live_service, rider.number) == []


def test_a_rider_with_a_rescue_asking_for_a_person_names_the_rescue(phone, live_service):
    rider = phone()
    rider.ask("flat tire at times square")
    rider.ask("skip")
    rider.ask("y")
    rider.ask("i want to talk to someone")
    [request] = mine(live_service, rider.number)
    [rescue] = [r for r in httpx.get(f"{live_service.url}/api/rescues?limit=200", headers=AUTH, timeout=10)
                .json()["rescues"] if r["rider_phone"] == rider.number]
    assert request["rescue_id"] == rescue["id"]
