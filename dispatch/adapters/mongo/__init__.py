"""MongoDB, through pymongo only: the system of record for everything that matters.

The only package that talks to MongoDB (each store in a module of its own). The embedded
`nx-27017` server has gaps the stores are shaped around, each checked against it: `$push`
of a document stores it as a JSON string, `$setOnInsert` is ignored, a top-level datetime
written by `$set` comes back as a string, and booleans come back as 1/0 (so they are read
with `bool()`). So timelines and message logs are their own collections (one document per
entry), no update relies on those operators, and every timestamp is stored as integer
epoch milliseconds (`dispatch.model.clock`), which sorts, compares and round-trips the same
on both servers. Its indexes serve a field only when the field has a single-field index
(`EMBEDDED_SCALARS`), and never for `$in` (a hot query compares another field, or a range);
`$or` is filtered in Python after a scan, so only the pages' and the API's queries use it.
"""
from __future__ import annotations

from collections.abc import Sequence

import pymongo
from pymongo import ASCENDING, DESCENDING, monitoring
from pymongo.collection import Collection
from pymongo.database import Database

from dispatch.config import Settings


def connect(settings: Settings, listeners: Sequence[monitoring.CommandListener] = ()) -> Database:
    if not settings.mongo_url:
        raise RuntimeError("MONGO_URL is not set (python app.py starts an embedded server)")
    client = pymongo.MongoClient(settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000,
                                 connectTimeoutMS=5000, socketTimeoutMS=15000, appname="supportcarr",
                                 event_listeners=list(listeners))
    return client[settings.mongo_db]


# nx-27017 (neosqlite) compares a field in a form an index can serve only when the field has
# a single-field index: otherwise the comparison also looks inside arrays, which is a scan of
# the whole collection, and a compound index led by the field goes unused. These are the fields
# the hot queries compare by equality; on a real MongoDB the compound indexes' prefixes serve.
EMBEDDED_SCALARS = {
    "messages": ("phone", "processed", "rescue_id"),
    "rescues": ("rider_phone", "status"),
    "events": ("rescue_id", "handled"),
    "offers": ("rescue_id", "driver_id", "status"),
    "ledger": ("rescue_id",),
    "help_requests": ("status",),
}


def ensure_indexes(db: Database) -> None:
    """Idempotent; run by every process at start-up."""
    if embedded_server(db):
        for collection, fields in EMBEDDED_SCALARS.items():
            for name in fields:
                db[collection].create_index(name)
    db.conversations.create_index("role")
    db.messages.create_index("key", unique=True)
    db.messages.create_index("twilio_sid")
    db.messages.create_index([("phone", ASCENDING), ("created_at", DESCENDING)])
    db.messages.create_index([("rescue_id", ASCENDING), ("created_at", ASCENDING)])
    db.messages.create_index("status")
    db.messages.create_index([("status_rank", ASCENDING), ("created_at", ASCENDING)])  # the outbox drain's look
    db.messages.create_index([("phone", ASCENDING), ("processed", ASCENDING), ("seq", ASCENDING)])
    db.messages.create_index([("processed", ASCENDING), ("seq", ASCENDING)])  # the inbound drain's look
    db.riders.create_index("phone", unique=True)
    db.drivers.create_index("phone", unique=True)
    db.drivers.create_index("status")
    db.rescues.create_index("request_key", unique=True)
    db.rescues.create_index("code", unique=True)
    db.rescues.create_index([("rider_phone", ASCENDING), ("status", ASCENDING)])
    db.rescues.create_index([("status", ASCENDING), ("created_at", DESCENDING)])
    db.rescues.create_index("created_at")
    db.events.create_index([("rescue_id", ASCENDING), ("at", ASCENDING)])
    db.events.create_index([("handled", ASCENDING), ("at", ASCENDING)])
    db.offers.create_index([("rescue_id", ASCENDING), ("status", ASCENDING)])
    db.offers.create_index([("driver_id", ASCENDING), ("created_at", DESCENDING)])
    db.offers.create_index([("status", ASCENDING), ("expires_at", ASCENDING)])
    db.ledger.create_index("key", unique=True)
    db.ledger.create_index([("rescue_id", ASCENDING), ("kind", ASCENDING)])
    db.ledger.create_index("payment_intent")
    db.ledger.create_index("request")
    db.stripe_events.create_index("rescue_id")
    db.help_requests.create_index("open_key", unique=True)
    db.help_requests.create_index([("status", ASCENDING), ("created_at", DESCENDING)])
    db.links.create_index("token_hash", unique=True)
    db.dispatchers.create_index("username_key", unique=True)
    db.dispatchers.create_index("phone")
    db.voice_steps.create_index("phone")  # erasure of one caller
    db.voice_steps.create_index("at")  # and by age
    db.messages.create_index("created_at")  # erasure by age


def embedded_server(db: Database) -> bool:
    """nx-27017 names itself in its `buildInfo` answer (a MongoDB's has no `process`)."""
    return db.command("buildInfo").get("process") == "nx_27017"


def next_sequence(db: Database, name: str, start: int) -> int:
    """A counter that never repeats, across processes (an atomic `$inc`)."""
    doc = db.counters.find_one_and_update({"_id": name}, {"$inc": {"value": 1}}, upsert=True,
                                          return_document=pymongo.ReturnDocument.AFTER)
    return start + int(doc["value"])


def count(col: Collection, query: dict) -> int:
    """How many documents match: `count_documents` groups on a constant, which nx-27017 evaluates
    in Python (a `fallback` line in its log) where a `$count` stage stays in SQL."""
    found = next(col.aggregate([{"$match": query}, {"$count": "n"}]), None)
    return int(found["n"]) if found else 0


def counts_by(col: Collection, field: str, query: dict | None = None) -> dict[str, int]:
    """How many documents have each value of `field`, in one round trip."""
    pipeline = [{"$match": query}] if query else []
    pipeline.append({"$group": {"_id": f"${field}", "n": {"$sum": 1}}})
    return {d["_id"]: int(d["n"]) for d in col.aggregate(pipeline)}


NEWEST = [("created_at", DESCENDING), ("seq", DESCENDING)]


def newest_first(doc: dict) -> tuple[int, int]:
    """Sort key merging the answers of several queries, each sorted `NEWEST`, as one query would."""
    return -int(doc.get("created_at") or 0), -int(doc.get("seq") or 0)


def ping(db: Database) -> bool:
    return bool(db.command("ping").get("ok"))


def conditions(**wanted) -> dict:
    """A filter from keyword conditions, leaving out those that are ANY (see dispatch.ports)."""
    from dispatch.ports import ANY

    return {k: v for k, v in wanted.items() if v is not ANY}
