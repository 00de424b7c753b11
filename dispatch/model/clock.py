"""Time as stored: integer epoch milliseconds (see `dispatch.adapters.mongo` for why not datetimes)."""
from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int | None) -> str | None:
    """A stored timestamp as ISO 8601 UTC for JSON."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


DAY_MS = 24 * 3600 * 1000


def epoch_ms_of(text: str, end_of_day: bool = False) -> int | None:
    """An ISO date or date-time (UTC unless it says otherwise) as epoch ms; None if it is not one.

    A bare date is its first moment, or with `end_of_day` the first moment of the next day (so
    `until=2026-12-01` includes all of that day)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    return ms + DAY_MS if end_of_day and len(text) == 10 else ms
