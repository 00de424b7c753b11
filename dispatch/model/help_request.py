"""A help request: somebody asked for a person, or the service could not understand them.
A dispatcher resolves it once they have been in touch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispatch.model.clock import iso

ASKED, NOT_UNDERSTOOD = "asked", "not_understood"
REASONS = (ASKED, NOT_UNDERSTOOD)
OPEN, RESOLVED = "open", "resolved"
STATUSES = (OPEN, RESOLVED)
TEXT_MAX = 280
NOTE_MAX = 500


@dataclass
class HelpRequest:
    id: str
    phone: str
    reason: str
    text: str
    status: str
    created_at: int
    rescue_id: str | None = None
    language: str = "en"
    resolved_by: str | None = None
    resolved_at: int | None = None
    note: str | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> HelpRequest:
        return cls(id=doc["_id"], **{k: doc.get(k) for k in cls.__dataclass_fields__ if k != "id" and k in doc})

    def to_doc(self) -> dict[str, Any]:
        return {"_id": self.id, **{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "id"}}

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "phone": self.phone, "rescue_id": self.rescue_id, "reason": self.reason,
                "text": self.text, "status": self.status, "language": self.language,
                "created_at": iso(self.created_at), "resolved_by": self.resolved_by,
                "resolved_at": iso(self.resolved_at), "note": self.note}
