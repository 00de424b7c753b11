"""Texts in and out in MongoDB (one `messages` collection), delivery receipts, opt-outs."""
from __future__ import annotations

from typing import Any

from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from dispatch.adapters.mongo import NEWEST, newest_first
from dispatch.model import message as m
from dispatch.model.clock import now_ms

DUPLICATE_KEY = 11000


class MongoMessages:
    def __init__(self, db: Database) -> None:
        self.col = db.messages
        self.receipts = db.receipts

    # -- any direction ---------------------------------------------------------------------
    def add(self, doc: dict[str, Any]) -> bool:
        try:
            self.col.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def add_many(self, docs: list[dict[str, Any]]) -> list[bool]:
        """Each doc's `add` in one round trip (unordered: a duplicate does not stop the rest).
        Raises the BulkWriteError if any doc failed for another reason than its key."""
        if not docs:
            return []
        try:
            self.col.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if exc.details.get("writeConcernErrors") or any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            duplicates = {e["index"] for e in errors}
            return [i not in duplicates for i in range(len(docs))]
        return [True] * len(docs)

    def by_key(self, key: str) -> dict[str, Any] | None:
        return self.col.find_one({"key": key})

    def get(self, message_id: str) -> dict[str, Any] | None:
        return self.col.find_one({"_id": message_id})

    def for_rescue(self, rescue_id: str, phones: list[str], since: int, until: int, limit: int) -> list[dict[str, Any]]:
        """The rescue's texts, and those of its parties (`phones`: the rider, its drivers) between
        `since` and `until` (the conversation that led to it, answers that carry no rescue), newest first.
        One query per condition and per phone, merged here: each is an index range on both
        servers, where one `$or` (or `$in` of phones) scans every text on nx-27017."""
        queries = [{"rescue_id": rescue_id}] + [{"phone": p, "created_at": {"$gte": since, "$lte": until}}
                                                 for p in dict.fromkeys(phones)]
        found = {d["_id"]: d for q in queries for d in self.col.find(q).sort(NEWEST).limit(limit)}
        return sorted(found.values(), key=newest_first)[:limit]

    def newest(self, limit: int) -> list[dict[str, Any]]:
        return list(self.col.find().sort("created_at", -1).limit(limit))

    def thread(self, phone: str, limit: int) -> list[dict[str, Any]]:
        return list(self.col.find({"phone": phone}).sort("created_at", 1).limit(limit))

    # -- outbound --------------------------------------------------------------------------
    def unsent(self, limit: int) -> list[dict[str, Any]]:
        docs = self.col.find({"direction": m.OUT, "status": m.PENDING, "attempts": 0}, {"phone": 1, "created_at": 1})
        return list(docs.sort("created_at", 1).limit(limit))

    def unfinished(self, limit: int) -> list[dict[str, Any]]:
        """Pending or mid-send, by rank: a range an index serves on both servers (nx-27017
        scans the whole collection for `$in`)."""
        docs = self.col.find({"direction": m.OUT, "status_rank": {"$lte": m.STATUS_RANK[m.SENDING]}})
        return list(docs.sort([("created_at", 1), ("seq", 1)]).limit(limit))

    def unfinished_to(self, phone: str, limit: int) -> list[dict[str, Any]]:
        docs = self.col.find({"phone": phone, "direction": m.OUT, "status": {"$in": [m.PENDING, m.SENDING]}})
        return list(docs.sort([("created_at", 1), ("seq", 1)]).limit(limit))

    def stale_pending(self, older_than: int, limit: int) -> list[str]:
        docs = self.col.find({"direction": m.OUT, "status": m.PENDING, "updated_at": {"$lt": older_than}}, {"_id": 1})
        return [d["_id"] for d in docs.limit(limit)]

    def touch(self, message_id: str) -> None:
        self.col.update_one({"_id": message_id}, {"$set": {"updated_at": now_ms()}})

    def claim(self, message_id: str, at: int) -> dict[str, Any] | None:
        return self.col.find_one_and_update(
            {"_id": message_id, "status": m.PENDING},
            {"$set": {"status": m.SENDING, "status_rank": m.STATUS_RANK[m.SENDING], "claimed_at": at,
                      "waited_on": False, "receipt_early": False},
             "$inc": {"attempts": 1}})

    def finish(self, message_id: str, expect: str, status: str, **fields: Any) -> dict[str, Any] | None:
        # The document as it was: its marks (`waited_on`, `receipt_early`) come back in the same round trip.
        return self.col.find_one_and_update({"_id": message_id, "status": expect},
                                            {"$set": {"status": status, "status_rank": m.STATUS_RANK[status],
                                                      "updated_at": now_ms(), **fields}},
                                            projection={"waited_on": 1, "receipt_early": 1})

    def withdraw_queued(self, phone: str, error_code: str | None) -> int:
        result = self.col.update_many({"phone": phone, "direction": m.OUT, "status": m.PENDING},
                                      {"$set": {"status": m.SUPPRESSED, "status_rank": m.STATUS_RANK[m.SUPPRESSED],
                                                "error_code": error_code, "updated_at": now_ms()}})
        return result.modified_count

    def wait_behind(self, message_id: str) -> bool:
        return self.col.update_one({"_id": message_id, "status": m.SENDING},
                                   {"$set": {"waited_on": True}}).matched_count == 1

    def expect_receipt(self) -> None:
        self.col.update_many({"direction": m.OUT, "status": m.SENDING}, {"$set": {"receipt_early": True}})

    def stuck_sending(self, claimed_before: int, limit: int) -> list[dict[str, Any]]:
        return list(self.col.find({"direction": m.OUT, "status": m.SENDING,
                                   "claimed_at": {"$lt": claimed_before}}).limit(limit))

    def has_sid(self, twilio_sid: str) -> bool:
        return self.col.find_one({"twilio_sid": twilio_sid}, {"_id": 1}) is not None

    def keep_receipt(self, twilio_sid: str, fields: dict[str, Any]) -> None:
        try:
            self.receipts.update_one({"_id": twilio_sid, "status_rank": {"$lt": fields["status_rank"]}},
                                     {"$set": {**fields, "updated_at": now_ms()}}, upsert=True)
        except DuplicateKeyError:
            pass  # a later status is already stored

    def receipt(self, twilio_sid: str) -> dict[str, Any] | None:
        return self.receipts.find_one({"_id": twilio_sid})

    def advance(self, twilio_sid: str, fields: dict[str, Any]) -> bool:
        result = self.col.update_one({"twilio_sid": twilio_sid, "status_rank": {"$lt": fields["status_rank"]}},
                                     {"$set": {**fields, "updated_at": now_ms()}})
        return result.modified_count == 1

    # -- inbound ---------------------------------------------------------------------------
    def unapplied_before(self, before: int) -> bool:
        return self.col.find_one({"direction": m.IN, "channel": m.SMS, "processed": False,
                                  "created_at": {"$lt": before}}, {"_id": 1}) is not None

    def unapplied(self, limit: int) -> list[dict[str, Any]]:
        """The oldest inbound texts not yet applied, across numbers (id, phone, seq)."""
        docs = self.col.find({"direction": m.IN, "channel": m.SMS, "processed": False}, {"phone": 1, "seq": 1})
        return list(docs.sort("seq", 1).limit(limit))

    def unapplied_from(self, phone: str) -> list[dict[str, Any]]:
        docs = self.col.find({"phone": phone, "direction": m.IN, "channel": m.SMS, "processed": False})
        return list(docs.sort([("seq", 1)]))

    def inbound(self, message_id: str) -> dict[str, Any] | None:
        return self.col.find_one({"_id": message_id, "direction": m.IN})

    def mark_applied(self, message_id: str, status: str) -> None:
        self.col.update_one({"_id": message_id},
                            {"$set": {"processed": True, "status": status, "updated_at": now_ms()}})


class MongoOptOuts:
    """The opt-out registry every send path consults."""

    def __init__(self, db: Database) -> None:
        self.col = db.optouts

    def is_opted_out(self, phone: str) -> bool:
        return self.col.find_one({"_id": phone, "opted_out": True}) is not None

    def _set(self, phone: str, opted_out: bool, source: str) -> None:
        self.col.update_one({"_id": phone}, {"$set": {"opted_out": opted_out, "source": source, "at": now_ms()}},
                            upsert=True)

    def opt_out(self, phone: str, source: str) -> None:
        self._set(phone, True, source)

    def opt_in(self, phone: str, source: str) -> None:
        self._set(phone, False, source)
