"""Conversations in MongoDB: one document per phone number, its flow state saved with it;
and the answers given to voice callbacks, replayed to duplicate deliveries."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dispatch.model.clock import now_ms

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
    language: str = "en"
    language_chosen: bool = False  # the rider said which (ENGLISH / ESPAÑOL): no guess overrides it


class MongoConversations:
    def __init__(self, db: Database) -> None:
        self.col = db.conversations

    def load(self, phone: str, role: str) -> Conversation:
        doc = self.col.find_one({"_id": phone})
        if doc is None:
            return Conversation(phone=phone, role=role)
        return Conversation(phone=phone, role=doc.get("role", role), state=doc.get("state", "idle"),
                            data=doc.get("data") or {}, version=doc.get("version", 0),
                            applied=list(doc.get("applied") or []), language=doc.get("language") or "en",
                            language_chosen=bool(doc.get("language_chosen")))

    def save(self, convo: Conversation, state: str, data: dict[str, Any], applied_key: str) -> None:
        """Compare-and-set on the version, recording which inbound message produced it."""
        fields = {"role": convo.role, "state": state, "data": data, "version": convo.version + 1,
                  "language": convo.language, "language_chosen": convo.language_chosen,
                  "applied": (convo.applied + [applied_key])[-APPLIED_KEEP:], "updated_at": now_ms()}
        if convo.version == 0:
            try:
                self.col.insert_one({"_id": convo.phone, "created_at": now_ms(), **fields})
                return
            except DuplicateKeyError as exc:
                raise ConversationConflict(convo.phone) from exc
        result = self.col.update_one({"_id": convo.phone, "version": convo.version}, {"$set": fields})
        if result.matched_count != 1:
            raise ConversationConflict(convo.phone)


class MongoVoiceSteps:
    def __init__(self, db: Database) -> None:
        self.col = db.voice_steps

    def answered(self, step: str) -> str | None:
        done = self.col.find_one({"_id": step})
        return done["twiml"] if done else None

    def keep(self, step: str, twiml: str, caller: str) -> None:
        """The caller is kept beside the answer so that erasing them takes their calls too
        (the step key holds what they said, the answer what was said back)."""
        try:
            self.col.insert_one({"_id": step, "twiml": twiml, "phone": caller, "at": now_ms()})
        except DuplicateKeyError:
            pass
