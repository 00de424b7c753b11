"""Domain events: appended to a rescue's timeline, then handed to whoever subscribed.

Notifications, follow-up jobs and metrics subscribe here instead of being called from
wherever a change happened. Handlers must be idempotent (keyed on `event.id`): the
sweeper may re-drive work after a crash, and a handler failing never undoes the change.
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


Handler = Callable[[Event], None]


class EventLog:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._handlers: dict[str, list[Handler]] = {}

    def subscribe(self, kind: str, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def publish(self, kind: str, rescue_id: str | None, by: str, **data: Any) -> Event:
        event = Event(uuid.uuid4().hex, kind, rescue_id, by, now_ms(), data)
        self.db.events.insert_one({"_id": event.id, "rescue_id": rescue_id, "type": kind, "by": by,
                                   "at": event.at, "data": data})
        for handler in self._handlers.get(kind, []):
            try:
                handler(event)
            except Exception:  # the change stands; the sweeper re-drives what a handler missed
                log.exception("event_handler_failed", event_type=kind, rescue_id=rescue_id,
                              handler=getattr(handler, "__qualname__", "?"))
        return event
