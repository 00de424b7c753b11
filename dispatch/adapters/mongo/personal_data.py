"""Erasing personal data (PRODUCT.md §7) across the collections that hold it.

What goes: message bodies and media, full phone numbers of riders (in rescues, messages,
help requests), their conversations, rider profiles and the answered steps of their calls
(what they said and what was said back), and the rider's own words kept on a rescue
(problem note, rating comment). What stays, for accounting: every rescue with its
code, times, amounts and statuses, every message record with its times and delivery status,
each with the number masked (`dispatch.model.phones.mask`). A record is erased once
(`erased_at`), so a masked number is never masked again.
"""
from __future__ import annotations

from typing import Any

from pymongo.database import Database

from dispatch.model import help_request as hr
from dispatch.model.clock import now_ms
from dispatch.model.phones import mask
from dispatch.model.rescue import CLOSED_STATUSES

NOT_ERASED = {"erased_at": None}


class MongoPersonalData:
    def __init__(self, db: Database) -> None:
        self.db = db

    def forget(self, phone: str) -> dict[str, int]:
        """Everything of one rider's, at once."""
        rescue_ids = [d["_id"] for d in self.db.rescues.find({"rider_phone": phone}, {"_id": 1})]
        counts = {"rescues": self._rescues({"_id": {"$in": rescue_ids}, **NOT_ERASED}),
                  "messages": self._messages({"$or": [{"phone": phone}, {"rescue_id": {"$in": rescue_ids}}],
                                              **NOT_ERASED}),
                  "help_requests": self._help_requests({"phone": phone, **NOT_ERASED})}
        counts["conversations"] = self.db.conversations.delete_many({"_id": phone}).deleted_count
        counts["riders"] = self.db.riders.delete_many({"phone": phone}).deleted_count
        counts["voice_steps"] = self.db.voice_steps.delete_many({"phone": phone}).deleted_count
        return counts

    def erase_before(self, before: int, limit: int) -> dict[str, int]:
        """What is older than `before` (epoch ms): closed rescues (by their last change),
        messages, conversations and rider profiles untouched since, resolved help requests, call
        steps.
        At most `limit` records of each kind per call."""
        closed = {"status": {"$in": list(CLOSED_STATUSES)}, "updated_at": {"$lt": before}, **NOT_ERASED}
        rescue_ids = [d["_id"] for d in self.db.rescues.find(closed, {"_id": 1}).limit(limit)]
        counts = {"rescues": self._rescues({"_id": {"$in": rescue_ids}, **NOT_ERASED}),
                  "messages": self._messages({"rescue_id": {"$in": rescue_ids}, **NOT_ERASED})}
        counts["messages"] += self._messages({"created_at": {"$lt": before}, **NOT_ERASED}, limit)
        counts["help_requests"] = self._help_requests({"status": hr.RESOLVED, "created_at": {"$lt": before},
                                                       **NOT_ERASED}, limit)
        counts["conversations"] = self._delete(self.db.conversations, {"updated_at": {"$lt": before}}, limit)
        counts["riders"] = self._delete(self.db.riders, {"last_rescue_at": {"$lt": before}}, limit)
        counts["voice_steps"] = self._delete(self.db.voice_steps, {"at": {"$lt": before}}, limit)
        return counts

    # -- one kind of record ------------------------------------------------------------------
    def _rescues(self, query: dict[str, Any]) -> int:
        n = 0
        for doc in list(self.db.rescues.find(query, {"rider_phone": 1})):
            self.db.rescues.update_one({"_id": doc["_id"]}, {"$set": {
                "rider_phone": mask(doc.get("rider_phone")), "problem_note": "", "rating_comment": "",
                "erased_at": now_ms()}})
            n += 1
        return n

    def _messages(self, query: dict[str, Any], limit: int = 0) -> int:
        n = 0
        for doc in list(self.db.messages.find(query, {"phone": 1}).limit(limit)):
            self.db.messages.update_one({"_id": doc["_id"]}, {"$set": {
                "phone": mask(doc.get("phone")), "body": "", "media": [], "erased_at": now_ms()}})
            n += 1
        return n

    def _help_requests(self, query: dict[str, Any], limit: int = 0) -> int:
        n = 0
        for doc in list(self.db.help_requests.find(query, {"phone": 1}).limit(limit)):
            self.db.help_requests.update_one({"_id": doc["_id"]}, {"$set": {
                "phone": mask(doc.get("phone")), "text": "", "open_key": doc["_id"], "erased_at": now_ms()}})
            n += 1
        return n

    @staticmethod
    def _delete(col, query: dict[str, Any], limit: int) -> int:
        ids = [d["_id"] for d in col.find(query, {"_id": 1}).limit(limit)]
        return col.delete_many({"_id": {"$in": ids}}).deleted_count if ids else 0
