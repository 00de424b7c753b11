"""Rescues in MongoDB: idempotent creation and compare-and-set status changes.

Every change is published as a domain event (`dispatch.events`), which appends it to the
rescue's timeline with who made it and lets notifications and jobs follow from it.
"""
from __future__ import annotations

import uuid
from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dispatch.clock import now_ms
from dispatch.events import RESCUE_REQUESTED, EventLog
from dispatch.rescues import OPEN_STATUSES, IllegalTransition, Rescue, next_status
from dispatch.storage import next_sequence

FIRST_CODE = 1000
CAS_ATTEMPTS = 5


class ConcurrentUpdate(RuntimeError):
    """Somebody else kept changing the rescue; the caller may retry the whole request."""


class ExpectationFailed(ValueError):
    """The rescue is not in the shape the caller expected (e.g. another driver holds it)."""


class RescueStore:
    def __init__(self, db: Database, events: EventLog) -> None:
        self.db = db
        self.events = events

    def create(self, *, request_key: str, rider_phone: str, pickup: dict, dropoff: dict | None,
               problem: str, problem_note: str, quote_cents: int, trip_miles: float, surge: float,
               channel: str, driver_pay_cents: int = 0) -> Rescue:
        """Create once per request: a retried webhook gets the rescue its first delivery made."""
        existing = self.db.rescues.find_one({"request_key": request_key})
        if existing:
            return Rescue.from_doc(existing)
        now = now_ms()
        seq = next_sequence(self.db, "rescue_code", FIRST_CODE)
        doc = {
            "_id": uuid.uuid4().hex, "request_key": request_key, "seq": seq, "code": f"R{seq}",
            "status": "searching", "rider_phone": rider_phone, "pickup": pickup, "dropoff": dropoff,
            "problem": problem, "problem_note": problem_note, "quote_cents": int(quote_cents),
            "driver_pay_cents": int(driver_pay_cents), "trip_miles": trip_miles, "surge": surge,
            "channel": channel, "driver_id": None, "payment_status": "none", "cancel_reason": None,
            "cancelled_by": None, "created_at": now, "updated_at": now, "searching_since": now, "next_dispatch_at": 0,
            "version": 0,
        }
        try:
            self.db.rescues.insert_one(doc)
        except DuplicateKeyError:
            return Rescue.from_doc(self.db.rescues.find_one({"request_key": request_key}))
        self._count_rider(rider_phone, now)
        self.events.publish(RESCUE_REQUESTED, doc["_id"], by=f"rider:{channel}",
                            quote_cents=doc["quote_cents"], problem=problem)
        return Rescue.from_doc(doc)

    def _count_rider(self, phone: str, now: int) -> None:
        """The rider's profile: how often they needed us, and when last."""
        update = {"$inc": {"rescues": 1}, "$set": {"last_rescue_at": now}}
        try:
            self.db.riders.update_one({"phone": phone}, update, upsert=True)
        except DuplicateKeyError:  # two first rescues at once: the other insert won
            self.db.riders.update_one({"phone": phone}, update)

    def get(self, rescue_id: str) -> Rescue | None:
        doc = self.db.rescues.find_one({"_id": rescue_id})
        return Rescue.from_doc(doc) if doc else None

    def open_for_rider(self, phone: str) -> Rescue | None:
        docs = list(self.db.rescues.find({"rider_phone": phone, "status": {"$in": list(OPEN_STATUSES)}})
                    .sort([("created_at", DESCENDING), ("seq", DESCENDING)]).limit(1))
        return Rescue.from_doc(docs[0]) if docs else None

    def list(self, status: str | None = None, limit: int = 50, offset: int = 0) -> list[Rescue]:
        query = {"status": status} if status else {}
        cursor = (self.db.rescues.find(query).sort([("created_at", DESCENDING), ("seq", DESCENDING)])
                  .skip(offset).limit(limit))
        return [Rescue.from_doc(d) for d in cursor]

    def count_open(self) -> int:
        return self.db.rescues.count_documents({"status": {"$in": list(OPEN_STATUSES)}})

    def timeline(self, rescue_id: str) -> list[dict[str, Any]]:
        return list(self.db.events.find({"rescue_id": rescue_id}, {"_id": 0}).sort("at", 1))

    def apply(self, rescue_id: str, action: str, *, by: str, event: str,
              changes: dict[str, Any] | None = None, expect: dict[str, Any] | None = None,
              **event_data: Any) -> tuple[Rescue, bool]:
        """Move a rescue through its lifecycle with compare-and-set on its version.

        Returns the rescue and whether anything changed: repeating the current status is a
        no-op, an illegal change raises IllegalTransition, a rescue that does not match
        `expect` raises ExpectationFailed, a lost race is retried.
        """
        for _ in range(CAS_ATTEMPTS):
            doc = self.db.rescues.find_one({"_id": rescue_id})
            if doc is None:
                raise KeyError(rescue_id)
            if expect and any(doc.get(k) != v for k, v in expect.items()):
                raise ExpectationFailed(rescue_id)
            target = next_status(doc["status"], action)
            if target is None:
                return Rescue.from_doc(doc), False
            now = now_ms()
            update = {"status": target, "updated_at": now, "version": doc.get("version", 0) + 1,
                      **({"searching_since": now} if target == "searching" else {}), **(changes or {})}
            after = self.db.rescues.find_one_and_update(
                {"_id": rescue_id, "version": doc.get("version", 0), "status": doc["status"]},
                {"$set": update}, return_document=ReturnDocument.AFTER)
            if after is not None:
                self.events.publish(event, rescue_id, by=by, status=target, **event_data)
                return Rescue.from_doc(after), True
        raise ConcurrentUpdate(rescue_id)

    def update(self, rescue_id: str, fields: dict[str, Any]) -> None:
        """Bookkeeping that is not a status change (last notice sent, reassigned driver...)."""
        self.db.rescues.update_one({"_id": rescue_id}, {"$set": {**fields, "updated_at": now_ms()}})


__all__ = ["RescueStore", "ConcurrentUpdate", "ExpectationFailed", "IllegalTransition"]
