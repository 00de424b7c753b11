"""Payment rules (PRODUCT.md §6) over in-memory fakes: one link per attempt, Stripe events
once and in any order, refunds never above what was paid, one rating."""
from __future__ import annotations

import pytest

from dispatch.model import events as ev
from dispatch.model.errors import Conflict, Invalid
from dispatch.model.rescue import PAY_LINK_SENT, PAY_PAID, PAY_REFUNDED
from dispatch.ports import PaymentUnavailable
from tests.dispatch.unit.conftest import add_driver, add_rescue, texts_to


def completed(c, quote_cents: int = 2800):
    driver = add_driver(c)
    rescue = add_rescue(c, quote_cents=quote_cents)
    c.dispatcher.dispatch(rescue.id)
    c.dispatcher.accept(c.drivers.get(driver.id))
    c.dispatcher.job_action(c.drivers.get(driver.id), "arrive")
    c.dispatcher.job_action(c.drivers.get(driver.id), "complete")
    return c.rescues.get(rescue.id), driver


def stripe(kind: str, obj: dict, event_id: str) -> dict:
    return {"id": event_id, "type": kind, "data": {"object": obj}}


def paid(session: dict, rescue_id: str, intent: str = "pi_1") -> dict:
    return {"id": session["id"], "object": "checkout.session", "payment_status": "paid",
            "amount_total": session["amount_total"], "payment_intent": intent, "metadata": {"rescue_id": rescue_id}}


def test_the_link_job_makes_one_session_and_one_text_however_often_it_runs(c):
    rescue, _ = completed(c)
    assert c.payments.create_link(rescue.id) == "sent"
    assert c.payments.create_link(rescue.id) == "exists"
    assert len(c.payments.gateway.sessions) == 1
    assert c.rescues.get(rescue.id).payment_status == PAY_LINK_SENT
    assert texts_to(c, rescue.rider_phone).count("payment_link") == 1


def test_no_link_before_completion(c):
    rescue = add_rescue(c)
    assert c.payments.create_link(rescue.id) == "not-completed"
    with pytest.raises(Conflict):
        c.payments.resend(rescue.id, by="rider")


def test_an_outage_raises_for_the_retry_which_uses_the_same_key(c):
    rescue, _ = completed(c)
    c.payments.gateway.down = 1
    with pytest.raises(PaymentUnavailable):
        c.payments.create_link(rescue.id)
    assert c.payments.create_link(rescue.id) == "sent"
    [session] = c.payments.gateway.sessions.values()
    assert session["key"] == f"checkout-{rescue.id}-1"


def test_a_paid_event_is_applied_once_with_a_receipt_and_a_rating_prompt(c):
    rescue, _ = completed(c)
    c.payments.create_link(rescue.id)
    [session] = c.payments.gateway.sessions.values()
    event = stripe("checkout.session.completed", paid(session, rescue.id), "evt_1")
    assert c.payments.apply_event(event) == "checkout.session.completed"
    assert c.payments.apply_event(event) == "duplicate"
    after = c.rescues.get(rescue.id)
    assert after.payment_status == PAY_PAID and after.extra["paid_cents"] == 2800
    assert after.extra.get("rating_requested_at")
    assert texts_to(c, rescue.rider_phone).count("payment_receipt") == 1


def test_events_for_someone_else_or_malformed_change_nothing(c):
    assert c.payments.apply_event({"id": "evt_x", "type": "checkout.session.completed",
                                   "data": {"object": {"metadata": {"rescue_id": "not-ours"}}}}) == "not-ours"
    assert c.payments.apply_event({"id": "evt_y"}) == "malformed"


def test_a_refund_event_before_the_payment_event_ends_refunded(c):
    rescue, _ = completed(c)
    c.payments.create_link(rescue.id)
    [session] = c.payments.gateway.sessions.values()
    refunded = {"id": "ch_1", "object": "charge", "amount_refunded": 2800, "payment_intent": "pi_1",
                "metadata": {"rescue_id": rescue.id}}
    c.payments.apply_event(stripe("charge.refunded", refunded, "evt_r"))
    c.payments.apply_event(stripe("checkout.session.completed", paid(session, rescue.id), "evt_p"))
    assert c.rescues.get(rescue.id).payment_status == PAY_REFUNDED


def test_refunds_are_split_over_two_payments_and_never_exceed_what_was_paid(c):
    rescue, _ = completed(c)
    c.payments.create_link(rescue.id)
    [first] = c.payments.gateway.sessions.values()
    c.payments.apply_event(stripe("checkout.session.completed", paid(first, rescue.id, "pi_1"), "evt_1"))
    # The rider paid a second link too (a resend opened a new attempt).
    second = c.payments.gateway.create_checkout(rescue_id=rescue.id, code=rescue.code, amount_cents=2800,
                                       idempotency_key="another")
    c.payments.apply_event(stripe("checkout.session.completed", paid(second, rescue.id, "pi_2"), "evt_2"))
    assert c.rescues.get(rescue.id).extra["paid_cents"] == 5600
    with pytest.raises(Invalid):
        c.payments.refund(rescue.id, 5601, key=None, by="dispatcher")
    done = c.payments.refund(rescue.id, 4000, key="k1", by="dispatcher")
    assert done["amount_cents"] == 4000 and done["status"] == "succeeded"
    assert [(r["payment_intent"], r["amount"]) for r in c.payments.gateway.refunds] == [("pi_1", 2800), ("pi_2", 1200)]
    assert c.payments.refund(rescue.id, 4000, key="k1", by="dispatcher")["amount_cents"] == 4000, "same key"
    assert len(c.payments.gateway.refunds) == 2
    c.payments.refund(rescue.id, None, key=None, by="dispatcher")
    assert c.rescues.get(rescue.id).payment_status == PAY_REFUNDED
    with pytest.raises(Conflict):
        c.payments.refund(rescue.id, None, key=None, by="dispatcher")


def test_a_rescue_is_rated_once_and_the_driver_average_counts_it_once(c):
    rescue, driver = completed(c)
    assert c.payments.rate(rescue.id, 4, "kind") is True
    assert c.payments.rate(rescue.id, 1, "again") is False
    assert c.drivers.get(driver.id).rating == 4.0 and c.drivers.get(driver.id).rating_count == 1
    assert [e.type for e in c.events.of_types_since([ev.RescueRated.TYPE], 0)] == ["rescue_rated"]
