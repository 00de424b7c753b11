"""HTTP entry points for money: the Stripe webhook and the sandbox test-payment page."""
from __future__ import annotations

import json
import secrets

import stripe
import structlog
from flask import Blueprint, abort, render_template, request
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from dispatch.http import plain, services
from dispatch.payments import SESSION
from dispatch.ports import Busy

log = structlog.get_logger(__name__)
bp = Blueprint("payments", __name__)


@bp.post("/stripe/webhook")
def stripe_webhook():
    secret = services().settings.stripe_webhook_secret
    if not secret:
        return plain("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)", 400)
    payload = request.get_data()
    try:
        stripe.Webhook.construct_event(payload, request.headers.get("Stripe-Signature", ""), secret)
        event = json.loads(payload)
    except (ValueError, AttributeError, TypeError, stripe.SignatureVerificationError):
        # stripe 16 raises AttributeError for signed JSON that is not an object
        log.warning("stripe_signature_rejected")
        return plain("invalid Stripe signature or payload", 400)
    if not isinstance(event, dict):
        return plain("event must be a JSON object", 400)
    try:
        outcome = services().payments.apply_event(event)
    except (PyMongoError, RedisError, Busy) as exc:
        log.error("store_unavailable", error=type(exc).__name__)
        return plain("temporarily unavailable; Stripe will retry", 503)
    log.info("stripe_event", type=str(event.get("type"))[:64], outcome=outcome)
    return plain(outcome, 200)


def _sandbox_session(session_id: str) -> dict:
    svc = services()
    if not svc.settings.sandbox_payments:
        abort(404)
    session = svc.ledger.get(session_id)
    if session is None or session.get("kind") != SESSION:
        abort(404)
    return session


@bp.get("/sandbox/pay/<session_id>")
def sandbox_pay_page(session_id: str):
    session = _sandbox_session(session_id)
    rescue = services().rescues.get(session["rescue_id"])
    return render_template("sandbox_pay.html", session=session, rescue=rescue)


@bp.post("/sandbox/pay/<session_id>")
def sandbox_pay(session_id: str):
    """Completes the test payment through the same code a signed Stripe event reaches."""
    session = _sandbox_session(session_id)
    event = {"id": f"evt_sandbox_{secrets.token_hex(12)}", "type": "checkout.session.completed",
             "data": {"object": {"id": session_id, "object": "checkout.session", "payment_status": "paid",
                                 "amount_total": session["amount_cents"],
                                 "payment_intent": f"pi_sandbox_{session_id[-24:]}",
                                 "client_reference_id": session["rescue_id"],
                                 "metadata": {"rescue_id": session["rescue_id"]}}}}
    svc = services()
    svc.payments.apply_event(event)
    return render_template("sandbox_pay.html", session=svc.ledger.get(session_id),
                           rescue=svc.rescues.get(session["rescue_id"]), done=True)


@bp.get("/paid")
def paid_page():
    return render_template("paid.html")
