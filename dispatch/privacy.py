"""Personal data kept no longer than needed (PRODUCT.md §7): RETENTION_DAYS erasure, run by
the sweeper, and one rider's erasure on a dispatcher's request (DELETE /api/riders/<phone>)."""
from __future__ import annotations

import structlog

from dispatch.model.errors import Conflict
from dispatch.model.phones import mask
from dispatch.ports import PersonalData, RescueRepository

log = structlog.get_logger(__name__)

DAY_MS = 24 * 3600 * 1000
ERASE_BATCH = 200


class Privacy:
    def __init__(self, retention_days: int, data: PersonalData, rescues: RescueRepository) -> None:
        self.retention_ms = retention_days * DAY_MS
        self.data, self.rescues = data, rescues

    def forget_rider(self, phone: str) -> dict[str, int]:
        """Erase one rider's personal data now. Refused while they have an open rescue: the
        driver on the way still needs the number."""
        if self.rescues.open_for_rider(phone):
            raise Conflict("the rider has an open rescue; cancel it first")
        counts = self.data.forget(phone)
        log.info("rider_erased", phone=mask(phone), **counts)
        return counts

    def erase_expired(self, now: int) -> int:
        """One batch of what is past the retention period; returns how many records it erased."""
        counts = self.data.erase_before(now - self.retention_ms, ERASE_BATCH)
        erased = sum(counts.values())
        if erased:
            log.info("retention_erased", **counts)
        return erased
