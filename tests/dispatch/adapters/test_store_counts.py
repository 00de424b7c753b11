"""The store round-trip counters behind /metrics: every Redis command and MongoDB command, by kind."""
from __future__ import annotations

import uuid

import pymongo
import redis
from prometheus_client import REGISTRY

from dispatch.adapters.metrics import CountedRedis, MongoOpCounter


def redis_count(command: str) -> float:
    return REGISTRY.get_sample_value("supportcarr_redis_commands_total", {"command": command}) or 0.0


def mongo_count(command: str, collection: str) -> float:
    return REGISTRY.get_sample_value("supportcarr_mongo_ops_total",
                                     {"command": command, "collection": collection}) or 0.0


def test_redis_commands_are_counted_one_by_one_and_inside_pipelines(stores):
    client = CountedRedis.from_url(stores.redis_url)
    key = f"count:{uuid.uuid4().hex}"
    client.ping()  # the connection's own hand-shake is counted before the baseline is read
    before = {c: redis_count(c) for c in ("SET", "GET", "INCRBY", "MULTI", "EXEC")}
    client.set(key, 1)
    client.get(key)
    client.get(key)
    with client.pipeline() as pipe:
        pipe.incr(key).incr(key).execute()
    with client.pipeline(transaction=False) as pipe:
        pipe.get(key).execute()
    client.delete(key)
    after = {c: redis_count(c) - before[c] for c in before}
    assert after == {"SET": 1, "GET": 3, "INCRBY": 2, "MULTI": 1, "EXEC": 1}


def test_a_redis_url_keeps_its_kind_of_connection(stores):
    pool = CountedRedis.from_url(stores.redis_url).connection_pool
    assert issubclass(pool.connection_class, redis.connection.Connection)
    tls = CountedRedis.from_url("rediss://127.0.0.1:1/0").connection_pool.connection_class
    assert issubclass(tls, redis.connection.SSLConnection)


def test_mongodb_commands_are_counted_by_command_and_collection(stores):
    client = pymongo.MongoClient(stores.mongo_url, event_listeners=[MongoOpCounter()])
    coll = client[stores.db_name][f"counted_{uuid.uuid4().hex[:8]}"]
    before = (mongo_count("insert", coll.name), mongo_count("find", coll.name), mongo_count("update", coll.name))
    coll.insert_one({"n": 1})
    coll.find_one({"n": 1})
    coll.update_one({"n": 1}, {"$set": {"n": 2}})
    coll.drop()
    client.close()
    after = (mongo_count("insert", coll.name), mongo_count("find", coll.name), mongo_count("update", coll.name))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
