"""Telling open pages that something changed: every domain event goes out on the change feed,
to the board (the status page) and to the rescue's own channel (its live links)."""
from __future__ import annotations

from typing import Any

import structlog

from dispatch.model.events import Event
from dispatch.ports import ChangeFeed

log = structlog.get_logger(__name__)

BOARD = "board"


def rescue_channel(rescue_id: str) -> str:
    return f"rescue:{rescue_id}"


class Announcer:
    def __init__(self, feed: ChangeFeed) -> None:
        self.feed = feed

    def event(self, event: Event) -> None:
        """A handler for every event type. Losing one announcement only delays a page until its
        next update or poll, so a feed failure is logged, never raised."""
        payload: dict[str, Any] = {"type": event.type, "rescue_id": event.rescue_id, "at": event.at}
        try:
            self.feed.publish(BOARD, payload)
            if event.rescue_id:
                self.feed.publish(rescue_channel(event.rescue_id), payload)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning("feed_publish_failed", error=type(exc).__name__)

    def changed(self, what: str, **fields: Any) -> None:
        """A change that is not a rescue's event (a driver went online, moved)."""
        try:
            self.feed.publish(BOARD, {"type": what, **fields})
        except Exception as exc:  # noqa: BLE001 - see `event`
            log.warning("feed_publish_failed", error=type(exc).__name__)
