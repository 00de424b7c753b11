"""dispatch.adapters.map_links: short map links followed with httpx against a local fake of the
short-link hosts (the link's own host travels in the Host header), cached in the real Redis."""
from __future__ import annotations

import os
import time
import uuid
from urllib.parse import quote

import pytest
import redis

from dispatch.adapters.map_links import MapLinkResolver
from dispatch.config import load_settings
from dispatch.ports import GeocoderUnavailable
from tests.fakes.map_links import FakeMapLinks

BRYANT = "https://www.google.com/maps/place/Bryant+Park/@40.7536,-73.9832,17z/data=!3m1!4b1"


@pytest.fixture(scope="module")
def redis_client(request):
    url = os.environ.get("REDIS_URL") or request.getfixturevalue("stores").redis_url
    return redis.Redis.from_url(url)


@pytest.fixture(scope="module")
def fake_links():
    fake = FakeMapLinks().start()
    yield fake
    fake.stop()


@pytest.fixture
def resolver(fake_links, redis_client):
    fake_links.requests.clear()
    fake_links.delay = 0.0

    def make(timeout: float = 1.0) -> MapLinkResolver:
        settings = load_settings({"MAP_LINKS_BASE_URL": fake_links.url, "MAP_LINK_TIMEOUT_SECONDS": str(timeout)})
        return MapLinkResolver(settings, redis_client)
    return make


def code() -> str:
    return uuid.uuid4().hex[:12]


def test_a_short_link_is_followed_to_the_long_one(resolver, fake_links):
    c = code()
    fake_links.add("maps.app.goo.gl", f"/{c}", BRYANT)
    assert resolver().resolve(f"https://maps.app.goo.gl/{c}") == BRYANT
    assert fake_links.requests == [("maps.app.goo.gl", f"/{c}")]   # the long link itself is not fetched


def test_the_answer_is_cached(resolver, fake_links):
    c = code()
    fake_links.add("maps.app.goo.gl", f"/{c}", BRYANT)
    assert resolver().resolve(f"https://maps.app.goo.gl/{c}") == BRYANT
    assert resolver().resolve(f"https://maps.app.goo.gl/{c}") == BRYANT   # another process, same Redis
    assert len(fake_links.requests) == 1


def test_several_hops_through_map_hosts(resolver, fake_links):
    c = code()
    fake_links.add("goo.gl", f"/maps/{c}", f"https://maps.app.goo.gl/{c}", status=301)
    fake_links.add("maps.app.goo.gl", f"/{c}", f"https://maps.google.com/?cid={c}")
    fake_links.add("maps.google.com", f"/?cid={c}", "/maps/place/Bryant+Park/@40.7536,-73.9832,17z")
    assert resolver().resolve(f"https://goo.gl/maps/{c}") == \
        "https://maps.google.com/maps/place/Bryant+Park/@40.7536,-73.9832,17z"
    assert [host for host, _ in fake_links.requests] == ["goo.gl", "maps.app.goo.gl", "maps.google.com"]


def test_google_s_consent_page_is_passed_without_a_request(resolver, fake_links):
    c = code()
    fake_links.add("maps.app.goo.gl", f"/{c}",
                   "https://consent.google.com/m?continue=" + quote(BRYANT, safe=""))
    assert resolver().resolve(f"https://maps.app.goo.gl/{c}") == BRYANT
    assert len(fake_links.requests) == 1


def test_a_redirect_off_the_map_hosts_is_not_followed(resolver, fake_links):
    c = code()
    fake_links.add("maps.app.goo.gl", f"/{c}", "https://phishing.example.com/?ll=40.7536,-73.9832")
    assert resolver().resolve(f"https://maps.app.goo.gl/{c}") is None
    assert fake_links.requests == [("maps.app.goo.gl", f"/{c}")]


def test_a_link_that_leads_nowhere(resolver, fake_links):
    assert resolver().resolve(f"https://maps.app.goo.gl/{code()}") is None   # the fake's 404


def test_a_redirect_loop_ends(resolver, fake_links):
    c = code()
    fake_links.add("maps.app.goo.gl", f"/{c}", f"https://maps.app.goo.gl/{c}")
    assert resolver().resolve(f"https://maps.app.goo.gl/{c}") is None
    assert len(fake_links.requests) == 5


def test_a_slow_host_is_unavailable_within_the_budget_and_not_cached(resolver, fake_links):
    c = code()
    fake_links.add("maps.app.goo.gl", f"/{c}", BRYANT)
    fake_links.delay = 0.6
    started = time.monotonic()
    with pytest.raises(GeocoderUnavailable):
        resolver(timeout=0.2).resolve(f"https://maps.app.goo.gl/{c}")
    assert time.monotonic() - started < 0.5
    fake_links.delay = 0.0
    assert resolver().resolve(f"https://maps.app.goo.gl/{c}") == BRYANT
