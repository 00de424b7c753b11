"""Admin JSON API: auth, validation, shapes (PRODUCT.md §3)."""
from __future__ import annotations

import re

import pytest

from dispatch.model.events import RescueCancelled
from tests.conftest import new_number


@pytest.mark.parametrize("path", ["/api/drivers", "/api/rescues", "/api/rescues/x", "/api/drivers/x"])
@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic dGVzdA==", "Bearer "])
def test_admin_routes_need_the_token(client, path, auth):
    headers = {"Authorization": auth} if auth else {}
    r = client.get(path, headers=headers)
    assert r.status_code == 401 and "token" in r.get_json()["error"]


def test_register_driver_normalises_phone(client, admin_headers):
    local = new_number()
    national = f"({local[2:5]}) {local[5:8]}-{local[8:]}"
    r = client.post("/api/drivers", json={"phone": national, "name": "Dana Diaz", "vehicle": "Ford Transit"},
                    headers=admin_headers)
    assert r.status_code == 201
    driver = r.get_json()
    assert driver["phone"] == local
    assert {"id", "phone", "name", "vehicle", "status", "location", "location_updated_at"} <= driver.keys()
    assert driver["status"] == "offline" and driver["active"] is True
    assert client.get(f"/api/drivers/{driver['id']}", headers=admin_headers).get_json() == driver
    listed = client.get("/api/drivers?limit=200", headers=admin_headers).get_json()["drivers"]
    assert driver["id"] in [d["id"] for d in listed]


def test_duplicate_driver_phone_is_409(client, admin_headers):
    body = {"phone": new_number(), "name": "A", "vehicle": "Van"}
    assert client.post("/api/drivers", json=body, headers=admin_headers).status_code == 201
    r = client.post("/api/drivers", json=body, headers=admin_headers)
    assert r.status_code == 409 and r.get_json()["field"] == "phone"


@pytest.mark.parametrize("body,field", [
    ({"name": "A", "vehicle": "Van"}, "phone"),
    ({"phone": "555-1234", "name": "A", "vehicle": "Van"}, "phone"),
    ({"phone": 12125550123, "name": "A", "vehicle": "Van"}, "phone"),
    ({"phone": "+12125550123", "vehicle": "Van"}, "name"),
    ({"phone": "+12125550123", "name": "  ", "vehicle": "Van"}, "name"),
    ({"phone": "+12125550123", "name": "A" * 81, "vehicle": "Van"}, "name"),
    ({"phone": "+12125550123", "name": "A"}, "vehicle"),
])
def test_driver_validation_names_the_field(client, admin_headers, body, field):
    r = client.post("/api/drivers", json=body, headers=admin_headers)
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_non_json_body_is_400(client, admin_headers):
    r = client.post("/api/drivers", data="phone=1", headers=admin_headers)
    assert r.status_code == 400


def test_unknown_ids_are_404(client, admin_headers):
    assert client.get("/api/drivers/nope", headers=admin_headers).status_code == 404
    assert client.get("/api/rescues/nope", headers=admin_headers).status_code == 404


@pytest.mark.parametrize("query", ["status=flying", "limit=0", "limit=abc", "offset=-1", "limit=1000"])
def test_rescue_list_validation(client, admin_headers, query):
    assert client.get(f"/api/rescues?{query}", headers=admin_headers).status_code == 400


def test_rescue_json_with_timeline_and_messages(client, admin_headers, services):
    rider = new_number()
    rescue = services.lifecycle.create(request_key=f"api-test-{rider}", rider_phone=rider,
                                     pickup={"lat": 40.7359, "lng": -73.9911, "label": "Union Square"},
                                     dropoff=None, problem="flat_tire", problem_note="flat", quote_cents=2800,
                                     trip_miles=0.0, surge=1.0, channel="sms")
    services.lifecycle.apply(rescue.id, "cancel", by="dispatcher", event=RescueCancelled,
                           changes={"cancel_reason": "test", "cancelled_by": "dispatcher"})
    listed = client.get("/api/rescues?status=cancelled&limit=200", headers=admin_headers).get_json()["rescues"]
    assert rescue.id in [r["id"] for r in listed]
    assert all(r["status"] == "cancelled" for r in listed)
    shown = client.get(f"/api/rescues/{rescue.id}", headers=admin_headers).get_json()
    for key in ("id", "code", "status", "rider_phone", "pickup", "dropoff", "problem", "driver_id",
                "quote_cents", "payment_status", "created_at", "updated_at", "cancel_reason", "cancelled_by"):
        assert key in shown
    assert shown["status"] == "cancelled" and shown["cancelled_by"] == "dispatcher"
    assert [e["type"] for e in shown["timeline"]] == ["rescue_requested", "rescue_cancelled"]
    assert shown["timeline"][1]["by"] == "dispatcher"


