"""An offer: one rescue put to one driver, open until answered, expired, taken or withdrawn."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPEN, ACCEPTING, ACCEPTED, DECLINED, EXPIRED, TAKEN, WITHDRAWN, DROPPED = (
    "open", "accepting", "accepted", "declined", "expired", "taken", "withdrawn", "dropped")
LIVE = (OPEN, ACCEPTING)
# The driver lost it to someone else (another driver accepted, a dispatcher reassigned).
LOST = (TAKEN, WITHDRAWN)
# A driver who lets this many offers in a row run out is taken offline (PRODUCT.md §4).
MISSED_IN_A_ROW_OFFLINE = 3


def missed_in_a_row(newest_first: list[Offer]) -> int:
    """How many of a driver's latest offers ran out unanswered, counting back to the last one
    they answered; offers lost to someone else say nothing about the driver and are skipped."""
    missed = 0
    for offer in newest_first:
        if offer.status in LOST or offer.status in LIVE:
            continue
        if offer.status != EXPIRED:
            break
        missed += 1
    return missed


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
