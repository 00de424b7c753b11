"""Dispatcher accounts and roles (PRODUCT.md §8): sign-in, the role on every API change, names
on the timeline."""
from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import new_number

PASSWORD = "correct horse battery"


def account(client, admin_headers, role: str, **extra) -> dict:
    username = f"{role}-{uuid.uuid4().hex[:8]}"
    r = client.post("/api/dispatchers", json={"username": username, "name": role.title(), "password": PASSWORD,
                                              "role": role, **extra}, headers=admin_headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def signed_in(app, username: str, password: str = PASSWORD):
    """A browser-like client signed in as `username`, and its CSRF header."""
    client = app.test_client()
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    r = client.post("/login", data={"username": username, "password": password, "csrf": csrf})
    assert r.status_code == 302, r.get_data(as_text=True)
    page = client.get("/").get_data(as_text=True)
    return client, {"X-CSRF-Token": re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)}


def open_rescue(services):
    rider = new_number()
    return services.lifecycle.create(request_key=f"acct-{rider}", rider_phone=rider,
                                     pickup={"lat": 40.7359, "lng": -73.9911, "label": "Union Square"},
                                     dropoff=None, problem="flat_tire", problem_note="", quote_cents=2800,
                                     trip_miles=0.0, surge=1.0, channel="sms")


def test_accounts_are_created_listed_and_never_show_the_hash(client, admin_headers, services):
    made = account(client, admin_headers, "viewer", phone="(212) 555-0147")
    assert made["role"] == "viewer" and made["phone"] == "+12125550147" and "password" not in str(made)
    stored = services.db.dispatchers.find_one({"_id": made["id"]})
    assert stored["password_hash"].startswith("scrypt:") and PASSWORD not in str(stored)
    listed = client.get("/api/dispatchers?limit=200", headers=admin_headers).get_json()["dispatchers"]
    assert made["id"] in [a["id"] for a in listed]
    again = client.post("/api/dispatchers", json={"username": made["username"].upper(), "name": "X",
                                                  "password": PASSWORD, "role": "viewer"}, headers=admin_headers)
    assert again.status_code == 409 and again.get_json()["field"] == "username"


@pytest.mark.parametrize("body,field", [
    ({"name": "A", "password": PASSWORD, "role": "viewer"}, "username"),
    ({"username": "admin", "name": "A", "password": PASSWORD, "role": "viewer"}, "username"),
    ({"username": "a b", "name": "A", "password": PASSWORD, "role": "viewer"}, "username"),
    ({"username": "ok", "name": "A", "password": "short", "role": "viewer"}, "password"),
    ({"username": "ok", "name": "A", "password": PASSWORD, "role": "boss"}, "role"),
    ({"username": "ok", "name": "A", "password": PASSWORD, "role": "viewer", "phone": "555-1234"}, "phone"),
    ({"username": "ok", "name": "A", "password": PASSWORD, "role": "viewer", "colour": "red"}, "colour"),
])
def test_account_validation_names_the_field(client, admin_headers, body, field):
    r = client.post("/api/dispatchers", json=body, headers=admin_headers)
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_wrong_password_and_unknown_user_are_refused_alike(app, client, admin_headers):
    made = account(client, admin_headers, "viewer")
    browser = app.test_client()
    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").get_data(as_text=True)).group(1)
    for username, password in ((made["username"], "wrong password"), ("nobody-here", PASSWORD)):
        r = browser.post("/login", data={"username": username, "password": password, "csrf": csrf})
        assert r.status_code == 401 and "not right" in r.get_data(as_text=True)
    assert browser.get("/api/rescues").status_code == 401


