"""Rescues in MongoDB: idempotent creation, compare-and-set status changes, the timeline.

Every change is a domain event appended to the `events` collection (the rescue's
timeline) in the same call that makes it, so nothing changes without a record of who
did it.
"""
from __future__ import annotations

import uuid
from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dispatch.rescues import OPEN_STATUSES, IllegalTransition, Rescue, next_status
from dispatch.clock import now_ms
from dispatch.storage import next_sequence

FIRST_CODE = 1000
CAS_ATTEMPTS = 5


class ConcurrentUpdate(RuntimeError):
    """Somebody else kept changing the rescue; the caller may retry the whole request."""


class RescueStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record_event(self, rescue_id: str, kind: str, by: str, **data: Any) -> None:
        self.db.events.insert_one({"_id": uuid.uuid4().hex, "rescue_id": rescue_id, "type": kind,
                                   "by": by, "at": now_ms(), "data": data})

    def create(self, *, request_key: str, rider_phone: str, pickup: dict, dropoff: dict | None,
               problem: str, problem_note: str, quote_cents: int, trip_miles: float, surge: float,
               channel: str) -> Rescue:
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
            "trip_miles": trip_miles, "surge": surge, "channel": channel, "driver_id": None,
            "payment_status": "none", "cancel_reason": None, "cancelled_by": None,
            "created_at": now, "updated_at": now, "version": 0,
        }
        try:
            self.db.rescues.insert_one(doc)
        except DuplicateKeyError:
            return Rescue.from_doc(self.db.rescues.find_one({"request_key": request_key}))
        self.record_event(doc["_id"], "rescue_requested", by=f"rider:{channel}",
                          quote_cents=doc["quote_cents"], problem=problem)
        return Rescue.from_doc(doc)

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
              changes: dict[str, Any] | None = None, **event_data: Any) -> tuple[Rescue, bool]:
        """Move a rescue through its lifecycle with compare-and-set on its version.

        Returns the rescue and whether anything changed: repeating the current status is a
        no-op, an illegal change raises IllegalTransition, a lost race is retried.
        """
        for _ in range(CAS_ATTEMPTS):
            doc = self.db.rescues.find_one({"_id": rescue_id})
            if doc is None:
                raise KeyError(rescue_id)
            target = next_status(doc["status"], action)
            if target is None:
                return Rescue.from_doc(doc), False
            update = {"status": target, "updated_at": now_ms(), "version": doc.get("version", 0) + 1,
                      **(changes or {})}
            after = self.db.rescues.find_one_and_update(
                {"_id": rescue_id, "version": doc.get("version", 0), "status": doc["status"]},
                {"$set": update}, return_document=ReturnDocument.AFTER)
            if after is not None:
                self.record_event(rescue_id, event, by=by, status=target, **event_data)
                return Rescue.from_doc(after), True
        raise ConcurrentUpdate(rescue_id)


__all__ = ["RescueStore", "ConcurrentUpdate", "IllegalTransition"]
