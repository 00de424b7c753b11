"""The payment ledger and the Stripe events applied, in MongoDB."""
from __future__ import annotations

from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError


class MongoLedger:
    def __init__(self, db: Database) -> None:
        self.col = db.ledger

    def add(self, entry: dict[str, Any]) -> bool:
        try:
            self.col.insert_one(entry)
        except DuplicateKeyError:
            return False
        return True

    def get(self, entry_id: str) -> dict[str, Any] | None:
        return self.col.find_one({"_id": entry_id})

    def update(self, entry_id: str, fields: dict[str, Any]) -> None:
        self.col.update_one({"_id": entry_id}, {"$set": fields})

    def entries(self, rescue_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        query = {"rescue_id": rescue_id, **({"kind": kind} if kind else {})}
        return list(self.col.find(query).sort("created_at", 1))

    def session_for_intent(self, payment_intent: str) -> dict[str, Any] | None:
        return self.col.find_one({"kind": "session", "payment_intent": payment_intent})

    def request_parts(self, request_key: str) -> list[dict[str, Any]]:
        return list(self.col.find({"request": request_key}).sort("key", 1))


class MongoStripeEvents:
    def __init__(self, db: Database) -> None:
        self.col = db.stripe_events

    def applied(self, event_id: str) -> bool:
        seen = self.col.find_one({"_id": event_id})
        return bool(seen) and seen.get("status") == "applied"

    def mark_applied(self, event_id: str, fields: dict[str, Any]) -> None:
        self.col.update_one({"_id": event_id}, {"$set": {**fields, "status": "applied"}}, upsert=True)

    def for_rescue(self, rescue_id: str) -> list[dict[str, Any]]:
        return list(self.col.find({"rescue_id": rescue_id}).sort("received_at", 1))
