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
