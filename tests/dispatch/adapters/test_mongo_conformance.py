"""The MongoDB behaviour the app relies on, checked against the store the suite runs on.

`stores` gives the embedded nx-27017 server (or MONGO_URL when set), reached through real
pymongo exactly as the app reaches it. Every collection here is named `conf_*` and dropped
at the end, so nothing leaks into the app's own collections.
"""
from __future__ import annotations

import multiprocessing
import time
import uuid

import pymongo
import pytest
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

PREFIX = "conf_"


@pytest.fixture(scope="module")
def mongo(stores):
    client = pymongo.MongoClient(stores.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000)
    db = client[stores.db_name]
    yield db
    for name in db.list_collection_names():
        if name.startswith(PREFIX):
            db.drop_collection(name)
    client.close()


@pytest.fixture
def coll(mongo):
    """A fresh, uniquely named collection per test."""
    return mongo[f"{PREFIX}{uuid.uuid4().hex[:10]}"]


def test_unique_index_raises_duplicate_key_error(coll):
    coll.create_index("key", unique=True)
    coll.insert_one({"_id": "a", "key": "same"})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "b", "key": "same"})
    assert coll.count_documents({"key": "same"}) == 1
    assert coll.find_one({"_id": "b"}) is None
    # A different key is still accepted, and a duplicate _id is refused too.
    coll.insert_one({"_id": "c", "key": "other"})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "c", "key": "third"})
    # create_index is idempotent (every process runs ensure_indexes at start-up).
    coll.create_index("key", unique=True)
    assert sorted(d["key"] for d in coll.find()) == ["other", "same"]


def test_find_one_and_update_is_compare_and_set(coll):
    coll.insert_one({"_id": "r1", "status": "searching", "version": 0})
    after = coll.find_one_and_update({"_id": "r1", "version": 0, "status": "searching"},
                                     {"$set": {"status": "assigned", "version": 1}},
                                     return_document=ReturnDocument.AFTER)
    assert after is not None and after["status"] == "assigned" and after["version"] == 1
    stale = coll.find_one_and_update({"_id": "r1", "version": 0, "status": "searching"},
                                     {"$set": {"status": "cancelled", "version": 1}},
                                     return_document=ReturnDocument.AFTER)
    assert stale is None, "a stale version must not match"
    assert coll.find_one({"_id": "r1"}) == {"_id": "r1", "status": "assigned", "version": 1}
    # The default returns the document as it was before the update.
    before = coll.find_one_and_update({"_id": "r1", "version": 1},
                                      {"$set": {"status": "arrived", "version": 2}, "$inc": {"n": 1}})
    assert before["status"] == "assigned" and "n" not in before
    assert coll.find_one({"_id": "r1"})["n"] == 1


def test_find_one_and_update_upsert_counter(coll):
    values = [coll.find_one_and_update({"_id": "seq"}, {"$inc": {"value": 1}}, upsert=True,
                                       return_document=ReturnDocument.AFTER)["value"] for _ in range(3)]
    assert values == [1, 2, 3]
    assert isinstance(values[0], int)
    assert coll.count_documents({}) == 1


def test_conditional_upsert_keeps_filter_id_and_refuses_lower_rank(coll):
    """dispatch.messaging.record_status keeps receipts with exactly this pattern."""
    r = coll.update_one({"_id": "SM1", "rank": {"$lt": 3}}, {"$set": {"rank": 3, "status": "sent"}}, upsert=True)
    assert r.upserted_id == "SM1"
    assert coll.find_one({"_id": "SM1"}) == {"_id": "SM1", "rank": 3, "status": "sent"}
    with pytest.raises(DuplicateKeyError):  # filter misses (3 is not < 2), insert of the same _id fails
        coll.update_one({"_id": "SM1", "rank": {"$lt": 2}}, {"$set": {"rank": 2, "status": "queued"}}, upsert=True)
    assert coll.find_one({"_id": "SM1"})["status"] == "sent"
    r = coll.update_one({"_id": "SM1", "rank": {"$lt": 4}}, {"$set": {"rank": 4, "status": "delivered"}}, upsert=True)
    assert r.matched_count == 1 and r.modified_count == 1 and r.upserted_id is None
    assert coll.find_one({"_id": "SM1"})["status"] == "delivered"


def test_update_one_counts(coll):
    coll.insert_one({"_id": "m", "sid": "SMx", "rank": 3})
    miss = coll.update_one({"sid": "SMx", "rank": {"$lt": 2}}, {"$set": {"rank": 2}})
    assert miss.matched_count == 0 and miss.modified_count == 0
    hit = coll.update_one({"sid": "SMx", "rank": {"$lt": 4}}, {"$set": {"rank": 4}})
    assert hit.matched_count == 1 and hit.modified_count == 1
    assert coll.find_one({"_id": "m"})["rank"] == 4


