"""Payments and after-care (PRODUCT.md §6): the payment link, Stripe events, refunds, ratings.

The ledger (`ledger` collection) holds every Checkout Session and refund with its
amounts; every Stripe event is kept once by id (`stripe_events`). A rescue's money
(`paid_cents`, `refunded_cents`, `payment_status`) is always recomputed from the ledger,
so events may arrive in any order and twice without the totals drifting. No Stripe
imports here: the gateway is passed in.
"""
from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Any, Iterator

import structlog
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from redis import Redis

from dispatch import events as ev
from dispatch.clock import now_ms
from dispatch.events import Event, EventLog
from dispatch.jobs import Jobs
from dispatch.rescue_store import RescueStore
from dispatch.rescues import COMPLETED
from dispatch.stripe_gateway import Gateway

log = structlog.get_logger(__name__)

PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
RATING_WINDOW_MS = 48 * 3600 * 1000
LOCK_SECONDS = 30
LINK_REUSE_MARGIN_SECONDS = 15 * 60  # a link about to expire is replaced, not re-sent


class PaymentError(ValueError):
    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class Payments:
    def __init__(self, db: Database, redis: Redis, rescues: RescueStore, events: EventLog, jobs: Jobs,
                 gateway: Gateway) -> None:
        self.db, self.redis, self.rescues, self.events, self.jobs = db, redis, rescues, events, jobs
        self.gateway = gateway

    def subscribe(self) -> None:
        self.events.subscribe(ev.RESCUE_COMPLETED, self._link_soon)

    def _link_soon(self, event: Event) -> None:
        self.jobs.payment_link(event.rescue_id)

    @contextmanager
    def _lock(self, rescue_id: str) -> Iterator[None]:
        """Money for one rescue is recomputed one change at a time."""
        with self.redis.lock(f"lock:pay:{rescue_id}", timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS):
            yield

    # -- the link ----------------------------------------------------------------------------
    def create_link(self, rescue_id: str) -> str:
        """The job behind every link: one Checkout Session per rescue and attempt, however
        often it runs (the idempotency key makes Stripe return the same session)."""
        rescue = self.rescues.get(rescue_id)
        if rescue is None or rescue.status != COMPLETED:
            return "not-completed"
        if rescue.payment_status in ("paid", "refunded"):
            return "paid"
        attempt = int(rescue.extra.get("payment_attempt") or 1)
        key = f"checkout-{rescue_id}-{attempt}"
        session = self.gateway.create_checkout(rescue_id=rescue_id, code=rescue.code,
                                               amount_cents=rescue.quote_cents, idempotency_key=key)
        try:
            self.db.ledger.insert_one({"_id": session["id"], "kind": "session", "key": key, "rescue_id": rescue_id,
                                       "attempt": attempt, "amount_cents": int(session["amount_total"]),
                                       "url": session["url"], "status": "open", "expires_at": session["expires_at"],
                                       "created_at": now_ms()})
        except DuplicateKeyError:
            pass  # this job ran before: the session is already on the ledger
        current = rescue.extra.get("payment_session_id")
        if current == session["id"]:
            return "exists"
        claimed = self.db.rescues.update_one(
            {"_id": rescue_id, "payment_session_id": current, "payment_status": {"$in": ["none", "link_sent", "failed"]}},
            {"$set": {"payment_session_id": session["id"], "payment_url": session["url"],
                      "payment_status": "link_sent", "payment_attempt": attempt, "updated_at": now_ms()}})
        if claimed.modified_count:
            self.events.publish(ev.PAYMENT_LINK_SENT, rescue_id, by="payments", session_id=session["id"],
                                url=session["url"], amount_cents=int(session["amount_total"]))
            return "sent"
        return "raced"

    def resend(self, rescue_id: str, by: str) -> str:
        """A fresh link (the rider's PAY, or a dispatcher): a new attempt, so a new session."""
        rescue = self.rescues.get(rescue_id)
        if rescue is None or rescue.status != COMPLETED:
            raise PaymentError("only a completed rescue can be paid")
        if rescue.payment_status in ("paid", "refunded"):
            raise PaymentError("this rescue is already paid")
        current = self.db.ledger.find_one({"_id": rescue.extra.get("payment_session_id"), "status": "open"})
        if current and int(current.get("expires_at") or 0) > now_ms() // 1000 + LINK_REUSE_MARGIN_SECONDS:
            # The link still works: send it again rather than open a second way to pay.
            self.events.publish(ev.PAYMENT_LINK_SENT, rescue_id, by=by, session_id=current["_id"],
                                url=current["url"], amount_cents=int(current["amount_cents"]))
            return "resent"
        attempt = int(rescue.extra.get("payment_attempt") or 1)
        self.db.rescues.update_one({"_id": rescue_id, "payment_attempt": rescue.extra.get("payment_attempt")},
                                   {"$set": {"payment_attempt": attempt + 1}})
        self.jobs.payment_link(rescue_id)
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
        seen = self.db.stripe_events.find_one({"_id": event_id})
        if seen and seen.get("status") == "applied":
            return "duplicate"
        rescue_id = self._rescue_of(obj)
        if rescue_id is None or self.rescues.get(rescue_id) is None:
            self._mark_event(event_id, kind, obj, rescue_id)
            return "not-ours"
        with self._lock(rescue_id):
            seen = self.db.stripe_events.find_one({"_id": event_id})
            if seen and seen.get("status") == "applied":
                return "duplicate"
            known = True
            if kind in PAID_EVENTS and obj.get("payment_status") == "paid":
                self._session_seen(rescue_id, obj, status="paid")
            elif kind == "checkout.session.expired":
                self._session_seen(rescue_id, obj, status="expired")
            elif kind == "payment_intent.payment_failed":
                self.db.rescues.update_one({"_id": rescue_id}, {"$set": {"payment_failed_at": now_ms()}})
            elif kind == "charge.refunded":
                refunded = _cents(obj.get("amount_refunded"))
                doc = self.db.rescues.find_one({"_id": rescue_id}, {"charge_refunded_cents": 1})
                if refunded > int(doc.get("charge_refunded_cents") or 0):
                    self.db.rescues.update_one({"_id": rescue_id}, {"$set": {"charge_refunded_cents": refunded}})
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
        self.db.stripe_events.update_one({"_id": event_id}, {"$set": {
            "type": kind[:100], "rescue_id": rescue_id, "received_at": now_ms(), "object_id": _text(obj.get("id")),
            "status": "applied"}}, upsert=True)

    def _rescue_of(self, obj: dict[str, Any]) -> str | None:
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        rescue_id = _text(metadata.get("rescue_id")) or _text(obj.get("client_reference_id"))
        if rescue_id:
            return rescue_id
        intent = _text(obj.get("payment_intent")) if obj.get("object") != "payment_intent" else _text(obj.get("id"))
        if intent:
            session = self.db.ledger.find_one({"kind": "session", "payment_intent": intent})
            return session["rescue_id"] if session else None
        return None

    def _session_seen(self, rescue_id: str, obj: dict[str, Any], status: str) -> None:
        session_id = _text(obj.get("id")) or ""
        fields = {"status": status, "updated_at": now_ms()}
        if status == "paid":
            fields.update(amount_cents=_cents(obj.get("amount_total")), payment_intent=_text(obj.get("payment_intent")))
        existing = self.db.ledger.find_one({"_id": session_id})
        if existing is None:  # a session this process never recorded (created before a crash)
            self.db.ledger.insert_one({"_id": session_id, "kind": "session", "key": f"event-{session_id}",
                                       "rescue_id": rescue_id, "amount_cents": _cents(obj.get("amount_total")),
                                       "created_at": now_ms(), **fields})
        elif existing["status"] != "paid":  # an expiry arriving after the payment changes nothing
            self.db.ledger.update_one({"_id": session_id}, {"$set": fields})

    def _recompute(self, rescue_id: str) -> tuple[str, str]:
        doc = self.db.rescues.find_one({"_id": rescue_id})
        sessions = list(self.db.ledger.find({"rescue_id": rescue_id, "kind": "session"}))
        refunds = self.db.ledger.find({"rescue_id": rescue_id, "kind": "refund", "status": "succeeded"})
        paid = sum(int(s.get("amount_cents") or 0) for s in sessions if s["status"] == "paid")
        refunded = max(sum(int(r["amount_cents"]) for r in refunds), int(doc.get("charge_refunded_cents") or 0))
        if paid:
            status = "refunded" if refunded >= paid else "paid"
        elif doc.get("payment_failed_at"):
            status = "failed"
        elif sessions:
            status = "link_sent"
        else:
            status = "none"
        self.db.rescues.update_one({"_id": rescue_id}, {"$set": {
            "payment_status": status, "paid_cents": paid, "refunded_cents": min(refunded, paid) if paid else 0,
            "updated_at": now_ms()}})
        return doc.get("payment_status", "none"), status

    def _announce(self, rescue_id: str, kind: str, obj: dict[str, Any], before: str, after: str) -> None:
        if after == "paid" and before not in ("paid", "refunded"):
            self.db.rescues.update_one({"_id": rescue_id}, {"$set": {"rating_requested_at": now_ms()}})
            self.events.publish(ev.PAYMENT_PAID, rescue_id, by="stripe", amount_cents=_cents(obj.get("amount_total")))
        elif after == "failed" and before != "failed":
            self.events.publish(ev.PAYMENT_FAILED, rescue_id, by="stripe")
        elif kind == "checkout.session.expired" and after == "link_sent":
            current = self.db.rescues.find_one({"_id": rescue_id}, {"payment_session_id": 1})
            if current.get("payment_session_id") == obj.get("id"):
                self.events.publish(ev.PAYMENT_LINK_EXPIRED, rescue_id, by="stripe", session_id=obj.get("id"))
        elif after == "refunded" and before != "refunded" and kind == "charge.refunded":
            self.events.publish(ev.PAYMENT_REFUNDED, rescue_id, by="stripe",
                                amount_cents=_cents(obj.get("amount_refunded")), full=True)

    # -- refunds -----------------------------------------------------------------------------
    def refund(self, rescue_id: str, amount_cents: int | None, key: str | None, by: str) -> dict[str, Any]:
        """Full (amount None) or partial. The same key never refunds twice; a retry after a
        Stripe failure re-sends the same keys, so Stripe does not refund twice either. A rider
        who paid two links is refunded from each payment, never more than it charged."""
        with self._lock(rescue_id):
            doc = self.db.rescues.find_one({"_id": rescue_id})
            if doc is None:
                raise PaymentError("no such rescue", 404)
            request_key = f"refund-{rescue_id}-{key}" if key else None
            if request_key:
                done = self._refund_request(request_key)
                if done and done["status"] == "succeeded":
                    return done
            paid, refunded = int(doc.get("paid_cents") or 0), int(doc.get("refunded_cents") or 0)
            if not paid:
                raise PaymentError("this rescue has not been paid")
            remaining = paid - refunded
            if remaining <= 0:
                raise PaymentError("this rescue is already fully refunded")
            amount = remaining if amount_cents is None else amount_cents
            if not (0 < amount <= remaining):
                raise PaymentError(f"amount_cents must be 1..{remaining}", 400)
            request_key = request_key or f"refund-{rescue_id}-{refunded}-{amount}"
            if self.db.ledger.find_one({"request": request_key}) is None:
                for i, (intent, part) in enumerate(self._allocate(rescue_id, amount)):
                    self.db.ledger.insert_one({"_id": uuid.uuid4().hex, "kind": "refund", "key": f"{request_key}:{i}",
                                               "request": request_key, "rescue_id": rescue_id,
                                               "payment_intent": intent, "amount_cents": part,
                                               "status": "pending", "by": by, "created_at": now_ms()})
            for entry in self.db.ledger.find({"request": request_key, "status": "pending"}):
                result = self.gateway.refund(payment_intent=entry["payment_intent"] or "",
                                             amount_cents=entry["amount_cents"], idempotency_key=entry["key"])
                self.db.ledger.update_one({"_id": entry["_id"]}, {"$set": {
                    "status": "succeeded" if result["status"] in ("succeeded", "pending") else result["status"],
                    "stripe_refund_id": result["id"], "updated_at": now_ms()}})
            self._recompute(rescue_id)
            done = self._refund_request(request_key)
        self.events.publish(ev.PAYMENT_REFUNDED, rescue_id, by=by, amount_cents=done["amount_cents"],
                            full=done["amount_cents"] == remaining)
        return done

    def _allocate(self, rescue_id: str, amount: int) -> list[tuple[str | None, int]]:
        """Split a refund over the paid sessions, each up to what is left of its own payment."""
        taken: dict[str | None, int] = {}
        for entry in self.db.ledger.find({"rescue_id": rescue_id, "kind": "refund", "status": {"$in": ["pending", "succeeded"]}}):
            taken[entry.get("payment_intent")] = taken.get(entry.get("payment_intent"), 0) + int(entry["amount_cents"])
        parts, left = [], amount
        for session in self.db.ledger.find({"rescue_id": rescue_id, "kind": "session", "status": "paid"}).sort("created_at", 1):
            intent = session.get("payment_intent")
            available = int(session.get("amount_cents") or 0) - taken.get(intent, 0)
            part = min(available, left)
            if part > 0:
                parts.append((intent, part))
                left -= part
        if left > 0:
            raise PaymentError("refunds outside SupportCarr leave less to refund than that")
        return parts

    def _refund_request(self, request_key: str) -> dict[str, Any] | None:
        """One dispatcher request as one ledger-shaped entry (it may span several payments)."""
        parts = list(self.db.ledger.find({"request": request_key}).sort("key", 1))
        if not parts:
            return None
        status = "succeeded" if all(p["status"] == "succeeded" for p in parts) else "pending"
        return {"_id": request_key, "kind": "refund", "amount_cents": sum(int(p["amount_cents"]) for p in parts),
                "status": status, "by": parts[0].get("by"), "created_at": parts[0]["created_at"],
                "stripe_refund_id": ",".join(p.get("stripe_refund_id") or "" for p in parts) or None}

    def ledger(self, rescue_id: str) -> dict[str, Any]:
        doc = self.db.rescues.find_one({"_id": rescue_id}) or {}
        entries = list(self.db.ledger.find({"rescue_id": rescue_id}).sort("created_at", 1))
        stripe_events = list(self.db.stripe_events.find({"rescue_id": rescue_id}).sort("received_at", 1))
        return {"rescue_id": rescue_id, "quote_cents": doc.get("quote_cents"),
                "paid_cents": int(doc.get("paid_cents") or 0), "refunded_cents": int(doc.get("refunded_cents") or 0),
                "payment_status": doc.get("payment_status", "none"),
                "entries": entries, "stripe_events": stripe_events}

    # -- ratings -----------------------------------------------------------------------------
    def rate(self, rescue_id: str, stars: int, comment: str) -> bool:
        """Once per rescue; the driver's running average counts it once too."""
        rated = self.db.rescues.find_one_and_update({"_id": rescue_id, "rating": None},
                                                    {"$set": {"rating": stars, "rating_comment": comment[:280],
                                                              "rated_at": now_ms()}})
        if rated is None:
            return False
        if rated.get("driver_id"):
            self.db.drivers.update_one({"_id": rated["driver_id"]}, {"$inc": {"rating_count": 1, "rating_sum": stars}})
        self.events.publish(ev.RESCUE_RATED, rescue_id, by="rider", stars=stars)
        return True

    def aftercare_for(self, rider_phone: str) -> dict[str, Any] | None:
        """The rider's latest completed rescue while its payment or rating is still open."""
        docs = list(self.db.rescues.find({"rider_phone": rider_phone, "status": COMPLETED,
                                          "updated_at": {"$gt": now_ms() - RATING_WINDOW_MS}})
                    .sort([("created_at", -1)]).limit(1))
        return docs[0] if docs else None


def _text(value: Any) -> str | None:
    """Stripe ids are strings; anything else in a signed-but-odd event counts as missing."""
    return value[:255] if isinstance(value, str) and value else None


def _cents(value: Any) -> int:
    """Amounts are integer cents; anything else (or beyond any real amount) counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12 else 0
