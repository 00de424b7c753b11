"""Publishing domain events: append to the timeline, then run the handlers of its type.

An event is stored `handled: false` and marked handled once every handler has run, so a
process killed between the two (or a handler that failed) leaves it for the sweeper to
hand out again. Handlers must therefore be idempotent (keyed on `event.id`), and a
handler failing never undoes the change. The table of which handlers an event type has
is `dispatch.bootstrap.event_handlers`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import structlog

from dispatch.model.events import Event
from dispatch.ports import EventStore

log = structlog.get_logger(__name__)

Handler = Callable[[Event], None]
MAX_REDELIVERIES = 5


class EventBus:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.handlers: Mapping[type[Event], Sequence[Handler]] = {}

    def publish(self, event: Event) -> Event:
        self.store.append(event, handled=not self.handlers.get(type(event)))
        self._handle(event)
        return event

    def redeliver(self, older_than_ms: int, limit: int = 200) -> int:
        """Hand out again events whose handlers did not all finish (see the module doc)."""
        count = 0
        for event, tries in self.store.unhandled(older_than_ms, limit):
            if tries >= MAX_REDELIVERIES:
                self.store.give_up(event.id)
                log.error("event_given_up", event_type=event.type, rescue_id=event.rescue_id)
                continue
            self.store.count_redelivery(event.id)
            self._handle(event)
            count += 1
        return count

    def _handle(self, event: Event) -> None:
        handlers = self.handlers.get(type(event), ())
        ok = True
        for handler in handlers:
            try:
                handler(event)
            except Exception:  # the change stands; the event stays unhandled for the sweeper
                ok = False
                log.exception("event_handler_failed", event_type=event.type, rescue_id=event.rescue_id,
                              handler=getattr(handler, "__qualname__", "?"))
        if handlers and ok:
            self.store.mark_handled(event.id)
