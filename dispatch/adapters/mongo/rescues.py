"""Rescues and riders in MongoDB."""
from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dispatch.adapters.mongo import NEWEST, count, counts_by, newest_first, next_sequence
from dispatch.model.clock import now_ms
from dispatch.model.rescue import (
    COMPLETED,
    OPEN_STATUSES,
    PAY_NONE,
    SEARCHING,
    STATUSES,
    UNFULFILLED,
    Rescue,
    SearchTerms,
)

FIRST_CODE = 1000


class MongoRescues:
    def __init__(self, db: Database) -> None:
        self.col = db.rescues
        self.db = db

    def _one(self, query: dict[str, Any]) -> Rescue | None:
        doc = self.col.find_one(query)
        return Rescue.from_doc(doc) if doc else None

    def next_seq(self) -> int:
        return next_sequence(self.db, "rescue_code", FIRST_CODE)

    def add(self, rescue: Rescue) -> bool:
        try:
            self.col.insert_one(rescue.to_doc())
        except DuplicateKeyError:
            return False
        return True

    def get(self, rescue_id: str) -> Rescue | None:
        return self._one({"_id": rescue_id})

    def by_code(self, code: str) -> Rescue | None:
        return self._one({"code": code})

    def by_request_key(self, key: str) -> Rescue | None:
        return self._one({"request_key": key})

    def open_for_rider(self, phone: str) -> Rescue | None:
        docs = list(self.col.find({"rider_phone": phone, "status": {"$in": list(OPEN_STATUSES)}})
                    .sort(NEWEST).limit(1))
        return Rescue.from_doc(docs[0]) if docs else None

    def list(self, status: str | None = None, limit: int = 50, offset: int = 0) -> list[Rescue]:
        cursor = self.col.find({"status": status} if status else {}).sort(NEWEST).skip(offset).limit(limit)
        return [Rescue.from_doc(d) for d in cursor]

    def search(self, terms: SearchTerms, limit: int, offset: int) -> list[Rescue]:
        query: dict[str, Any] = {}
        either = []
        if terms.code:
            either.append({"code": terms.code})
        if terms.phone_digits:
            either.append({"rider_phone": {"$regex": re.escape(terms.phone_digits) + "$"}})
        if either:
            query["$or"] = either
        if terms.status:
            query["status"] = terms.status
        if terms.since is not None or terms.until is not None:
            query["created_at"] = {**({"$gte": terms.since} if terms.since is not None else {}),
                                   **({"$lt": terms.until} if terms.until is not None else {})}
        return [Rescue.from_doc(d) for d in self.col.find(query).sort(NEWEST).skip(offset).limit(limit)]

    def count_open(self) -> int:
        return count(self.col, {"status": {"$in": list(OPEN_STATUSES)}})

    def count_by_status(self) -> dict[str, int]:
        return {s: 0 for s in STATUSES} | counts_by(self.col, "status")

    def on_board(self, unfulfilled_since: int, limit: int) -> list[Rescue]:
        """One query per status, merged here: each is an index range on both servers, where one
        `$or` of them scans every rescue on nx-27017."""
        queries = [{"status": s} for s in OPEN_STATUSES] + [{"status": UNFULFILLED,
                                                             "updated_at": {"$gt": unfulfilled_since}}]
        docs = [d for q in queries for d in self.col.find(q).sort(NEWEST).limit(limit)]
        return [Rescue.from_doc(d) for d in sorted(docs, key=newest_first)[:limit]]

    def created_since(self, since: int) -> dict[str, int]:
        return {d["_id"]: d["created_at"] for d in self.col.find({"created_at": {"$gte": since}}, {"created_at": 1})}

    def compare_and_set(self, rescue_id: str, version: int, status: str, fields: dict[str, Any]) -> Rescue | None:
        after = self.col.find_one_and_update({"_id": rescue_id, "version": version, "status": status},
                                             {"$set": fields}, return_document=ReturnDocument.AFTER)
        return Rescue.from_doc(after) if after else None

    def set_fields(self, rescue_id: str, fields: dict[str, Any]) -> None:
        self.col.update_one({"_id": rescue_id}, {"$set": {**fields, "updated_at": now_ms()}})

    def claim_next_dispatch(self, rescue_id: str, now: int, due: int) -> bool:
        result = self.col.update_one({"_id": rescue_id, "status": SEARCHING, "next_dispatch_at": {"$lt": now}},
                                     {"$set": {"next_dispatch_at": due}})
        return result.modified_count == 1

    def claim_rider_update(self, rescue_id: str, last: int | None, now: int) -> bool:
        result = self.col.update_one({"_id": rescue_id, "status": SEARCHING, "rider_updated_at": last},
                                     {"$set": {"rider_updated_at": now}})
        return result.modified_count == 1

    def waiting_for_retry(self, now: int, limit: int) -> list[str]:
        docs = self.col.find({"status": SEARCHING, "next_dispatch_at": {"$gt": now}}, {"_id": 1})
        return [d["_id"] for d in docs.sort("created_at", 1).limit(limit)]

    def overdue_searching(self, before: int, limit: int) -> list[str]:
        docs = self.col.find({"status": SEARCHING, "next_dispatch_at": {"$lt": before}}, {"_id": 1}).limit(limit)
        return [d["_id"] for d in docs]

    def completed_without_link(self, before: int, limit: int) -> list[str]:
        docs = self.col.find({"status": COMPLETED, "payment_status": PAY_NONE, "updated_at": {"$lt": before}},
                             {"_id": 1}).limit(limit)
        return [d["_id"] for d in docs]

    def claim_payment_link(self, rescue_id: str, current_session: str | None, payable: Collection[str],
                           fields: dict[str, Any]) -> bool:
        result = self.col.update_one(
            {"_id": rescue_id, "payment_session_id": current_session, "payment_status": {"$in": list(payable)}},
            {"$set": {**fields, "updated_at": now_ms()}})
        return result.modified_count == 1

    def bump_payment_attempt(self, rescue_id: str, expected: int | None, attempt: int) -> None:
        self.col.update_one({"_id": rescue_id, "payment_attempt": expected}, {"$set": {"payment_attempt": attempt}})

    def rate(self, rescue_id: str, stars: int, comment: str, at: int) -> Rescue | None:
        after = self.col.find_one_and_update(
            {"_id": rescue_id, "rating": None},
            {"$set": {"rating": stars, "rating_comment": comment, "rated_at": at}},
            return_document=ReturnDocument.AFTER)
        return Rescue.from_doc(after) if after else None

    def latest_completed(self, rider_phone: str, updated_since: int) -> Rescue | None:
        docs = list(self.col.find({"rider_phone": rider_phone, "status": COMPLETED,
                                   "updated_at": {"$gt": updated_since}}).sort([("created_at", -1)]).limit(1))
        return Rescue.from_doc(docs[0]) if docs else None

    def claim_arriving(self, rescue_id: str, event_id: str, at: int) -> bool:
        result = self.col.update_one({"_id": rescue_id, "arriving_at": None},
                                     {"$set": {"arriving_at": at, "arriving_event_id": event_id}})
        return result.modified_count == 1


class MongoRiders:
    """The rider's profile: how often they needed us, and when last."""

    def __init__(self, db: Database) -> None:
        self.col = db.riders

    def count_rescue(self, phone: str, at: int) -> None:
        update = {"$inc": {"rescues": 1}, "$set": {"last_rescue_at": at}}
        try:
            self.col.update_one({"phone": phone}, update, upsert=True)
        except DuplicateKeyError:  # two first rescues at once: the other insert won
            self.col.update_one({"phone": phone}, update)
