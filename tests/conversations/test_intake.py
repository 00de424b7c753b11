"""Group commit of the SMS webhook's records (`conversations.intake`), and the store's
`add_many` it stands on, against the real MongoDB-wire server."""
from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from pymongo.errors import AutoReconnect

from conversations.intake import GroupCommit


class SlowStore:
    """add_many that blocks its first call until released: later records queue up behind it."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.keys: set[str] = set()
        self.entered, self.release = threading.Event(), threading.Event()
        self.fail = fail

    def add_many(self, docs):
        self.calls.append([d["key"] for d in docs])
        if len(self.calls) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail is not None:
            raise self.fail
        new = []
        for d in docs:
            new.append(d["key"] not in self.keys)
            self.keys.add(d["key"])
        return new


def test_an_idle_record_commits_at_once_alone_and_kicks_once():
    store, kicks = SlowStore(), []
    store.release.set()
    group = GroupCommit(store.add_many, lambda: kicks.append(1))
    assert group.record({"key": "in:a"}) is True
    assert group.record({"key": "in:a"}) is False
    assert store.calls == [["in:a"], ["in:a"]] and kicks == [1]  # no kick for a batch of duplicates


def test_records_arriving_during_a_commit_form_the_next_batch_each_told_new_or_duplicate():
    store, kicks = SlowStore(), []
    group = GroupCommit(store.add_many, lambda: kicks.append(1))
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(group.record, {"key": "in:first"})
        assert store.entered.wait(5)
        keys = ["in:b", "in:c", "in:b", "in:first", "in:d"]
        waiting = [pool.submit(group.record, {"key": k}) for k in keys]
        while len(group._queue) < len(keys):  # all five queued behind the commit in flight
            threading.Event().wait(0.005)
        assert not any(f.done() for f in waiting), "nobody answers before its batch is stored"
        store.release.set()
        assert first.result(5) is True
        results = [f.result(5) for f in waiting]
    assert store.calls[0] == ["in:first"] and sorted(store.calls[1]) == sorted(keys) and len(store.calls) == 2
    by_key = {}
    for k, r in zip(keys, results, strict=True):
        by_key.setdefault(k, []).append(r)
    assert sorted(by_key["in:b"]) == [False, True] and by_key["in:c"] == [True] and by_key["in:d"] == [True]
    assert by_key["in:first"] == [False]
    assert kicks == [1, 1]  # one per batch


def test_a_failed_batch_raises_in_every_request_of_it_and_the_next_one_still_commits():
    store = SlowStore(fail=AutoReconnect("down"))
    group = GroupCommit(store.add_many, lambda: None)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(group.record, {"key": "in:x"})
        assert store.entered.wait(5)
        others = [pool.submit(group.record, {"key": f"in:{i}"}) for i in range(3)]
        while len(group._queue) < 3:
            threading.Event().wait(0.005)
        store.release.set()
        for f in [first, *others]:
            with pytest.raises(AutoReconnect):
                f.result(5)
    store.fail = None
    assert group.record({"key": "in:later"}) is True and not group._busy


def test_the_store_adds_many_unordered_a_duplicate_in_the_middle_does_not_stop_the_rest(services):
    tag = uuid.uuid4().hex
    services.messages.add({"_id": f"{tag}-old", "key": f"in:{tag}-2"})
    docs = [{"_id": f"{tag}-{i}", "key": f"in:{tag}-{i}"} for i in range(5)]
    docs.append({"_id": f"{tag}-5", "key": f"in:{tag}-4"})  # a duplicate within the call
    assert services.messages.add_many(docs) == [True, True, False, True, True, False]
    stored = {d["_id"] for d in services.db.messages.find({"_id": {"$regex": f"^{tag}"}})}
    assert stored == {f"{tag}-old", f"{tag}-0", f"{tag}-1", f"{tag}-3", f"{tag}-4"}
    assert services.messages.add_many([]) == []
