"""Publishing domain events: append to the timeline, then run the handlers of its type.

An event is stored `handled: false` and marked handled once every handler has run, so a
process killed between the two (or a handler that failed) leaves it for the sweeper to
hand out again. Handlers must therefore be idempotent (keyed on `event.id`), and a
handler failing never undoes the change. The table of which handlers an event type has
is `dispatch.bootstrap.event_handlers`.

The handlers of one event read its rescue and drivers through `HandlingReads`: each is read
once per event however many handlers look at it (the publisher may hand over the rescue it
just stored), and a write through the same repositories updates or forgets what was read.
A handler that changes a rescue or a driver some other way, or any nested event, makes the
later handlers read again.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import structlog

from dispatch.model.driver import Driver
from dispatch.model.events import Event
from dispatch.model.rescue import Rescue
from dispatch.ports import DriverRepository, EventStore, RescueRepository

log = structlog.get_logger(__name__)

Handler = Callable[[Event], None]
MAX_REDELIVERIES = 5


class HandlingReads(threading.local):
    """What the handlers of the event being handled (on this thread) have read (module doc)."""

    def __init__(self) -> None:
        self.scopes: list[dict[tuple[str, str], Any]] = []

    @contextmanager
    def scope(self, rescue: Rescue | None) -> Iterator[None]:
        self.scopes.append({("rescue", rescue.id): rescue} if rescue is not None else {})
        try:
            yield
        finally:
            self.scopes.pop()
            if self.scopes:
                self.scopes[-1].clear()  # the nested event's handlers may have changed anything

    def current(self) -> dict[tuple[str, str], Any] | None:
        return self.scopes[-1] if self.scopes else None

    def rescues(self, inner: RescueRepository) -> RescueRepository:
        return _ReadOnce(inner, self, "rescue")  # type: ignore[return-value]

    def drivers(self, inner: DriverRepository) -> DriverRepository:
        return _ReadOnce(inner, self, "driver")  # type: ignore[return-value]


class _ReadOnce:
    """A repository whose `get` answers from the handling's reads; every other call but
    `set_fields` (which updates the rescue read) forgets them, as it may write."""

    def __init__(self, inner: Any, reads: HandlingReads, kind: str) -> None:
        self._inner, self._reads, self._kind = inner, reads, kind

    def get(self, entity_id: str) -> Rescue | Driver | None:
        memo = self._reads.current()
        if memo is None:
            return self._inner.get(entity_id)
        key = (self._kind, entity_id)
        if key not in memo:
            memo[key] = self._inner.get(entity_id)
        return memo[key]

    def set_fields(self, entity_id: str, fields: dict[str, Any]) -> None:
        self._inner.set_fields(entity_id, fields)
        memo = self._reads.current()
        if memo is None:
            return
        known = memo.get((self._kind, entity_id))
        if isinstance(known, Rescue) and not any("." in k or k.startswith("$") for k in fields):
            memo[(self._kind, entity_id)] = Rescue.from_doc({**known.to_doc(), **fields})
        else:
            memo.clear()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            memo = self._reads.current()
            if memo is not None:
                memo.clear()
            return attr(*args, **kwargs)
        return call


class EventBus:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.handlers: Mapping[type[Event], Sequence[Handler]] = {}
        self.reads = HandlingReads()

    def publish(self, event: Event, rescue: Rescue | None = None) -> Event:
        """`rescue`: the event's rescue as the publisher just stored it, if it has it."""
        self.store.append(event, handled=not self.handlers.get(type(event)))
        self._handle(event, rescue if rescue is not None and rescue.id == event.rescue_id else None)
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

    def _handle(self, event: Event, rescue: Rescue | None = None) -> None:
        handlers = self.handlers.get(type(event), ())
        ok = True
        with self.reads.scope(rescue):
            for handler in handlers:
                try:
                    handler(event)
                except Exception:  # the change stands; the event stays unhandled for the sweeper
                    ok = False
                    log.exception("event_handler_failed", event_type=event.type, rescue_id=event.rescue_id,
                                  handler=getattr(handler, "__qualname__", "?"))
        if handlers and ok:
            self.store.mark_handled(event.id)
