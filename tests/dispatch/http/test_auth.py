"""Admin token guessing is limited per client address on every door that takes the token."""
from __future__ import annotations

import dataclasses
import re
import uuid

import pytest

from app import create_app
from dispatch.bootstrap import Services

LIMIT = 3
RIGHT = {"Authorization": "Bearer test-admin-token"}
WRONG = {"Authorization": "Bearer not-the-token"}


@pytest.fixture
def strict(settings, services) -> Services:
    return Services(dataclasses.replace(settings, admin_token_tries_per_minute=LIMIT), services.db, services.redis)


def client_at(svc: Services, address: str | None = None):
    """A test client whose requests come from their own address (the limit is per address)."""
    client = create_app(services=svc).test_client()
    client.environ_base["REMOTE_ADDR"] = address or f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    return client


def test_wrong_tokens_past_the_limit_lock_the_address_out_even_with_the_right_one(strict):
    client = client_at(strict)
    assert [client.get("/api/rescues", headers=WRONG).status_code for _ in range(LIMIT)] == [401] * LIMIT
    locked = client.get("/api/rescues", headers=WRONG)
    assert locked.status_code == 429 and "wait a minute" in locked.get_json()["error"]
    assert client.get("/api/rescues", headers=RIGHT).status_code == 429  # no comparison while locked
    assert client_at(strict).get("/api/rescues", headers=RIGHT).status_code == 200  # another address is not


def test_the_right_token_and_no_token_are_never_counted(strict):
    client = client_at(strict)
    for _ in range(LIMIT * 3):
        assert client.get("/api/rescues", headers=RIGHT).status_code == 200
        assert client.get("/api/rescues").status_code == 401
    assert client.get("/api/rescues", headers=RIGHT).status_code == 200


def test_every_door_shares_one_count(strict):
    client = client_at(strict)
    assert client.get("/metrics", headers=WRONG).status_code == 401
    assert client.get("/api/stats", headers=WRONG).status_code == 401
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"token": "guess", "csrf": csrf}).status_code == 401
    assert client.post("/login", data={"token": "test-admin-token", "csrf": csrf}).status_code == 429
    assert client.get("/metrics", headers=RIGHT).status_code == 429


def test_a_logged_in_dispatcher_is_not_locked_out_by_guesses_from_the_same_address(strict):
    address = "10.250.1.1"
    dispatcher = client_at(strict, address)
    page = dispatcher.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert dispatcher.post("/login", data={"token": "test-admin-token", "csrf": csrf}).status_code == 302
    guesser = client_at(strict, address)
    for _ in range(LIMIT + 2):
        guesser.get("/api/rescues", headers=WRONG)
    assert guesser.get("/api/rescues", headers=WRONG).status_code == 429
    assert dispatcher.get("/api/rescues").status_code == 200
    strict.redis.delete(*strict.redis.keys(strict.keys(f"rate:admin-token:{address}:*")))


def test_the_limit_is_skipped_not_fatal_when_redis_is_down(settings, services):
    import redis

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    svc = Services(dataclasses.replace(settings, admin_token_tries_per_minute=LIMIT), services.db, dead)
    client = client_at(svc)
    assert client.get("/api/rescues", headers=WRONG).status_code == 401
    assert client.get("/api/drivers", headers=RIGHT).status_code == 200
