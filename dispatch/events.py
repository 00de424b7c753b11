"""Domain events: appended to a rescue's timeline, then handed to whoever subscribed.

Notifications, follow-up jobs and metrics subscribe here instead of being called from
wherever a change happened. An event is stored `handled: false` and marked handled once
every handler has run, so a process killed between the two (or a handler that failed)
leaves it for the sweeper to hand out again. Handlers must therefore be idempotent
(keyed on `event.id`), and a handler failing never undoes the change.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import structlog
from pymongo.database import Database

from dispatch.clock import now_ms

log = structlog.get_logger(__name__)

RESCUE_REQUESTED = "rescue_requested"
OFFER_MADE, OFFER_DECLINED, OFFER_EXPIRED, OFFER_WITHDRAWN = (
    "offer_made", "offer_declined", "offer_expired", "offer_withdrawn")
DRIVER_ASSIGNED, DRIVER_REASSIGNED, DRIVER_DROPPED = "driver_assigned", "driver_reassigned", "driver_dropped"
DRIVER_EN_ROUTE, DRIVER_ARRIVED, RIDER_LOADED = "driver_en_route", "driver_arrived", "rider_loaded"
RESCUE_COMPLETED, RESCUE_CANCELLED, RESCUE_UNFULFILLED = "rescue_completed", "rescue_cancelled", "rescue_unfulfilled"
STILL_SEARCHING = "still_searching"
PAYMENT_LINK_SENT, PAYMENT_LINK_EXPIRED, PAYMENT_PAID, PAYMENT_FAILED, PAYMENT_REFUNDED = (
    "payment_link_sent", "payment_link_expired", "payment_paid", "payment_failed", "payment_refunded")
RESCUE_RATED = "rescue_rated"
CALL_CONNECTED, CALL_FAILED = "call_connected", "call_failed"
DRIVER_LOCATION_UPDATED = "driver_location_updated"


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    rescue_id: str | None
    by: str
    at: int
    data: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False  # handed out again by the sweeper: the world may have moved on


Handler = Callable[[Event], None]
MAX_REDELIVERIES = 5


class EventLog:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._handlers: dict[str, list[Handler]] = {}

    def subscribe(self, kind: str, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def publish(self, kind: str, rescue_id: str | None, by: str, **data: Any) -> Event:
        event = Event(uuid.uuid4().hex, kind, rescue_id, by, now_ms(), data)
        self.db.events.insert_one({"_id": event.id, "rescue_id": rescue_id, "type": kind, "by": by,
                                   "at": event.at, "data": data, "handled": not self._handlers.get(kind)})
        self._handle(event)
        return event

    def redeliver(self, older_than_ms: int, limit: int = 200) -> int:
        """Hand out again events whose handlers did not all finish (see the module doc)."""
        count = 0
        for doc in self.db.events.find({"handled": False, "at": {"$lt": older_than_ms}}).limit(limit):
            self.db.events.update_one({"_id": doc["_id"]}, {"$inc": {"redelivered": 1}})
            if int(doc.get("redelivered") or 0) >= MAX_REDELIVERIES:
                self.db.events.update_one({"_id": doc["_id"]}, {"$set": {"handled": True, "gave_up": True}})
                log.error("event_given_up", event_type=doc["type"], rescue_id=doc.get("rescue_id"))
                continue
            self._handle(Event(doc["_id"], doc["type"], doc.get("rescue_id"), doc.get("by", ""), doc["at"],
                               dict(doc.get("data") or {}), redelivered=True))
            count += 1
        return count

    def _handle(self, event: Event) -> None:
        handlers = self._handlers.get(event.type, [])
        ok = True
        for handler in handlers:
            try:
                handler(event)
            except Exception:  # the change stands; the event stays unhandled for the sweeper
                ok = False
                log.exception("event_handler_failed", event_type=event.type, rescue_id=event.rescue_id,
                              handler=getattr(handler, "__qualname__", "?"))
        if handlers and ok:
            self.db.events.update_one({"_id": event.id}, {"$set": {"handled": True}})
