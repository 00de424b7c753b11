"""Payment and after-care end to end: the live service, the fake Stripe API, signed events."""
from __future__ import annotations

import re
import time

import httpx

from tests.conftest import post_stripe_event, stripe_event
from tests.e2e.test_dispatch import AUTH, NEAR_UNION_SQ, book, online_driver, rescue


def webhook(live_service):
    url = f"{live_service.url}/stripe/webhook"
    return lambda payload, headers: httpx.post(url, content=payload, headers=headers, timeout=10)


def test_completed_rescue_is_paid_receipted_rated_and_refunded(slate, phone, live_service, fake_stripe):
    driver_phone, rider = phone(), phone()
    driver = online_driver(live_service, driver_phone, "Ann Lee", NEAR_UNION_SQ)
    code = book(rider)
    driver_phone.wait_for(f"offer {code}")
    driver_phone.ask("Y")
    driver_phone.ask("ARRIVED")
    started = time.time()
    driver_phone.ask("DONE")
    link_text = rider.wait_for("Pay $", timeout=10)
    assert time.time() - started < 5
    r = rescue(live_service, code)
    assert f"${r['quote_cents'] / 100:.2f}" in link_text
    url = re.search(r"https://\S+", link_text).group(0)
    session_id = url.rsplit("/", 1)[1]
    session = fake_stripe.sessions[session_id]
    assert session["amount_total"] == r["quote_cents"]
    assert session["metadata"]["rescue_id"] == r["id"] and session["client_reference_id"] == r["id"]
    [call] = [c for c in fake_stripe.calls("/v1/checkout/sessions") if c.form.get("client_reference_id") == r["id"]]
    assert call.idempotency_key == f"checkout-{r['id']}-1"
    assert r["payment_status"] == "link_sent"

    paid = {**session, "payment_status": "paid", "status": "complete", "payment_intent": "pi_" + session_id[-20:]}
    event = stripe_event("checkout.session.completed", paid)
    for _ in range(2):  # Stripe delivers at least once
        assert post_stripe_event(webhook(live_service), event).status_code == 200
    receipt = rider.wait_for("Receipt:")
    assert "Reply 1 (poor) to 5 (great)" in receipt
    rider.assert_no_reply(1.0)
    assert "Thanks for rating" in rider.ask("5 Ann was great")
    r = rescue(live_service, code)
    assert r["payment_status"] == "paid" and r["paid_cents"] == r["quote_cents"]
    assert r["rating"] == 5 and r["rating_comment"] == "Ann was great"
    shown = httpx.get(f"{live_service.url}/api/drivers/{driver['id']}", headers=AUTH).json()
    assert shown["rating"] == 5.0 and shown["rating_count"] == 1

    refund_url = f"{live_service.url}/api/rescues/{r['id']}/refund"
    part = httpx.post(refund_url, headers={**AUTH, "Idempotency-Key": "k1"}, json={"amount_cents": 500})
    again = httpx.post(refund_url, headers={**AUTH, "Idempotency-Key": "k1"}, json={"amount_cents": 500})
    assert part.status_code == 201 and again.status_code == 201 and part.json()["id"] == again.json()["id"]
    assert len([c for c in fake_stripe.calls("/v1/refunds") if c.form["payment_intent"] == paid["payment_intent"]]) == 1
    rider.wait_for("refunded $5.00")
    full = httpx.post(refund_url, headers=AUTH, json={})
    assert full.status_code == 201 and full.json()["amount_cents"] == r["quote_cents"] - 500
    assert httpx.post(refund_url, headers=AUTH, json={}).status_code == 409
    ledger = httpx.get(f"{live_service.url}/api/rescues/{r['id']}/payments", headers=AUTH).json()
    assert ledger["payment_status"] == "refunded"
    assert ledger["paid_cents"] == r["quote_cents"] == ledger["refunded_cents"]
    refunds = [e for e in ledger["entries"] if e["kind"] == "refund"]
    assert sum(e["amount_cents"] for e in refunds) == ledger["refunded_cents"]
    assert [e["kind"] for e in ledger["entries"]].count("session") == 1


def test_bad_or_stale_signatures_are_rejected(live_service):
    event = stripe_event("checkout.session.completed", {"id": "cs_x", "payment_status": "paid"})
    assert post_stripe_event(webhook(live_service), event, secret="whsec_wrong").status_code == 400
    stale = int(time.time()) - 3600
    assert post_stripe_event(webhook(live_service), event, timestamp=stale).status_code == 400
    r = httpx.post(f"{live_service.url}/stripe/webhook", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
