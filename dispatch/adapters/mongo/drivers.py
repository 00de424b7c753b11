"""Drivers in MongoDB, identified by their phone number."""
from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dispatch.adapters.mongo import conditions, count
from dispatch.model.clock import now_ms
from dispatch.model.driver import AVAILABLE, ONLINE_STATUSES, Driver, DuplicateDriver
from dispatch.ports import ANY


class MongoDrivers:
    def __init__(self, db: Database) -> None:
        self.col = db.drivers

    def _after(self, query: dict[str, Any], fields: dict[str, Any]) -> Driver | None:
        doc = self.col.find_one_and_update(query, {"$set": {**fields, "updated_at": now_ms()}},
                                           return_document=ReturnDocument.AFTER)
        return Driver.from_doc(doc) if doc else None

    def add(self, driver: Driver) -> None:
        try:
            self.col.insert_one(driver.to_doc())
        except DuplicateKeyError as exc:
            raise DuplicateDriver(driver.phone) from exc

    def get(self, driver_id: str) -> Driver | None:
        doc = self.col.find_one({"_id": driver_id})
        return Driver.from_doc(doc) if doc else None

    def by_phone(self, phone: str) -> Driver | None:
        doc = self.col.find_one({"phone": phone})
        return Driver.from_doc(doc) if doc else None

    def many(self, ids: Iterable[str]) -> dict[str, Driver]:
        return {d["_id"]: Driver.from_doc(d) for d in self.col.find({"_id": {"$in": list(ids)}})}

    def all(self) -> list[Driver]:
        return [Driver.from_doc(d) for d in self.col.find()]

    def list(self, limit: int = 100, offset: int = 0) -> list[Driver]:
        return [Driver.from_doc(d) for d in self.col.find().sort("created_at", ASCENDING).skip(offset).limit(limit)]

    def available(self) -> list[Driver]:
        return [Driver.from_doc(d) for d in self.col.find({"status": AVAILABLE})]

    def count_online(self, active_only: bool = True) -> int:
        return count(self.col, {"status": {"$in": list(ONLINE_STATUSES)}, **({"active": True} if active_only else {})})

    def update_profile(self, driver_id: str, fields: dict[str, Any]) -> Driver | None:
        return self._after({"_id": driver_id}, fields)

    def move(self, driver_id: str, sources: Collection[str] | None, *, holding_offer: Any = ANY,
             on_rescue: Any = ANY, **fields: Any) -> Driver | None:
        query = {"_id": driver_id, **conditions(offer_id=holding_offer, rescue_id=on_rescue)}
        if sources is not None:
            query["status"] = {"$in": list(sources)}
        return self._after(query, fields)

    def set_location(self, driver_id: str, location: dict[str, Any], at: int) -> Driver | None:
        return self._after({"_id": driver_id}, {"location": location, "location_updated_at": at})

    def unchanged_since(self, status: str, before: int) -> list[Driver]:
        return [Driver.from_doc(d) for d in self.col.find({"status": status, "updated_at": {"$lt": before}})]

    def add_rating(self, driver_id: str, stars: int) -> None:
        self.col.update_one({"_id": driver_id}, {"$inc": {"rating_count": 1, "rating_sum": stars}})
