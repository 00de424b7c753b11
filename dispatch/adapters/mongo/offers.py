"""Offers in MongoDB: one document per rescue put to one driver."""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.database import Database

from dispatch.model import offer as of
from dispatch.model.offer import Offer


class MongoOffers:
    def __init__(self, db: Database) -> None:
        self.col = db.offers

    def _after(self, query: dict[str, Any], fields: dict[str, Any]) -> Offer | None:
        doc = self.col.find_one_and_update(query, {"$set": fields}, return_document=ReturnDocument.AFTER)
        return Offer.from_doc(doc) if doc else None

    def add(self, offer: Offer) -> None:
        self.col.insert_one(offer.to_doc())

    def get(self, offer_id: str) -> Offer | None:
        doc = self.col.find_one({"_id": offer_id})
        return Offer.from_doc(doc) if doc else None

    def move(self, offer_id: str, sources: Collection[str] | None, **fields: Any) -> Offer | None:
        query: dict[str, Any] = {"_id": offer_id}
        if sources is not None:
            query["status"] = {"$in": list(sources)}
        return self._after(query, fields)

    def claim_unexpired(self, offer_id: str, now: int) -> Offer | None:
        return self._after({"_id": offer_id, "status": of.OPEN, "expires_at": {"$gt": now}},
                           {"status": of.ACCEPTING, "answered_at": now})

    def count_live(self, rescue_id: str) -> int:
        """Counted here from the rescue's few offers: nx-27017 answers a count with `$in` by
        scanning every offer ever made."""
        return sum(d.get("status") in of.LIVE for d in self.col.find({"rescue_id": rescue_id}, {"status": 1}))

    def for_rescue(self, rescue_id: str, status: str | None = None) -> list[Offer]:
        query = {"rescue_id": rescue_id, **({"status": status} if status else {})}
        return [Offer.from_doc(d) for d in self.col.find(query)]

    def latest_for_driver(self, driver_id: str, rescue_code: str | None = None) -> Offer | None:
        query = {"driver_id": driver_id, **({"rescue_code": rescue_code} if rescue_code else {})}
        docs = list(self.col.find(query).sort("created_at", DESCENDING).limit(1))
        return Offer.from_doc(docs[0]) if docs else None

    def recent_for_driver(self, driver_id: str, since: int, limit: int) -> list[Offer]:
        docs = self.col.find({"driver_id": driver_id, "created_at": {"$gte": since}})
        return [Offer.from_doc(d) for d in docs.sort("created_at", DESCENDING).limit(limit)]

    def drop_accepted(self, rescue_id: str, driver_id: str) -> None:
        self.col.update_many({"rescue_id": rescue_id, "driver_id": driver_id, "status": of.ACCEPTED},
                             {"$set": {"status": of.DROPPED}})

    def expired_open(self, before: int, limit: int) -> list[Offer]:
        docs = self.col.find({"status": of.OPEN, "expires_at": {"$lt": before}}).limit(limit)
        return [Offer.from_doc(d) for d in docs]

    def stuck_accepting(self, before: int, limit: int) -> list[Offer]:
        docs = self.col.find({"status": of.ACCEPTING, "answered_at": {"$lt": before}}).limit(limit)
        return [Offer.from_doc(d) for d in docs]
