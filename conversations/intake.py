"""Group commit for the SMS webhook: texts arriving together are recorded together.

Why here and not in the store: the unit that is batched is the webhook's whole part of a
text, record *and* kick (one `insert_many` and one kick of the inbound drain for the
batch), and what a waiting request does when the batch fails (`Engine.hold`, the Redis
holding path) is the webhook's decision too. The store stays a plain call-and-return
store (`MessageStore.add_many`: one round trip, each doc new or a duplicate), and the
store's other writers (the outbox, the holding release, the voice path) never wait on a
webhook's batch.

How: no committer thread and no timer. The first text to arrive while no commit is in
flight commits at once (alone: an idle service adds no wait). Texts arriving while a
commit is in flight queue up; when the commit is done, the first of them is woken to
commit the whole queue as the next batch (while this batch's kick goes out), and so on.
Every request waits for its own batch's commit and kick before it answers: nothing is
answered before it is stored. A failure of
the batch (any exception, PyMongoError included) is raised in every request of the batch,
each in its own thread, so each falls back exactly as a single insert's failure would.
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any


class _Entry:
    __slots__ = ("doc", "done", "new", "error", "batch")

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.done = threading.Event()
        self.new: bool | None = None
        self.error: BaseException | None = None
        self.batch: list[_Entry] | None = None  # set when this request is to commit the next batch


class GroupCommit:
    """`record(doc)` -> whether the doc was new; many threads' docs share one `add_many`,
    then one `after(batch had a new doc)` call (the kick)."""

    def __init__(self, add_many: Callable[[list[dict[str, Any]]], list[bool]],
                 after: Callable[[], None]) -> None:
        self._add_many, self._after = add_many, after
        self._lock = threading.Lock()
        self._queue: list[_Entry] = []
        self._busy = False

    def record(self, doc: dict[str, Any]) -> bool:
        entry = _Entry(doc)
        with self._lock:
            if self._busy:
                self._queue.append(entry)
            else:
                self._busy = True
                entry.batch = [entry]
        if entry.batch is None:
            entry.done.wait()
        if entry.batch is not None:  # this request commits: its own batch, or the next one
            self._commit(entry.batch)
        if entry.error is not None:
            raise entry.error
        return bool(entry.new)

    def _commit(self, batch: list[_Entry]) -> None:
        new: list[bool] = []
        try:
            new = self._add_many([e.doc for e in batch])
            for e, is_new in zip(batch, new, strict=True):
                e.new = is_new
        except BaseException as exc:  # noqa: BLE001 - raised again in each request of the batch
            for e in batch:
                e.error = exc
        for e in batch:
            e.batch = None
        with self._lock:  # hand the next batch to its first request, or go idle
            queued, self._queue = self._queue, []
            if queued:
                queued[0].batch = queued
            else:
                self._busy = False
        if queued:
            queued[0].done.set()  # the next insert goes while this batch's kick does
        try:
            if any(new):
                self._after()
        finally:  # the batch answers once it is stored and its drain kicked, as a single text did
            for e in batch:
                e.done.set()


_groups: weakref.WeakKeyDictionary[Any, GroupCommit] = weakref.WeakKeyDictionary()
_groups_lock = threading.Lock()


def group_for(svc: Any) -> GroupCommit:
    """The process's one group per wired services (the webhook's threads share it). It reads
    `svc.messages` and `svc.scheduler` at each commit and holds `svc` weakly."""
    group = _groups.get(svc)
    if group is None:
        with _groups_lock:
            group = _groups.get(svc)
            if group is None:
                ref = weakref.ref(svc)
                group = _groups[svc] = GroupCommit(lambda docs: ref().messages.add_many(docs),
                                                   lambda: ref().scheduler.kick_inbound())
    return group
