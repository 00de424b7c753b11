"""The hot queries stay index lookups on the embedded store, however long the history.

nx-27017 runs neosqlite, which turns each query into SQL over one table per collection. The
query plans are read from SQLite itself (`EXPLAIN QUERY PLAN` of the SQL neosqlite runs for
the real store methods, with the real `ensure_indexes`), in-process: the wire server runs the
same neosqlite and does not show its plans. A plan that scans the collection's table costs
time in proportion to every text ever kept (see bench/store_growth.py).
"""
from __future__ import annotations

import os
import uuid

import neosqlite
import pymongo
import pytest

from dispatch.adapters.mongo import embedded_server, ensure_indexes
from dispatch.adapters.mongo.events import MongoEventStore
from dispatch.adapters.mongo.messages import MongoMessages
from dispatch.adapters.mongo.offers import MongoOffers
from dispatch.adapters.mongo.rescues import MongoRescues


class NeoDatabase:
    """pymongo's Database, as far as the stores use it, on an in-process neosqlite, answering
    `buildInfo` as nx-27017 does (the stores' index choice depends on it)."""

    def __init__(self) -> None:
        self.conn = neosqlite.Connection(":memory:")

    def __getattr__(self, name: str):
        return self.conn[name]

    def __getitem__(self, name: str):
        return self.conn[name]

    @staticmethod
    def command(name: str) -> dict:
        assert name == "buildInfo"
        return {"ok": 1, "process": "nx_27017"}


@pytest.fixture
def neo():
    db = NeoDatabase()
    ensure_indexes(db)
    db.messages.insert_many([{"_id": uuid.uuid4().hex, "key": uuid.uuid4().hex, "direction": "out",
                              "phone": f"+1347555{i % 50:04d}", "status": "sent", "status_rank": 3,
                              "created_at": i, "seq": i} for i in range(200)])
    statements: list[str] = []
    db.conn.db.set_trace_callback(statements.append)
    return db, statements


def scans(db: NeoDatabase, statements: list[str]) -> list[str]:
    """The full-table scans in the plans of the queries just run (a scan of a JSON array
    inside one document, `json_each`, is not one)."""
    found = []
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")) or "sqlite_master" in sql \
                or "pragma_" in sql or "neosqlite_" in sql:
            continue
        for row in db.conn.db.execute("EXPLAIN QUERY PLAN " + sql):
            step = row[-1]
            if step.startswith("SCAN ") and "json_each" not in step:
                found.append(f"{step} <- {sql[:160]}")
    return found


HOT = {
    "inbound drain look": lambda s: s["messages"].unapplied(64),
    "a number's unapplied texts": lambda s: s["messages"].unapplied_from("+13475550001"),
    "a text applied before": lambda s: s["messages"].unapplied_before(5),
    "outbox drain look": lambda s: s["messages"].unfinished(64),
    "outbox backlog look": lambda s: s["messages"].unsent(64),
    "a number's lane": lambda s: s["messages"].unfinished_to("+13475550001", 50),
    "texts stuck mid-send": lambda s: s["messages"].stuck_sending(5, 50),
    "a rider's open rescue": lambda s: s["rescues"].open_for_rider("+13475550001"),
    "rescues overdue a search": lambda s: s["rescues"].overdue_searching(5, 10),
    "a rescue's timeline": lambda s: s["events"].timeline("r1"),
    "events not yet handled": lambda s: s["events"].unhandled(5, 10),
    "a rescue's offers": lambda s: s["offers"].for_rescue("r1"),
    "a rescue's live offers (sweep)": lambda s: s["offers"].count_live("r1"),
    "a driver's latest offer": lambda s: s["offers"].latest_for_driver("d1"),
    "a rescue's texts (detail page)": lambda s: s["messages"].for_rescue("r1", ["+13475550001", "+13475550002"],
                                                                       0, 10, 50),
    "the board's rescues": lambda s: s["rescues"].on_board(5, 200),
    "offers past their expiry": lambda s: s["offers"].expired_open(5, 10),
    "offers stuck accepting": lambda s: s["offers"].stuck_accepting(5, 10),
}