def test_viewer_reads_but_may_not_act(app, client, admin_headers, services):
    made = account(client, admin_headers, "viewer")
    viewer, csrf = signed_in(app, made["username"])
    rescue = open_rescue(services)
    assert viewer.get("/api/rescues").status_code == 200
    assert viewer.get(f"/api/rescues/{rescue.id}").status_code == 200
    r = viewer.post(f"/api/rescues/{rescue.id}/cancel", json={"reason": "test"}, headers=csrf)
    assert r.status_code == 403 and "viewer" in r.get_json()["error"]
    assert viewer.post("/api/drivers", json={}, headers=csrf).status_code == 403
    assert viewer.get("/api/dispatchers").status_code == 403
    assert services.rescues.get(rescue.id).status == "searching"
    services.dispatcher.cancel(rescue.id, "test", by="test")


def test_dispatcher_acts_under_their_name_but_may_not_refund_or_manage(app, client, admin_headers, services):
    made = account(client, admin_headers, "dispatcher")
    dispatcher, csrf = signed_in(app, made["username"])
    rescue = open_rescue(services)
    assert dispatcher.post(f"/api/rescues/{rescue.id}/refund", json={}, headers=csrf).status_code == 403
    assert dispatcher.post("/api/dispatchers", json={}, headers=csrf).status_code == 403
    assert dispatcher.patch("/api/drivers/x", json={"name": "y"}, headers=csrf).status_code == 403
    r = dispatcher.post(f"/api/rescues/{rescue.id}/cancel", json={"reason": "rider found a ride"}, headers=csrf)
    assert r.status_code == 200 and r.get_json()["cancelled_by"] == f"dispatcher:{made['username']}"
    timeline = dispatcher.get(f"/api/rescues/{rescue.id}").get_json()["timeline"]
    cancelled = [e for e in timeline if e["type"] == "rescue_cancelled"]
    assert cancelled and cancelled[0]["by"] == f"dispatcher:{made['username']}"
    assert cancelled[0]["by_name"] == made["username"]


def test_demoting_or_deactivating_takes_effect_on_the_next_request(app, client, admin_headers, services):
    made = account(client, admin_headers, "dispatcher")
    dispatcher, csrf = signed_in(app, made["username"])
    rescue = open_rescue(services)
    assert client.patch(f"/api/dispatchers/{made['id']}", json={"role": "viewer"},
                        headers=admin_headers).get_json()["role"] == "viewer"
    assert dispatcher.post(f"/api/rescues/{rescue.id}/cancel", json={}, headers=csrf).status_code == 403
    off = client.patch(f"/api/dispatchers/{made['id']}", json={"active": False}, headers=admin_headers)
    assert off.status_code == 200
    assert dispatcher.get("/api/rescues").status_code == 401
    assert client.patch("/api/dispatchers/nope", json={"role": "viewer"}, headers=admin_headers).status_code == 404
    services.dispatcher.cancel(rescue.id, "test", by="test")


def test_the_admin_token_signs_in_as_the_builtin_admin(app, services):
    admin, csrf = signed_in(app, "", "test-admin-token")
    assert admin.get("/api/dispatchers").status_code == 200
    rescue = open_rescue(services)
    r = admin.post(f"/api/rescues/{rescue.id}/cancel", json={"reason": "test"}, headers=csrf)
    assert r.get_json()["cancelled_by"] == "dispatcher:admin"


def test_wrong_passwords_count_against_the_same_guessing_limit(settings, services, client, admin_headers):
    import dataclasses

    from app import create_app
    from dispatch.bootstrap import Services

    made = account(client, admin_headers, "viewer")
    strict = Services(dataclasses.replace(settings, admin_token_tries_per_minute=2), services.db, services.redis)
    browser = create_app(services=strict).test_client()
    browser.environ_base["REMOTE_ADDR"] = f"10.99.{uuid.uuid4().int % 250}.3"
    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").get_data(as_text=True)).group(1)
    codes = [browser.post("/login", data={"username": made["username"], "password": "nope nope", "csrf": csrf})
             .status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    r = browser.post("/login", data={"username": made["username"], "password": PASSWORD, "csrf": csrf})
    assert r.status_code == 429
