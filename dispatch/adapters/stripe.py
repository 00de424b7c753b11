"""The PaymentGateway port on Stripe: Checkout Sessions and refunds with the real `stripe`
client, and the sandbox stand-in used when there is no STRIPE_SECRET_KEY. Both return plain
dicts."""
from __future__ import annotations

import time
import uuid
from typing import Any

import stripe

from dispatch.config import Settings
from dispatch.ports import PaymentUnavailable

LINK_VALID_SECONDS = 23 * 3600  # Checkout allows 30 min to 24 h
CURRENCY = "usd"


class StripeGateway:
    def __init__(self, settings: Settings) -> None:
        # Without max_network_retries the client makes no retries at all.
        self._client = stripe.StripeClient(settings.stripe_secret_key,
                                           base_addresses={"api": settings.stripe_api_base},
                                           max_network_retries=2)
        self._base = settings.public_base_url

    def create_checkout(self, *, rescue_id: str, code: str, amount_cents: int, idempotency_key: str) -> dict[str, Any]:
        try:
            session = self._client.v1.checkout.sessions.create(params={
                "mode": "payment",
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": CURRENCY, "unit_amount": int(amount_cents),
                    "product_data": {"name": f"SupportCarr e-bike rescue {code}"}}}],
                "metadata": {"rescue_id": rescue_id, "rescue_code": code},
                "payment_intent_data": {"metadata": {"rescue_id": rescue_id, "rescue_code": code}},
                "client_reference_id": rescue_id,
                "expires_at": int(time.time()) + LINK_VALID_SECONDS,
                "success_url": f"{self._base}/paid",
                "cancel_url": f"{self._base}/paid",
            }, options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise PaymentUnavailable(type(exc).__name__) from exc
        return {"id": session.id, "url": session.url, "amount_total": session.amount_total,
                "expires_at": session.expires_at}

    def refund(self, *, payment_intent: str, amount_cents: int, idempotency_key: str) -> dict[str, Any]:
        try:
            refund = self._client.v1.refunds.create(
                params={"payment_intent": payment_intent, "amount": int(amount_cents)},
                options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise PaymentUnavailable(type(exc).__name__) from exc
        return {"id": refund.id, "amount": refund.amount, "status": refund.status}


class SandboxGateway:
    """No Stripe key: links open the local test-payment page, whose button completes the
    payment through the same event handling a real webhook takes."""

    def __init__(self, settings: Settings) -> None:
        self._base = settings.public_base_url

    def create_checkout(self, *, rescue_id: str, code: str, amount_cents: int, idempotency_key: str) -> dict[str, Any]:
        session_id = "cs_sandbox_" + uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key).hex
        return {"id": session_id, "url": f"{self._base}/sandbox/pay/{session_id}",
                "amount_total": int(amount_cents), "expires_at": int(time.time()) + LINK_VALID_SECONDS}

    def refund(self, *, payment_intent: str, amount_cents: int, idempotency_key: str) -> dict[str, Any]:
        return {"id": "re_sandbox_" + uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key).hex,
                "amount": int(amount_cents), "status": "succeeded"}
