"""Telling open pages that something changed: every domain event goes out once on the change
feed's one channel, the board. The status page follows all of it; a live link's page follows
its rescue's events (`about_rescue`), filtered in the web process that streams to it, so an
event costs one publish however many kinds of page follow it."""
from __future__ import annotations

from typing import Any

import structlog

from dispatch.model.events import Event
from dispatch.ports import ChangeFeed

log = structlog.get_logger(__name__)

BOARD = "board"


def about_rescue(change: dict[str, Any], rescue_id: str) -> bool:
    """Whether a change on the board is an event of this rescue. Events carry their time
    (`at`); the other changes (a text queued, a driver moved) do not, and no live link shows them."""
    return change.get("rescue_id") == rescue_id and "at" in change


class Announcer:
    def __init__(self, feed: ChangeFeed) -> None:
        self.feed = feed

    def event(self, event: Event) -> None:
        """A handler for every event type. Losing one announcement only delays a page until its
        next update or poll, so a feed failure is logged, never raised."""
        payload: dict[str, Any] = {"type": event.type, "rescue_id": event.rescue_id, "at": event.at}
        try:
            self.feed.publish(BOARD, payload)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning("feed_publish_failed", error=type(exc).__name__)

    def changed(self, what: str, **fields: Any) -> None:
        """A change that is not a rescue's event (a driver went online, moved)."""
        try:
            self.feed.publish(BOARD, {"type": what, **fields})
        except Exception as exc:  # noqa: BLE001 - see `event`
            log.warning("feed_publish_failed", error=type(exc).__name__)
