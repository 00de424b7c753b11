"""Drivers: registered by dispatchers, identified by their phone number."""
from __future__ import annotations

import uuid
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dispatch.clock import iso, now_ms

OFFLINE, AVAILABLE, OFFERED, ON_JOB = "offline", "available", "offered", "on_job"
DRIVER_STATUSES = (OFFLINE, AVAILABLE, OFFERED, ON_JOB)
ONLINE_STATUSES = (AVAILABLE, OFFERED, ON_JOB)
NAME_MAX, VEHICLE_MAX = 80, 80


class DuplicateDriver(ValueError):
    pass


def driver_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"], "phone": doc["phone"], "name": doc["name"], "vehicle": doc["vehicle"],
        "status": doc.get("status", OFFLINE), "active": bool(doc.get("active", True)),
        "location": doc.get("location"),
        "location_updated_at": iso(doc.get("location_updated_at")),
        "rescue_id": doc.get("rescue_id"),
        "rating": round(doc["rating_sum"] / doc["rating_count"], 2) if doc.get("rating_count") else None,
        "rating_count": int(doc.get("rating_count") or 0),
        "created_at": iso(doc["created_at"]),
    }


class DriverStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, phone: str, name: str, vehicle: str) -> dict[str, Any]:
        doc = {"_id": uuid.uuid4().hex, "phone": phone, "name": name, "vehicle": vehicle,
               "status": OFFLINE, "active": True, "location": None, "location_updated_at": None,
               "created_at": now_ms(), "updated_at": now_ms()}
        try:
            self.db.drivers.insert_one(doc)
        except DuplicateKeyError as exc:
            raise DuplicateDriver(phone) from exc
        return doc

    def get(self, driver_id: str) -> dict[str, Any] | None:
        return self.db.drivers.find_one({"_id": driver_id})

    def by_phone(self, phone: str) -> dict[str, Any] | None:
        return self.db.drivers.find_one({"phone": phone})

    def list(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return list(self.db.drivers.find().sort("created_at", ASCENDING).skip(offset).limit(limit))

    def update(self, driver_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        return self.db.drivers.find_one_and_update(
            {"_id": driver_id}, {"$set": {**fields, "updated_at": now_ms()}},
            return_document=ReturnDocument.AFTER)

    def count_online(self) -> int:
        return self.db.drivers.count_documents({"status": {"$in": list(ONLINE_STATUSES)}, "active": True})