def test_rescues_newest_first(client, admin_headers, services):
    made = []
    for _i in range(3):
        made.append(services.lifecycle.create(
            request_key=f"order-{new_number()}", rider_phone=new_number(),
            pickup={"lat": 40.75, "lng": -73.98, "label": "x"}, dropoff=None, problem="other",
            problem_note="", quote_cents=2800, trip_miles=0, surge=1.0, channel="sms").id)
    listed = [r["id"] for r in client.get("/api/rescues?limit=200", headers=admin_headers).get_json()["rescues"]]
    positions = [listed.index(m) for m in made]
    assert positions == sorted(positions, reverse=True)


def test_healthz_reports_stores(client):
    r = client.get("/healthz")
    body = r.get_json()
    assert body["mongodb"] is True and body["redis"] is True
    assert r.status_code == (200 if body["workers"] > 0 else 503)


def test_patch_driver_validates_and_updates(client, admin_headers):
    driver = client.post("/api/drivers", json={"phone": new_number(), "name": "Pat", "vehicle": "Van"},
                         headers=admin_headers).get_json()
    url = f"/api/drivers/{driver['id']}"
    for body, field in [({"name": ""}, "name"), ({"active": "yes"}, "active"), ({"colour": "red"}, "colour"),
                        ({"location": {"lat": 99, "lng": 0}}, "location"), ({"location": "here"}, "location")]:
        r = client.patch(url, json=body, headers=admin_headers)
        assert r.status_code == 400 and r.get_json()["field"] == field, body
    assert client.patch(url, json={}, headers=admin_headers).status_code == 400
    r = client.patch(url, json={"name": "Pat Q", "location": {"lat": 41.9, "lng": -71.0, "label": "depot"}},
                     headers=admin_headers)
    assert r.status_code == 200
    body = r.get_json()
    assert body["name"] == "Pat Q" and body["location"]["label"] == "depot" and body["location_updated_at"]
    r = client.patch(url, json={"active": False}, headers=admin_headers)
    assert r.get_json()["active"] is False and r.get_json()["status"] == "offline"
    assert client.patch("/api/drivers/nope", json={"name": "x"}, headers=admin_headers).status_code == 404


def test_stats_and_board(client, admin_headers, services):
    rider = new_number()
    rescue = services.lifecycle.create(request_key=f"stats-{rider}", rider_phone=rider,
                                     pickup={"lat": 40.75, "lng": -73.98, "label": "Bryant Park"}, dropoff=None,
                                     problem="crash", problem_note="", quote_cents=2800, trip_miles=0, surge=1.0,
                                     channel="sms")
    stats = client.get("/api/stats", headers=admin_headers).get_json()
    assert stats["by_status"]["searching"] >= 1 and stats["rescues_today"] >= 1 and "drivers_online" in stats
    board = client.get("/api/board", headers=admin_headers).get_json()
    row = next(r for r in board["rescues"] if r["id"] == rescue.id)
    assert row["rider"] != rider and row["rider"].endswith(rider[-4:])  # masked
    assert "crash" in row["flags"]
    services.dispatcher.cancel(rescue.id, "test", by="test")