@pytest.mark.parametrize("name", list(HOT))
def test_hot_query_is_an_index_lookup_on_the_embedded_store(neo, name):
    db, statements = neo
    stores = {"messages": MongoMessages(db), "rescues": MongoRescues(db), "events": MongoEventStore(db),
              "offers": MongoOffers(db)}
    statements.clear()
    HOT[name](stores)
    assert statements, "the query ran no SQL"
    assert scans(db, statements) == []


def test_without_the_embedded_indexes_the_drain_look_scans(neo):
    """The check above can fail: a field compared without an index of its own scans."""
    db, statements = neo
    db.messages.drop_index("idx_messages_processed")
    statements.clear()
    MongoMessages(db).unapplied(64)
    assert any("SCAN messages" in s for s in scans(db, statements))


def test_the_embedded_server_is_recognised(stores):
    """The nx-27017 the suite started gets the indexes above (a MongoDB names no `process`)."""
    if os.environ.get("MONGO_URL"):
        pytest.skip("MONGO_URL given: the suite started no embedded server")
    db = pymongo.MongoClient(stores.mongo_url, serverSelectionTimeoutMS=5000)[stores.db_name]
    assert embedded_server(db) is True


@pytest.fixture
def fresh_db(stores):
    """A database of its own on the suite's server, through pymongo, dropped afterwards."""
    client = pymongo.MongoClient(stores.mongo_url, serverSelectionTimeoutMS=5000)
    name = f"{stores.db_name}_q{uuid.uuid4().hex[:6]}"
    db = client[name]
    ensure_indexes(db)
    yield db
    client.drop_database(name)
    client.close()


def test_a_rescues_texts_are_its_own_and_its_parties_within_the_window(fresh_db):
    rider, driver, other = "+13475550101", "+13475550102", "+13475550103"
    docs = [("own, before the window", "x", rider, 5), ("own, other number", "r1", other, 60),
            ("rider in window", None, rider, 20), ("driver in window", None, driver, 30),
            ("own and in window", "r1", driver, 40), ("rider after window", None, rider, 200),
            ("other number in window", None, other, 25), ("own, early", "r1", rider, 1)]
    fresh_db.messages.insert_many([{"_id": body, "key": body, "direction": "in", "body": body, "rescue_id": rid,
                                    "phone": phone, "created_at": at, "seq": at} for body, rid, phone, at in docs])
    found = MongoMessages(fresh_db).for_rescue("r1", [rider, driver, rider], 10, 100, 50)
    assert [d["body"] for d in found] == ["own, other number", "own and in window", "driver in window",
                                          "rider in window", "own, early"]
    assert [d["body"] for d in MongoMessages(fresh_db).for_rescue("r1", [rider, driver], 10, 100, 2)] == \
        ["own, other number", "own and in window"]


def test_the_board_has_every_open_rescue_and_the_recently_unfulfilled_newest_first(fresh_db):
    rows = [("searching", 10, 10), ("assigned", 30, 30), ("completed", 40, 40), ("unfulfilled", 50, 500),
            ("unfulfilled", 60, 60), ("in_transit", 5, 5), ("cancelled", 70, 70)]
    fresh_db.rescues.insert_many([{"_id": f"{status}-{at}", "code": f"R{at}", "request_key": f"k{at}",
                                   "status": status, "created_at": at, "updated_at": updated, "seq": at,
                                   "rider_phone": "+13475550104", "pickup": None, "dropoff": None,
                                   "problem": "flat_tire", "problem_note": "", "quote_cents": 0, "trip_miles": 0,
                                   "surge": 1.0} for status, at, updated in rows])
    board = MongoRescues(fresh_db).on_board(100, 50)
    assert [r.id for r in board] == ["unfulfilled-50", "assigned-30", "searching-10", "in_transit-5"]
    assert [r.id for r in MongoRescues(fresh_db).on_board(100, 2)] == ["unfulfilled-50", "assigned-30"]


def test_a_rescues_live_offers_are_its_open_and_accepting_ones(fresh_db):
    rows = [("r1", "open"), ("r1", "accepting"), ("r1", "declined"), ("r1", "expired"), ("r2", "open")]
    fresh_db.offers.insert_many([{"_id": f"o{n}", "rescue_id": rid, "driver_id": f"d{n}", "status": status,
                                  "created_at": n} for n, (rid, status) in enumerate(rows)])
    offers = MongoOffers(fresh_db)
    assert (offers.count_live("r1"), offers.count_live("r2"), offers.count_live("r3")) == (2, 1, 0)
