"""Dispatchers by text when the web is down (PRODUCT.md §8): LIST, STATUS, ASSIGN, CANCEL, HELP
from an active dispatcher's phone, under the same roles as the page."""
from __future__ import annotations

import uuid

import httpx

from tests.e2e.test_dispatch import AUTH, NEAR_UNION_SQ, book, online_driver


def only_ours_on_the_board(services) -> None:
    """The board also lists rescues unfulfilled in the last day; earlier tests leave some, and
    LIST shows the first few only."""
    services.db.rescues.update_many({"status": "unfulfilled"}, {"$set": {"updated_at": 0}})


def dispatcher_phone(live_service, phone, role: str, **extra):
    desk = phone()
    username = f"sms-{role}-{uuid.uuid4().hex[:6]}"
    r = httpx.post(f"{live_service.url}/api/dispatchers", headers=AUTH, timeout=10,
                   json={"username": username, "name": role.title(), "password": "a long password",
                         "role": role, "phone": desk.number, **extra})
    assert r.status_code == 201, r.text
    return desk, username


def test_a_dispatcher_runs_a_rescue_by_text(slate, live_service, phone, services):
    desk, username = dispatcher_phone(live_service, phone, "dispatcher")
    assert "LIST" in desk.ask("HELP") and "ASSIGN R1004" in desk.ask("what?")
    only_ours_on_the_board(services)
    rider = phone()
    code = book(rider)
    listing = desk.ask("LIST")
    assert listing.startswith("Open: ") and code in listing
    assert f"{code} searching: flat tire at Union Square" in desk.ask(f"status {code}")
    ann_phone = phone()
    online_driver(live_service, ann_phone, "Ann Lee", NEAR_UNION_SQ)
    ann_phone.next_reply(timeout=15)  # the offer the dispatch loop makes to the only driver
    assert desk.ask(f"ASSIGN {code} nobody-here").startswith("No active driver matches")
    said = desk.ask(f"ASSIGN {code} {ann_phone.number[-4:]}")
    assert said == f"{code} is now Ann Lee's (Ford Transit). Both have been texted."
    rider.wait_for("Ann is on the way")
    timeline = services.events.timeline(services.rescues.by_code(code).id)
    assigned = [e for e in timeline if e["type"] == "driver_assigned"]
    assert assigned and assigned[-1]["by"] == f"dispatcher:{username}"
    assert desk.ask(f"CANCEL {code} rider got a lift").startswith(f"{code} is cancelled (rider got a lift)")
    rider.wait_for("cancelled by our dispatch team (rider got a lift)")
    assert desk.ask("STATUS R999999") == "No rescue R999999. LIST shows the open ones."


def test_a_viewer_by_text_can_look_but_not_act(slate, live_service, phone, services):
    desk, _ = dispatcher_phone(live_service, phone, "viewer")
    only_ours_on_the_board(services)
    rider = phone()
    code = book(rider)
    assert code in desk.ask("LIST")
    refused = desk.ask(f"CANCEL {code} because")
    assert refused.startswith("Your role (viewer) can't do that by text; it needs dispatcher")
    assert services.rescues.by_code(code).status == "searching"
    services.dispatcher.cancel(services.rescues.by_code(code).id, "test", by="test")


def test_a_spanish_speaking_dispatcher_is_answered_in_spanish(slate, live_service, phone):
    desk, _ = dispatcher_phone(live_service, phone, "dispatcher", language="es")
    assert desk.ask("HELP").startswith("Despacho por texto: LIST")
    assert desk.ask("what?").startswith("Ese comando no existe")


def test_an_inactive_dispatchers_phone_is_a_rider_again(slate, live_service, phone):
    desk, username = dispatcher_phone(live_service, phone, "dispatcher")
    accounts = httpx.get(f"{live_service.url}/api/dispatchers?limit=200", headers=AUTH, timeout=10).json()
    account_id = next(a["id"] for a in accounts["dispatchers"] if a["username"] == username)
    httpx.patch(f"{live_service.url}/api/dispatchers/{account_id}", headers=AUTH, timeout=10, json={"active": False})
    assert not desk.ask("LIST").startswith(("Open:", "No open rescues"))
