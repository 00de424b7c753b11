"""The live-link store and the arriving claim against the real MongoDB-wire server."""
from __future__ import annotations

import threading
import uuid

from dispatch.adapters.mongo.links import MongoLinks
from dispatch.model.clock import now_ms
from dispatch.model.link import RIDER, Link, derive_token, link_key, new_nonce, token_hash
from tests.conftest import new_number

SECRET = b"test-secret"


def a_link(rescue_id: str) -> Link:
    nonce = new_nonce()
    return Link(key=link_key(rescue_id, RIDER), token_hash=token_hash(derive_token(SECRET, nonce)), nonce=nonce,
                rescue_id=rescue_id, party=RIDER, driver_id=None, created_at=now_ms())


def test_a_link_is_found_by_key_and_by_hash_and_a_second_one_for_the_key_loses(services):
    store = MongoLinks(services.db)
    rescue_id = uuid.uuid4().hex
    first = a_link(rescue_id)
    assert store.add(first) == first
    assert store.for_key(first.key) == first and store.by_hash(first.token_hash) == first
    second = a_link(rescue_id)
    assert store.add(second) == first, "one link per rescue and party: the first stands"
    assert store.by_hash(second.token_hash) is None
    assert store.by_hash(token_hash("not a token")) is None


def test_links_made_at_once_for_one_key_agree(services):
    store = MongoLinks(services.db)
    rescue_id = uuid.uuid4().hex
    results: list[Link] = []
    barrier = threading.Barrier(8)

    def make():
        barrier.wait()
        results.append(store.add(a_link(rescue_id)))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({link.nonce for link in results}) == 1
    assert services.db.links.count_documents({"rescue_id": rescue_id}) == 1


def test_replace_swaps_the_token_only_from_the_expected_one(services):
    store = MongoLinks(services.db)
    old = a_link(uuid.uuid4().hex)
    store.add(old)
    fresh = a_link(old.rescue_id)
    assert store.replace(old.key, "some other hash", fresh) is None
    after = store.replace(old.key, old.token_hash, fresh)
    assert after.token_hash == fresh.token_hash and after.nonce == fresh.nonce and after.created_at == old.created_at
    assert store.by_hash(old.token_hash) is None and store.by_hash(fresh.token_hash) == after


def test_the_arriving_claim_is_taken_once(services):
    rescue = services.lifecycle.create(request_key=f"arriving-{uuid.uuid4().hex}", rider_phone=new_number(),
                                       pickup={"lat": 40.7359, "lng": -73.9911, "label": "Union Square"},
                                       dropoff=None, problem="flat_tire", problem_note="", quote_cents=2800,
                                       trip_miles=0, surge=1.0, channel="sms")
    assert services.rescues.claim_arriving(rescue.id, "position-1", now_ms())
    assert not services.rescues.claim_arriving(rescue.id, "position-2", now_ms())
    assert services.rescues.get(rescue.id).extra["arriving_event_id"] == "position-1"
    services.dispatcher.cancel(rescue.id, "test", by="test")
