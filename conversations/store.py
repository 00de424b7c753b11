"""Conversations in MongoDB: one document per phone number, its flow state saved with it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dispatch.clock import now_ms

APPLIED_KEEP = 50


class ConversationConflict(RuntimeError):
    """The conversation changed under us (its lock expired mid-step)."""


@dataclass
class Conversation:
    phone: str
    role: str = "rider"
    state: str = "idle"
    data: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    applied: list[str] = field(default_factory=list)


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, phone: str, role: str) -> Conversation:
        doc = self.db.conversations.find_one({"_id": phone})
        if doc is None:
            return Conversation(phone=phone, role=role)
        return Conversation(phone=phone, role=doc.get("role", role), state=doc.get("state", "idle"),
                            data=doc.get("data") or {}, version=doc.get("version", 0),
                            applied=list(doc.get("applied") or []))

    def save(self, convo: Conversation, state: str, data: dict[str, Any], applied_key: str) -> None:
        """Compare-and-set on the version, recording which inbound message produced it."""
        fields = {"role": convo.role, "state": state, "data": data, "version": convo.version + 1,
                  "applied": (convo.applied + [applied_key])[-APPLIED_KEEP:], "updated_at": now_ms()}
        if convo.version == 0:
            try:
                self.db.conversations.insert_one({"_id": convo.phone, "created_at": now_ms(), **fields})
                return
            except DuplicateKeyError as exc:
                raise ConversationConflict(convo.phone) from exc
        result = self.db.conversations.update_one({"_id": convo.phone, "version": convo.version},
                                                  {"$set": fields})
        if result.matched_count != 1:
            raise ConversationConflict(convo.phone)