def _inc_many(mongo_url: str, db_name: str, coll_name: str, n: int, start) -> None:
    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    coll = client[db_name][coll_name]
    client.admin.command("ping")
    start.wait(30)  # both children start hammering at the same moment
    for _ in range(n):
        coll.find_one_and_update({"_id": "ctr"}, {"$inc": {"value": 1}}, upsert=True,
                                 return_document=ReturnDocument.AFTER)
    client.close()


def test_inc_is_atomic_across_processes(stores, coll):
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_inc_many, args=(stores.mongo_url, stores.db_name, coll.name, 200, start))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert coll.find_one({"_id": "ctr"})["value"] == 400


def test_sort_skip_limit(coll):
    coll.insert_many([{"_id": f"d{i}", "n": i, "group": i % 2} for i in range(10)])
    assert [d["n"] for d in coll.find().sort("n", DESCENDING).limit(3)] == [9, 8, 7]
    assert [d["n"] for d in coll.find().sort("n", DESCENDING).skip(3).limit(3)] == [6, 5, 4]
    assert [d["n"] for d in coll.find({"group": 1}).sort("n", ASCENDING).skip(1).limit(2)] == [3, 5]
    assert [d["n"] for d in coll.find().sort("n", ASCENDING).skip(8).limit(5)] == [8, 9]
    assert [d["n"] for d in coll.find().sort([("group", ASCENDING), ("n", DESCENDING)]).limit(3)] == [8, 6, 4]
    assert list(coll.find().sort("n", 1).skip(20)) == []


def test_query_operators(coll):
    coll.insert_many([
        {"_id": "a", "status": "searching", "rank": 0, "phone": "+1"},
        {"_id": "b", "status": "assigned", "rank": 2, "phone": "+2"},
        {"_id": "c", "status": "completed", "rank": 4, "phone": "+1"},
        {"_id": "d", "status": "cancelled", "rank": 5, "phone": "+3"},
    ])

    def ids(query):
        return sorted(d["_id"] for d in coll.find(query))

    assert ids({"status": {"$in": ["searching", "assigned"]}}) == ["a", "b"]
    assert ids({"status": {"$nin": ["completed", "cancelled"]}}) == ["a", "b"]
    assert ids({"$or": [{"phone": "+3"}, {"rank": {"$lt": 1}}]}) == ["a", "d"]
    assert ids({"rank": {"$lt": 4}}) == ["a", "b"]
    assert ids({"rank": {"$gte": 4}}) == ["c", "d"]
    assert ids({"phone": "+1", "status": {"$in": ["searching", "en_route"]}}) == ["a"]
    assert ids({"status": {"$in": []}}) == []
    assert ids({"rank": {"$gte": 2, "$lt": 5}}) == ["b", "c"]


def test_count_documents(coll):
    coll.insert_many([{"_id": i, "status": "open" if i % 3 else "closed"} for i in range(9)])
    assert coll.count_documents({}) == 9
    assert coll.count_documents({"status": "open"}) == 6
    assert coll.count_documents({"status": {"$in": ["closed"]}}) == 3
    assert coll.count_documents({"status": "nope"}) == 0


def test_nested_dict_set_round_trip(coll):
    pickup = {"lat": 40.7359, "lng": -73.9911, "label": "Union Square"}
    coll.insert_one({"_id": "r", "pickup": None, "dropoff": None})
    coll.update_one({"_id": "r"}, {"$set": {"pickup": pickup, "meta": {"tags": ["a", "b"], "n": {"deep": 1}}}})
    doc = coll.find_one({"_id": "r"})
    assert doc["pickup"] == pickup and isinstance(doc["pickup"], dict)
    assert doc["meta"] == {"tags": ["a", "b"], "n": {"deep": 1}}
    assert doc["dropoff"] is None
    # Querying on a nested field and projecting.
    assert coll.find_one({"pickup.label": "Union Square"}, {"_id": 0, "pickup": 1}) == {"pickup": pickup}


def test_integer_epoch_ms_timestamps(coll):
    base = int(time.time() * 1000)
    stamps = [base - 5000, base, base + 1, base + 86_400_000]
    coll.insert_many([{"_id": f"t{i}", "at": at} for i, at in enumerate(stamps)])
    docs = list(coll.find().sort("at", DESCENDING))
    assert [d["at"] for d in docs] == sorted(stamps, reverse=True)
    # pymongo hands int64 back as bson.Int64, an int subclass; never a float or a string.
    assert all(isinstance(d["at"], int) and not isinstance(d["at"], bool) for d in docs), \
        [type(d["at"]) for d in docs]
    assert sorted(d["at"] for d in coll.find({"at": {"$lt": base + 1}})) == [base - 5000, base]
    assert sorted(d["at"] for d in coll.find({"at": {"$gte": base}})) == [base, base + 1, base + 86_400_000]
    coll.update_one({"_id": "t0"}, {"$set": {"at": base + 2}})
    assert [d["_id"] for d in coll.find().sort("at", ASCENDING)] == ["t1", "t2", "t0", "t3"]
    assert coll.find_one({"_id": "t0"})["at"] == base + 2
