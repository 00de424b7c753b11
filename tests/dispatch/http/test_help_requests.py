"""Help requests through the real stack: a rider texts HUMAN through the signed SMS webhook,
dispatchers find it at /api/help-requests and resolve it (PRODUCT.md §3, §4 step 9)."""
from __future__ import annotations

from tests.conftest import apply_text, new_number
from tests.conversations.test_webhooks import post_signed, sms_params


def test_human_opens_a_help_request_that_dispatchers_list_and_resolve(client, settings, services, admin_headers):
    rider = new_number()
    params = sms_params(rider, "HUMAN")
    assert post_signed(client, settings, "/twilio/sms", params).status_code == 200
    apply_text(services, params["MessageSid"])
    open_ones = client.get("/api/help-requests?status=open&limit=200", headers=admin_headers).get_json()
    [mine] = [r for r in open_ones["help_requests"] if r["phone"] == rider]
    assert mine["reason"] == "asked" and mine["text"] == "HUMAN" and mine["resolved_by"] is None
    reply = services.db.messages.find_one({"key": f"reply:{params['MessageSid']}"})
    assert "dispatcher" in reply["body"]
    again = sms_params(rider, "human")
    post_signed(client, settings, "/twilio/sms", again)
    apply_text(services, again["MessageSid"])
    assert len([r for r in client.get("/api/help-requests?status=open&limit=200", headers=admin_headers)
                .get_json()["help_requests"] if r["phone"] == rider]) == 1, "one open request per phone"

    done = client.post(f"/api/help-requests/{mine['id']}/resolve", json={"note": "texted back"},
                       headers=admin_headers)
    assert done.status_code == 200
    body = done.get_json()
    assert body["status"] == "resolved" and body["resolved_by"] and body["resolved_at"]
    resolved = client.get("/api/help-requests?status=resolved&limit=200", headers=admin_headers).get_json()
    assert mine["id"] in [r["id"] for r in resolved["help_requests"]]


def test_help_request_routes_refuse_bad_input(client, admin_headers):
    assert client.get("/api/help-requests?status=maybe", headers=admin_headers).status_code == 400
    assert client.post("/api/help-requests/nope/resolve", json={}, headers=admin_headers).status_code == 404
    assert client.post("/api/help-requests/nope/resolve", json={"note": 5}, headers=admin_headers).status_code == 400
    assert client.get("/api/help-requests").status_code == 401
