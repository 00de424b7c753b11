"""Payments and after-care (PRODUCT.md §6): the payment link, Stripe events, refunds, ratings.

The ledger holds every Checkout Session and refund with its amounts; every Stripe event is
kept once by id. A rescue's money (`paid_cents`, `refunded_cents`, `payment_status`) is
always recomputed from the ledger, so events may arrive in any order and twice without the
totals drifting. The payment gateway is a port: no Stripe here.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from dispatch.bus import EventBus
from dispatch.model import events as ev
from dispatch.model.clock import now_ms
from dispatch.model.errors import Conflict, Invalid, NotFound
from dispatch.model.rescue import (
    COMPLETED,
    PAY_FAILED,
    PAY_LINK_SENT,
    PAY_NONE,
    PAY_PAID,
    PAY_REFUNDED,
    PAYABLE,
    SETTLED,
    Rescue,
)
from dispatch.ports import (
    Busy,
    DriverRepository,
    Ledger,
    Locks,
    PaymentGateway,
    RescueRepository,
    Scheduler,
    StripeEventLog,
)

log = structlog.get_logger(__name__)

PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
SESSION, REFUND = "session", "refund"
# Ledger entry statuses.
OPEN, PAID, EXPIRED, PENDING, SUCCEEDED = "open", "paid", "expired", "pending", "succeeded"
RATING_WINDOW_MS = 48 * 3600 * 1000
LOCK_SECONDS = 30
LINK_REUSE_MARGIN_SECONDS = 15 * 60  # a link about to expire is replaced, not re-sent
COMMENT_MAX = 280


class Payments:
    def __init__(self, rescues: RescueRepository, drivers: DriverRepository, ledger: Ledger,
                 stripe_events: StripeEventLog, bus: EventBus, scheduler: Scheduler, locks: Locks,
                 gateway: PaymentGateway) -> None:
        self.rescues, self.drivers, self.ledger, self.stripe_events = rescues, drivers, ledger, stripe_events
        self.bus, self.scheduler, self.locks, self.gateway = bus, scheduler, locks, gateway

    def link_soon(self, event: ev.RescueCompleted) -> None:
        self.scheduler.payment_link(event.rescue_id)

    @contextmanager
    def _lock(self, rescue_id: str) -> Iterator[None]:
        """Money for one rescue is recomputed one change at a time."""
        with self.locks.hold(f"pay:{rescue_id}", LOCK_SECONDS, LOCK_SECONDS) as got:
            if not got:
                raise Busy(f"payments of {rescue_id} are being changed")
            yield

    # -- the link ----------------------------------------------------------------------------
    def create_link(self, rescue_id: str) -> str:
        """The job behind every link: one Checkout Session per rescue and attempt, however
        often it runs (the idempotency key makes Stripe return the same session)."""
        rescue = self.rescues.get(rescue_id)
        if rescue is None or rescue.status != COMPLETED:
            return "not-completed"
        if rescue.payment_status in SETTLED:
            return "paid"
        attempt = int(rescue.extra.get("payment_attempt") or 1)
        key = f"checkout-{rescue_id}-{attempt}"
        session = self.gateway.create_checkout(rescue_id=rescue_id, code=rescue.code,
                                               amount_cents=rescue.quote_cents, idempotency_key=key)
        # A job that ran before already put the session on the ledger: adding it again is a no-op.
        self.ledger.add({"_id": session["id"], "kind": SESSION, "key": key, "rescue_id": rescue_id,
                         "attempt": attempt, "amount_cents": int(session["amount_total"]), "url": session["url"],
                         "status": OPEN, "expires_at": session["expires_at"], "created_at": now_ms()})
        current = rescue.extra.get("payment_session_id")
        if current == session["id"]:
            return "exists"
        if self.rescues.claim_payment_link(rescue_id, current, PAYABLE, {
                "payment_session_id": session["id"], "payment_url": session["url"],
                "payment_status": PAY_LINK_SENT, "payment_attempt": attempt}):
            self.bus.publish(ev.PaymentLinkSent(rescue_id=rescue_id, by="payments", session_id=session["id"],
                                                url=session["url"], amount_cents=int(session["amount_total"])))
            return "sent"
        return "raced"

    def resend(self, rescue_id: str, by: str) -> str:
        """A fresh link (the rider's PAY, or a dispatcher): a new attempt, so a new session."""
        rescue = self.rescues.get(rescue_id)
        if rescue is None or rescue.status != COMPLETED:
            raise Conflict("only a completed rescue can be paid")
        if rescue.payment_status in SETTLED:
            raise Conflict("this rescue is already paid")
        current = self.ledger.get(rescue.extra.get("payment_session_id") or "")
        if current and current["status"] == OPEN and \
                int(current.get("expires_at") or 0) > now_ms() // 1000 + LINK_REUSE_MARGIN_SECONDS:
            # The link still works: send it again rather than open a second way to pay.
            self.bus.publish(ev.PaymentLinkSent(rescue_id=rescue_id, by=by, session_id=current["_id"],
                                                url=current["url"], amount_cents=int(current["amount_cents"])))
            return "resent"
        attempt = rescue.extra.get("payment_attempt")
        self.rescues.bump_payment_attempt(rescue_id, attempt, int(attempt or 1) + 1)
        self.scheduler.payment_link(rescue_id)
        log.info("payment_link_resend", rescue_id=rescue_id, by=by)
        return "queued"

    # -- Stripe events -----------------------------------------------------------------------
    def apply_event(self, event: dict[str, Any]) -> str:
        """Apply a verified Stripe event once per event id, in whatever order they come.

        The event is marked applied only after its effect is stored, under the rescue's lock:
        a delivery that failed half-way (503) is applied in full when Stripe retries it.
        """
        event_id, kind = _text(event.get("id")), _text(event.get("type")) or ""
        data = event.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if not event_id or not isinstance(obj, dict):
            return "malformed"
        rescue_id = self._rescue_of(obj)  # a repeat is told from its record under the lock, not before
        if rescue_id is None or self.rescues.get(rescue_id) is None:
            self._mark_event(event_id, kind, obj, rescue_id)
            return "not-ours"
        with self._lock(rescue_id):
            if self.stripe_events.applied(event_id):
                return "duplicate"
            known = True
            if kind in PAID_EVENTS and obj.get("payment_status") == "paid":
                self._session_seen(rescue_id, obj, status=PAID)
            elif kind == "checkout.session.expired":
                self._session_seen(rescue_id, obj, status=EXPIRED)
            elif kind == "payment_intent.payment_failed":
                self.rescues.set_fields(rescue_id, {"payment_failed_at": now_ms()})
            elif kind == "charge.refunded":
                refunded = _cents(obj.get("amount_refunded"))
                rescue = self.rescues.get(rescue_id)
                if refunded > int(rescue.extra.get("charge_refunded_cents") or 0):
                    self.rescues.set_fields(rescue_id, {"charge_refunded_cents": refunded})
            else:
                known = False
            if known:
                before, after = self._recompute(rescue_id)
            self._mark_event(event_id, kind, obj, rescue_id)
        if not known:
            return "ignored"
        self._announce(rescue_id, kind, obj, before, after)
        return kind

    def _mark_event(self, event_id: str, kind: str, obj: dict[str, Any], rescue_id: str | None) -> None:
        self.stripe_events.mark_applied(event_id, {"type": kind[:100], "rescue_id": rescue_id, "received_at": now_ms(),
                                                   "object_id": _text(obj.get("id"))})

    def _rescue_of(self, obj: dict[str, Any]) -> str | None:
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        rescue_id = _text(metadata.get("rescue_id")) or _text(obj.get("client_reference_id"))
        if rescue_id:
            return rescue_id
        intent = _text(obj.get("payment_intent")) if obj.get("object") != "payment_intent" else _text(obj.get("id"))
        if intent:
            session = self.ledger.session_for_intent(intent)
            return session["rescue_id"] if session else None
        return None

    def _session_seen(self, rescue_id: str, obj: dict[str, Any], status: str) -> None:
        session_id = _text(obj.get("id")) or ""
        fields: dict[str, Any] = {"status": status, "updated_at": now_ms()}
        if status == PAID:
            fields.update(amount_cents=_cents(obj.get("amount_total")), payment_intent=_text(obj.get("payment_intent")))
        existing = self.ledger.get(session_id)
        if existing is None:  # a session this process never recorded (created before a crash)
            self.ledger.add({"_id": session_id, "kind": SESSION, "key": f"event-{session_id}", "rescue_id": rescue_id,
                             "amount_cents": _cents(obj.get("amount_total")), "created_at": now_ms(), **fields})
        elif existing["status"] != PAID:  # an expiry arriving after the payment changes nothing
            self.ledger.update(session_id, fields)

    def _recompute(self, rescue_id: str) -> tuple[str, str]:
        rescue = self.rescues.get(rescue_id)
        entries = self.ledger.entries(rescue_id)  # sessions and refunds in one read
        sessions = [e for e in entries if e["kind"] == SESSION]
        refunds = [e for e in entries if e["kind"] == REFUND and e["status"] == SUCCEEDED]
        paid = sum(int(s.get("amount_cents") or 0) for s in sessions if s["status"] == PAID)
        refunded = max(sum(int(r["amount_cents"]) for r in refunds),
                       int(rescue.extra.get("charge_refunded_cents") or 0))
        if paid:
            status = PAY_REFUNDED if refunded >= paid else PAY_PAID
        elif rescue.extra.get("payment_failed_at"):
            status = PAY_FAILED
        elif sessions:
            status = PAY_LINK_SENT
        else:
            status = PAY_NONE
        fields = {"payment_status": status, "paid_cents": paid, "refunded_cents": min(refunded, paid) if paid else 0}
        if status == PAY_PAID and rescue.payment_status not in SETTLED:
            fields["rating_requested_at"] = now_ms()  # the receipt asks for one (`_announce`)
        self.rescues.set_fields(rescue_id, fields)
        return rescue.payment_status, status

    def _announce(self, rescue_id: str, kind: str, obj: dict[str, Any], before: str, after: str) -> None:
        if after == PAY_PAID and before not in SETTLED:
            self.bus.publish(ev.PaymentPaid(rescue_id=rescue_id, by="stripe",
                                            amount_cents=_cents(obj.get("amount_total"))))
        elif after == PAY_FAILED and before != PAY_FAILED:
            self.bus.publish(ev.PaymentFailed(rescue_id=rescue_id, by="stripe"))
        elif kind == "checkout.session.expired" and after == PAY_LINK_SENT:
            if self.rescues.get(rescue_id).extra.get("payment_session_id") == obj.get("id"):
                self.bus.publish(ev.PaymentLinkExpired(rescue_id=rescue_id, by="stripe", session_id=obj.get("id")))
        elif after == PAY_REFUNDED and before != PAY_REFUNDED and kind == "charge.refunded":
            self.bus.publish(ev.PaymentRefunded(rescue_id=rescue_id, by="stripe",
                                                amount_cents=_cents(obj.get("amount_refunded")), full=True))

    # -- refunds -----------------------------------------------------------------------------
    def refund(self, rescue_id: str, amount_cents: int | None, key: str | None, by: str) -> dict[str, Any]:
        """Full (amount None) or partial. The same key never refunds twice; a retry after a
        Stripe failure re-sends the same keys, so Stripe does not refund twice either. A rider
        who paid two links is refunded from each payment, never more than it charged."""
        with self._lock(rescue_id):
            rescue = self.rescues.get(rescue_id)
            if rescue is None:
                raise NotFound("no such rescue")
            request_key = f"refund-{rescue_id}-{key}" if key else None
            if request_key:
                done = self._refund_request(request_key)
                if done and done["status"] == SUCCEEDED:
                    return done
            paid, refunded = int(rescue.extra.get("paid_cents") or 0), int(rescue.extra.get("refunded_cents") or 0)
            if not paid:
                raise Conflict("this rescue has not been paid")
            remaining = paid - refunded
            if remaining <= 0:
                raise Conflict("this rescue is already fully refunded")
            amount = remaining if amount_cents is None else amount_cents
            if not (0 < amount <= remaining):
                raise Invalid(f"amount_cents must be 1..{remaining}")
            request_key = request_key or f"refund-{rescue_id}-{refunded}-{amount}"
            if not self.ledger.request_parts(request_key):
                for i, (intent, part) in enumerate(self._allocate(rescue_id, amount)):
                    self.ledger.add({"_id": uuid.uuid4().hex, "kind": REFUND, "key": f"{request_key}:{i}",
                                     "request": request_key, "rescue_id": rescue_id, "payment_intent": intent,
                                     "amount_cents": part, "status": PENDING, "by": by, "created_at": now_ms()})
            for entry in self.ledger.request_parts(request_key):
                if entry["status"] != PENDING:
                    continue
                result = self.gateway.refund(payment_intent=entry["payment_intent"] or "",
                                             amount_cents=entry["amount_cents"], idempotency_key=entry["key"])
                self.ledger.update(entry["_id"], {
                    "status": SUCCEEDED if result["status"] in (SUCCEEDED, PENDING) else result["status"],
                    "stripe_refund_id": result["id"], "updated_at": now_ms()})
            self._recompute(rescue_id)
            done = self._refund_request(request_key)
        self.bus.publish(ev.PaymentRefunded(rescue_id=rescue_id, by=by, amount_cents=done["amount_cents"],
                                            full=done["amount_cents"] == remaining))
        return done

    def _allocate(self, rescue_id: str, amount: int) -> list[tuple[str | None, int]]:
        """Split a refund over the paid sessions, each up to what is left of its own payment."""
        taken: dict[str | None, int] = {}
        for entry in self.ledger.entries(rescue_id, REFUND):
            if entry["status"] in (PENDING, SUCCEEDED):
                intent = entry.get("payment_intent")
                taken[intent] = taken.get(intent, 0) + int(entry["amount_cents"])
        parts, left = [], amount
        for session in self.ledger.entries(rescue_id, SESSION):
            if session["status"] != PAID:
                continue
            intent = session.get("payment_intent")
            part = min(int(session.get("amount_cents") or 0) - taken.get(intent, 0), left)
            if part > 0:
                parts.append((intent, part))
                left -= part
        if left > 0:
            raise Conflict("refunds outside SupportCarr leave less to refund than that")
        return parts

    def _refund_request(self, request_key: str) -> dict[str, Any] | None:
        """One dispatcher request as one ledger-shaped entry (it may span several payments)."""
        parts = self.ledger.request_parts(request_key)
        if not parts:
            return None
        status = SUCCEEDED if all(p["status"] == SUCCEEDED for p in parts) else PENDING
        return {"_id": request_key, "kind": REFUND, "amount_cents": sum(int(p["amount_cents"]) for p in parts),
                "status": status, "by": parts[0].get("by"), "created_at": parts[0]["created_at"],
                "stripe_refund_id": ",".join(p.get("stripe_refund_id") or "" for p in parts) or None}

    def ledger_of(self, rescue_id: str) -> dict[str, Any]:
        rescue = self.rescues.get(rescue_id)
        extra = rescue.extra if rescue else {}
        return {"rescue_id": rescue_id, "quote_cents": rescue.quote_cents if rescue else None,
                "paid_cents": int(extra.get("paid_cents") or 0),
                "refunded_cents": int(extra.get("refunded_cents") or 0),
                "payment_status": rescue.payment_status if rescue else PAY_NONE,
                "entries": self.ledger.entries(rescue_id), "stripe_events": self.stripe_events.for_rescue(rescue_id)}

    # -- ratings -----------------------------------------------------------------------------
    def rate(self, rescue_id: str, stars: int, comment: str) -> bool:
        """Once per rescue; the driver's running average counts it once too."""
        rated = self.rescues.rate(rescue_id, stars, comment[:COMMENT_MAX], now_ms())
        if rated is None:
            return False
        if rated.driver_id:
            self.drivers.add_rating(rated.driver_id, stars)
        self.bus.publish(ev.RescueRated(rescue_id=rescue_id, by="rider", stars=stars))
        return True

    def aftercare_for(self, rider_phone: str) -> Rescue | None:
        """The rider's latest completed rescue while its payment or rating is still open."""
        return self.rescues.latest_completed(rider_phone, now_ms() - RATING_WINDOW_MS)


def _text(value: Any) -> str | None:
    """Stripe ids are strings; anything else in a signed-but-odd event counts as missing."""
    return value[:255] if isinstance(value, str) and value else None


def _cents(value: Any) -> int:
    """Amounts are integer cents; anything else (or beyond any real amount) counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12 else 0