def test_dispatcher_message_to_rider(client, admin_headers, services):
    rider = new_number()
    rescue = services.lifecycle.create(request_key=f"msg-{rider}", rider_phone=rider,
                                     pickup={"lat": 40.75, "lng": -73.98, "label": "x"}, dropoff=None,
                                     problem="other", problem_note="", quote_cents=2800, trip_miles=0, surge=1.0,
                                     channel="sms")
    url = f"/api/rescues/{rescue.id}/message"
    assert client.post(url, json={"to": "boss", "body": "hi"}, headers=admin_headers).status_code == 400
    assert client.post(url, json={"to": "rider", "body": ""}, headers=admin_headers).status_code == 400
    assert client.post(url, json={"to": "driver", "body": "hi"}, headers=admin_headers).status_code == 409
    r = client.post(url, json={"to": "rider", "body": "A dispatcher here: help is coming."}, headers=admin_headers)
    assert r.status_code == 201
    assert services.db.messages.find_one({"_id": r.get_json()["id"]})["phone"] == rider
    services.dispatcher.cancel(rescue.id, "test", by="test")


def test_session_login_csrf_and_logout(client):
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"token": "wrong", "csrf": csrf}).status_code == 401
    assert client.post("/login", data={"token": "test-admin-token"}).status_code == 400  # no CSRF token
    r = client.post("/login", data={"token": "test-admin-token", "csrf": csrf})
    assert r.status_code == 302
    status = client.get("/").get_data(as_text=True)
    session_csrf = re.search(r'name="csrf-token" content="([^"]+)"', status).group(1)
    assert client.get("/api/rescues").status_code == 200  # the session reads the API
    assert client.post("/api/drivers", json={}).status_code == 403  # but changes need the CSRF header
    r = client.post("/api/drivers", json={}, headers={"X-CSRF-Token": session_csrf})
    assert r.status_code == 400  # past auth: the body is what is wrong
    client.post("/logout", data={"csrf": session_csrf})
    assert client.get("/api/rescues").status_code == 401
    assert client.get("/").status_code == 302


def test_a_web_process_started_while_mongodb_is_down_still_answers_healthz(settings):
    """gunicorn builds the app on a worker's first request; a worker replaced during a MongoDB
    outage must answer 503 JSON, not an HTML 500 from a failed index check."""
    import dataclasses

    from app import create_app

    down = dataclasses.replace(settings, mongo_url="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300")
    r = create_app(settings=down).test_client().get("/healthz")
    assert r.status_code == 503 and r.get_json()["mongodb"] is False


def test_what_schemathesis_found_is_answered_as_the_document_says(client, admin_headers, services):
    """Cases a schema-driven fuzzer found: each a documented 4xx with an error body, never a 500."""
    huge = client.get("/api/rescues?offset=386793457036552703072506359054336", headers=admin_headers)
    assert huge.status_code == 400 and huge.get_json()["field"] == "offset"
    deep = client.post("/api/drivers", data="[" * 5000 + "]" * 5000,
                       headers={**admin_headers, "Content-Type": "application/json"})
    assert deep.status_code == 400 and "error" in deep.get_json()
    big = client.post("/api/drivers", json={"phone": new_number(), "name": "Big", "vehicle": "Van", "n": 2**70},
                      headers=admin_headers)
    assert big.status_code == 400
    for body, field in [({"phone": "", "name": "A", "vehicle": "Van"}, "phone"),
                        ({"phone": new_number(), "name": "", "vehicle": "Van"}, "name"),
                        ({"phone": new_number(), "name": "   ", "vehicle": "Van"}, "name")]:
        r = client.post("/api/drivers", json=body, headers=admin_headers)
        assert r.status_code == 400 and r.get_json()["field"] == field, (body, r.get_json())
    assert client.post("/api/rescues/nope/cancel", json={"reason": ""}, headers=admin_headers).status_code == 400
    refund = client.post("/api/rescues/nope/refund", json={"amount_cents": 2}, headers=admin_headers)
    assert refund.status_code == 404, refund.get_json()
    spec = client.get("/api/openapi.json")  # no token: tools read it first
    assert spec.status_code == 200 and spec.get_json()["openapi"].startswith("3.")
    assert client.get("/api/rescues?colour=red", headers=admin_headers).status_code == 400
