"""A local stand-in for the Stripe API (Checkout Sessions, refunds) for the real `stripe`
client. Like Stripe, a request repeated with the same Idempotency-Key gets the first answer."""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs

from tests.fakes.http import FakeServer


@dataclass
class StripeRequest:
    method: str
    path: str
    form: dict[str, str]
    idempotency_key: str | None


class FakeStripe(FakeServer):
    def __init__(self, secret_key: str) -> None:
        super().__init__()
        self.secret_key = secret_key
        self.requests: list[StripeRequest] = []
        self.sessions: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self._by_key: dict[tuple[str, str], tuple[int, dict]] = {}
        # (status, only for this rescue's checkout, only for this path)
        self.failures: list[tuple[int, str | None, str | None]] = []
        self.lock = threading.Lock()  # a test holds it to stall every request inside the call
        self._arrivals_lock = threading.Lock()
        self._arrivals: list[str | None] = []  # each Checkout request's rescue, as it arrives

    def checkout_arrived(self, rescue_id: str) -> bool:
        """Whether a Checkout request for the rescue has reached the fake, even one stalled on `lock`."""
        with self._arrivals_lock:
            return rescue_id in self._arrivals

    def fail_next(self, count: int, status: int = 500, rescue_id: str | None = None,
                  path: str | None = None) -> None:
        """Answer the next `count` requests with `status`; with `rescue_id`, only that rescue's
        checkout requests (a live service's links drain may create other rescues' links
        meanwhile); with `path`, only requests to it (`/v1/refunds`: the live service makes none
        of its own)."""
        with self.lock:
            self.failures.extend([(status, rescue_id, path)] * count)

    def _take_failure(self, path: str, form: dict[str, str]) -> int | None:
        for i, (status, rescue_id, only_path) in enumerate(self.failures):
            if only_path is not None and only_path != path:
                continue
            if rescue_id is None or (path == "/v1/checkout/sessions"
                                     and form.get("client_reference_id") == rescue_id):
                del self.failures[i]
                return status
        return None

    def calls(self, path: str) -> list[StripeRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def handle(self, h) -> None:
        if h.headers.get("Authorization") != f"Bearer {self.secret_key}":
            self.reply(h, 401, json.dumps({"error": {"type": "invalid_request_error",
                                                     "message": "Invalid API Key provided"}}).encode())
            return
        raw = h.rfile.read(int(h.headers.get("Content-Length", 0))).decode()
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        path = h.path.split("?")[0]
        key = h.headers.get("Idempotency-Key")
        if path == "/v1/checkout/sessions":
            with self._arrivals_lock:
                self._arrivals.append(form.get("client_reference_id"))
        with self.lock:
            self.requests.append(StripeRequest(h.command, path, form, key))
            failure = self._take_failure(path, form)
            cached = self._by_key.get((path, key)) if key else None
        if failure:
            self.reply(h, failure, json.dumps({"error": {"type": "api_error", "message": "fake failure"}}).encode())
            return
        if cached:
            status, body = cached
            self.reply(h, status, json.dumps(body).encode())
            return
        if h.command == "POST" and path == "/v1/checkout/sessions":
            status, body = 200, self._session(form)
        elif h.command == "POST" and path == "/v1/refunds":
            status, body = 200, self._refund(form)
        else:
            status, body = 404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}
        with self.lock:
            if key:
                self._by_key[(path, key)] = (status, body)
        self.reply(h, status, json.dumps(body).encode())

    def _session(self, form: dict[str, str]) -> dict:
        session_id = "cs_test_" + uuid.uuid4().hex
        amount = int(form["line_items[0][price_data][unit_amount]"]) * int(form.get("line_items[0][quantity]", 1))
        session = {
            "id": session_id, "object": "checkout.session", "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "amount_total": amount, "currency": form.get("line_items[0][price_data][currency]"),
            "expires_at": int(form.get("expires_at", time.time() + 3600)),
            "client_reference_id": form.get("client_reference_id"),
            "metadata": {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")},
            "payment_status": "unpaid", "status": "open", "payment_intent": None, "mode": form.get("mode"),
            "product_name": form.get("line_items[0][price_data][product_data][name]"),
        }
        with self.lock:
            self.sessions[session_id] = session
        return session

    def _refund(self, form: dict[str, str]) -> dict:
        refund = {"id": "re_" + uuid.uuid4().hex, "object": "refund", "amount": int(form["amount"]),
                  "payment_intent": form.get("payment_intent"), "status": "succeeded", "currency": "usd"}
        with self.lock:
            self.refunds[refund["id"]] = refund
        return refund
