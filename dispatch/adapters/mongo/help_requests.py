"""Help requests in MongoDB. `open_key` holds the phone while a request is open (unique), so two
texts at once from one phone still open one request."""
from __future__ import annotations

from pymongo import DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dispatch.model import help_request as hr
from dispatch.model.help_request import HelpRequest


class MongoHelpRequests:
    def __init__(self, db: Database) -> None:
        self.col = db.help_requests

    def add(self, request: HelpRequest) -> bool:
        try:
            self.col.insert_one({**request.to_doc(), "open_key": request.phone})
        except DuplicateKeyError:
            return False
        return True

    def get(self, request_id: str) -> HelpRequest | None:
        doc = self.col.find_one({"_id": request_id})
        return HelpRequest.from_doc(doc) if doc else None

    def open_for(self, phone: str) -> HelpRequest | None:
        doc = self.col.find_one({"open_key": phone})
        return HelpRequest.from_doc(doc) if doc else None

    def list(self, status: str | None, limit: int, offset: int) -> list[HelpRequest]:
        cursor = self.col.find({"status": status} if status else {}).sort("created_at", DESCENDING)
        return [HelpRequest.from_doc(d) for d in cursor.skip(offset).limit(limit)]

    def resolve(self, request_id: str, by: str, note: str, at: int) -> HelpRequest | None:
        doc = self.col.find_one_and_update(
            {"_id": request_id, "status": hr.OPEN},
            {"$set": {"status": hr.RESOLVED, "resolved_by": by, "resolved_at": at, "note": note,
                      "open_key": request_id}}, return_document=ReturnDocument.AFTER)
        return HelpRequest.from_doc(doc) if doc else None
