"""An offer: one rescue put to one driver, open until answered, expired, taken or withdrawn."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPEN, ACCEPTING, ACCEPTED, DECLINED, EXPIRED, TAKEN, WITHDRAWN, DROPPED = (
    "open", "accepting", "accepted", "declined", "expired", "taken", "withdrawn", "dropped")
LIVE = (OPEN, ACCEPTING)
# The driver lost it to someone else (another driver accepted, a dispatcher reassigned).
LOST = (TAKEN, WITHDRAWN)


@dataclass
class Offer:
    id: str
    rescue_id: str
    rescue_code: str
    driver_id: str
    status: str
    created_at: int
    expires_at: int
    distance_km: float
    answered_at: int | None = None
    expired_at: int | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Offer:
        return cls(id=doc["_id"], **{k: doc.get(k) for k in cls.__dataclass_fields__ if k != "id"})

    def to_doc(self) -> dict[str, Any]:
        return {"_id": self.id, **{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "id"}}
