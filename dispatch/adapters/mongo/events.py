"""The event log in MongoDB: each rescue's timeline, and which events still need handling."""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pymongo.database import Database

from dispatch.model.events import Event


def _event(doc: dict[str, Any], redelivered: bool = False) -> Event:
    return Event.from_stored(doc["type"], doc.get("rescue_id"), doc.get("by", ""), doc["_id"], doc["at"],
                             dict(doc.get("data") or {}), redelivered=redelivered)


class MongoEventStore:
    def __init__(self, db: Database) -> None:
        self.col = db.events

    def append(self, event: Event, handled: bool) -> None:
        self.col.insert_one({"_id": event.id, "rescue_id": event.rescue_id, "type": event.type, "by": event.by,
                             "at": event.at, "data": event.data, "handled": handled})

    def mark_handled(self, event_id: str) -> None:
        self.col.update_one({"_id": event_id}, {"$set": {"handled": True}})

    def unhandled(self, older_than: int, limit: int) -> list[tuple[Event, int]]:
        docs = self.col.find({"handled": False, "at": {"$lt": older_than}}).limit(limit)
        return [(_event(d, redelivered=True), int(d.get("redelivered") or 0)) for d in docs]

    def count_redelivery(self, event_id: str) -> None:
        self.col.update_one({"_id": event_id}, {"$inc": {"redelivered": 1}})

    def give_up(self, event_id: str) -> None:
        self.col.update_one({"_id": event_id}, {"$inc": {"redelivered": 1}, "$set": {"handled": True, "gave_up": True}})

    def timeline(self, rescue_id: str) -> list[dict[str, Any]]:
        return list(self.col.find({"rescue_id": rescue_id}, {"_id": 0}).sort("at", 1))

    def of_types_since(self, types: Collection[str], since: int) -> list[Event]:
        return [_event(d) for d in self.col.find({"at": {"$gte": since}, "type": {"$in": list(types)}})]
