"""dispatch.adapters.geocoders: Nominatim, Mapbox and Google through geopy's real clients,
each against a local fake of its API, over the real Redis (REDIS_URL, or the embedded one).

Tests only touch the keys they create: the cache keys of their own unique queries and points,
and `geocoder:slot`.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from dispatch.adapters.geocoders import GoogleGeocoder, MapboxGeocoder, NominatimGeocoder, build_geocoder
from dispatch.adapters.redis_keys import KeySpace
from dispatch.config import ConfigError, load_settings
from dispatch.model.geo import Point, bounding_box
from dispatch.places import MAX_CHOICES, GeocoderUnavailable, normalise_place
from tests.fakes.google_geocoding import FakeGoogleGeocoding
from tests.fakes.mapbox import FakeMapbox
from tests.fakes.nominatim import FakeNominatim

MAPBOX_TOKEN, GOOGLE_KEY = "pk.test-mapbox-token", "test-google-key"


def labels(points: list[Point]) -> list[str]:
    return [p.label for p in points]


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def redis_client(request):
    url = os.environ.get("REDIS_URL") or request.getfixturevalue("stores").redis_url
    client = redis.Redis.from_url(url)
    client.ping()
    return client


KEYS = KeySpace("default")  # settings_for's deployment: RQ_QUEUE unset


def settings_for(vendor: str, url: str, timeout: float = 2.0, key: str | None = None):
    env = {"GEOCODER": vendor, "GEOCODER_URL": url, "GEOCODER_TIMEOUT_SECONDS": str(timeout),
           "PUBLIC_BASE_URL": "https://rescue.example.test"}
    if key:
        env["GEOCODER_API_KEY"] = key
    return load_settings(env)


# -- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("vendor, kind", [("nominatim", NominatimGeocoder), ("mapbox", MapboxGeocoder),
                                          ("google", GoogleGeocoder)])
def test_geocoder_named_by_the_setting(redis_client, vendor, kind):
    assert isinstance(build_geocoder(settings_for(vendor, "http://127.0.0.1:9", key="k"), redis_client), kind)


def test_no_geocoder_for_none(redis_client):
    assert build_geocoder(load_settings({}), redis_client) is None


@pytest.mark.parametrize("env, message", [
    ({"GEOCODER": "bing"}, "GEOCODER must be one of none, nominatim, mapbox, google"),
    ({"GEOCODER": "mapbox"}, "GEOCODER=mapbox needs GEOCODER_API_KEY"),
    ({"GEOCODER": "google"}, "GEOCODER=google needs GEOCODER_API_KEY"),
])
def test_geocoder_settings_are_checked(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


# -- Nominatim -----------------------------------------------------------------------------------

class RecordingNominatim(FakeNominatim):
    """The shared fake, also keeping each request's parsed query string."""

    def __init__(self) -> None:
        super().__init__()
        self.params: list[dict[str, list[str]]] = []

    def handle(self, h) -> None:
        self.params.append(parse_qs(urlsplit(h.path).query))
        super().handle(h)


@pytest.fixture(scope="module")
def fake_nominatim():
    fake = RecordingNominatim().start()
    yield fake
    fake.stop()


@pytest.fixture
def nominatim(redis_client, fake_nominatim):
    """A factory for NominatimGeocoder plus per-test unique queries, cleaned up afterwards."""
    fake_nominatim.queries.clear()
    fake_nominatim.user_agents.clear()
    fake_nominatim.params.clear()
    fake_nominatim.reversed.clear()
    fake_nominatim.delay = 0.0
    redis_client.delete(KEYS("geocoder:slot"))
    used: list[str] = []

    class Helper:
        fake = fake_nominatim
        redis = redis_client

        @staticmethod
        def geocoder(timeout: float = 2.0) -> NominatimGeocoder:
            return NominatimGeocoder(settings_for("nominatim", fake_nominatim.url, timeout), redis_client)

        @staticmethod
        def query(text: str) -> str:
            q = unique(text)
            used.append(q)
            return q

        @staticmethod
        def cache_key(q: str) -> str:
            return KEYS("geocode:nominatim:" + hashlib.sha1(normalise_place(q).encode()).hexdigest())

        @staticmethod
        def free_slot() -> None:
            redis_client.delete(KEYS("geocoder:slot"))

    yield Helper
    fake_nominatim.delay = 0.0
    keys = [Helper.cache_key(q) for q in used]
    if keys:
        redis_client.delete(*keys)
    redis_client.delete(KEYS("geocoder:slot"))
def test_nominatim_results_become_points_with_short_labels(nominatim):
    q = nominatim.query("the corner bodega on 9th")
    nominatim.fake.add(q,
                       (40.7465, -74.0014, "Bodega, 9th Avenue, Chelsea, Manhattan, New York County, "
                                           "New York, 10011, United States"),
                       (40.7411, -73.9897, "Main Street, Flatiron"))
    found = nominatim.geocoder().search(q)
    assert found == [Point(40.7465, -74.0014, "Bodega, 9th Avenue, Chelsea"),
                     Point(40.7411, -73.9897, "Main Street, Flatiron")]
    assert all(isinstance(p.lat, float) and isinstance(p.lng, float) for p in found)


def test_nominatim_request_is_bounded_to_the_service_area(nominatim):
    q = nominatim.query("somewhere")
    nominatim.geocoder().search(q)
    assert nominatim.fake.queries == [q]
    (params,) = nominatim.fake.params
    assert params["bounded"] == ["1"]
    assert params["limit"] == [str(MAX_CHOICES)]
    settings = load_settings({})
    sw, ne = bounding_box(settings.service_area)
    box = [float(v) for v in params["viewbox"][0].split(",")]
    lngs, lats = sorted(box[0::2]), sorted(box[1::2])
    assert lngs == pytest.approx([sw.lng, ne.lng], abs=1e-6)
    assert lats == pytest.approx([sw.lat, ne.lat], abs=1e-6)


def test_nominatim_user_agent_names_supportcarr(nominatim):
    nominatim.geocoder().search(nominatim.query("anywhere"))
    (agent,) = nominatim.fake.user_agents
    assert "SupportCarr" in agent
    assert "rescue.example.test" in agent


def test_second_identical_query_is_served_from_redis(nominatim):
    q = nominatim.query("chelsea bodega")
    nominatim.fake.add(q, (40.7465, -74.0014, "Bodega, 9th Avenue, Chelsea, Manhattan"))
    first = nominatim.geocoder().search(q)
    # Another instance (another process) with the same Redis, and the query typed differently.
    second = nominatim.geocoder().search(q.upper() + "  ")
    third = nominatim.geocoder().search(q)
    assert first == second == third == [Point(40.7465, -74.0014, "Bodega, 9th Avenue, Chelsea")]
    assert nominatim.fake.queries == [q]
    ttl = nominatim.redis.ttl(nominatim.cache_key(q))
    assert 0 < ttl <= 7 * 24 * 3600


def test_empty_answer_is_cached_too(nominatim):
    q = nominatim.query("no such place")
    geocoder = nominatim.geocoder()
    assert geocoder.search(q) == []
    assert geocoder.search(q) == []
    assert nominatim.fake.queries == [q]
    ttl = nominatim.redis.ttl(nominatim.cache_key(q))
    assert 0 < ttl <= 24 * 3600


def test_slow_server_raises_geocoder_unavailable_and_is_not_cached(nominatim):
    q = nominatim.query("slow place")
    nominatim.fake.add(q, (40.7465, -74.0014, "Slow Place, Chelsea"))
    nominatim.fake.delay = 0.6
    geocoder = nominatim.geocoder(timeout=0.2)
    with pytest.raises(GeocoderUnavailable):
        geocoder.search(q)
    assert nominatim.redis.get(nominatim.cache_key(q)) is None
    # Once the server answers in time, the same query is asked again and succeeds.
    nominatim.fake.delay = 0.0
    nominatim.free_slot()
    assert labels(nominatim.geocoder().search(q)) == ["Slow Place, Chelsea"]


def test_slow_server_costs_one_request_and_one_timeout(nominatim):
    # GEOCODER_TIMEOUT_SECONDS bounds how long a webhook waits, and Nominatim allows one
    # request a second for the whole application (the slot is taken once per search).
    nominatim.fake.delay = 0.6
    geocoder = nominatim.geocoder(timeout=0.2)
    started = time.monotonic()
    with pytest.raises(GeocoderUnavailable):
        geocoder.search(nominatim.query("slow again"))
    elapsed = time.monotonic() - started
    assert len(nominatim.fake.queries) == 1, (
        "APP BUG dispatch/adapters/geocoders.py (NominatimGeocoder.__init__): geopy's default "
        "RequestsAdapter retries read timeouts (max_retries=2), so one search sent "
        f"{len(nominatim.fake.queries)} requests to a slow geocoder inside one rate-limit slot "
        f"(breaks the 1 request/s policy) and took {elapsed:.2f}s for a 0.2s timeout; with the "
        "default 3 s timeout a webhook can block ~9 s plus up to 3 s waiting for the slot")
    assert elapsed < 0.2 * 2 + 0.3


def test_rate_limit_slot_held_elsewhere_gives_unavailable_without_asking(nominatim):
    # Another process just used the one-request-a-second slot for longer than our timeout.
    nominatim.redis.set(KEYS("geocoder:slot"), "1", px=5000)
    with pytest.raises(GeocoderUnavailable):
        nominatim.geocoder(timeout=0.2).search(nominatim.query("rate limited"))
    assert nominatim.fake.queries == []


def test_geocoder_waits_for_the_slot_between_requests(nominatim):
    geocoder = nominatim.geocoder(timeout=2.0)
    started = time.monotonic()
    geocoder.search(nominatim.query("first"))
    geocoder.search(nominatim.query("second"))
    elapsed = time.monotonic() - started
    assert len(nominatim.fake.queries) == 2
    assert elapsed >= 0.9   # one request a second across every process


def test_nominatim_names_coordinates_once_per_spot(nominatim):
    # Below 40.73594, so the point 0.00001 north still rounds to the same 4-decimal square.
    point = Point(40.73591 + (uuid.uuid4().int % 300) / 1e7, -73.99111)
    nominatim.fake.add_address(point.lat, point.lng, "Union Square, Manhattan, New York County, New York")
    key = KEYS(f"geocode:nominatim:reverse:{point.lat:.4f},{point.lng:.4f}")
    try:
        assert nominatim.geocoder().reverse(point) == "Union Square, Manhattan, New York County"
        nominatim.free_slot()
        assert nominatim.geocoder().reverse(Point(point.lat + 0.00001, point.lng)) == \
            "Union Square, Manhattan, New York County"
        assert len(nominatim.fake.reversed) == 1   # the same ~10 m square: from Redis
    finally:
        nominatim.redis.delete(key)


def test_nominatim_has_no_name_for_the_sea(nominatim):
    point = Point(40.5 + (uuid.uuid4().int % 1000) / 1e6, -73.5)
    try:
        assert nominatim.geocoder().reverse(point) is None
    finally:
        nominatim.redis.delete(KEYS(f"geocode:nominatim:reverse:{point.lat:.4f},{point.lng:.4f}"))


# -- Mapbox ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_mapbox():
    fake = FakeMapbox(MAPBOX_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def mapbox(fake_mapbox, redis_client):
    fake_mapbox.requests.clear()
    return MapboxGeocoder(settings_for("mapbox", fake_mapbox.url, key=MAPBOX_TOKEN), redis_client)


def test_mapbox_finds_an_intersection_asked_as_street_and_street(mapbox, fake_mapbox):
    suffix = uuid.uuid4().hex[:8]
    fake_mapbox.add(f"Atlantic Ave and Flatbush Ave {suffix}",
                    (40.6843, -73.9772, "Atlantic Avenue & Flatbush Avenue, Brooklyn, New York 11217, United States"),
                    accuracy="intersection")
    found = mapbox.search(f"Atlantic Ave & Flatbush Ave {suffix}")
    assert found == [Point(40.6843, -73.9772, "Atlantic Avenue & Flatbush Avenue, Brooklyn, New York 11217")]
    (asked,) = fake_mapbox.requests
    assert asked["query"] == f"Atlantic Ave and Flatbush Ave {suffix}"
    assert asked["access_token"] == MAPBOX_TOKEN
    sw, ne = bounding_box(load_settings({}).service_area)
    box = [float(v) for v in asked["bbox"].split(",")]
    assert box == pytest.approx([sw.lng, sw.lat, ne.lng, ne.lat], abs=1e-6)
    assert mapbox.search(f"atlantic ave & flatbush ave {suffix}  ") == found   # from Redis
    assert len(fake_mapbox.requests) == 1


def test_mapbox_names_coordinates(mapbox, fake_mapbox):
    lat = 40.7 + (uuid.uuid4().int % 1000) / 1e6
    fake_mapbox.add_address(lat, -73.99, "14th Street & Broadway, New York, New York 10003, United States")
    assert mapbox.reverse(Point(lat, -73.99)) == "14th Street & Broadway, New York, New York 10003"
    lng, at = (float(v) for v in fake_mapbox.requests[-1]["query"].split(","))
    assert (lng, at) == pytest.approx((-73.99, lat))   # Mapbox takes longitude first


def test_mapbox_with_a_wrong_token_is_unavailable(fake_mapbox, redis_client):
    geocoder = MapboxGeocoder(settings_for("mapbox", fake_mapbox.url, key="wrong"), redis_client)
    with pytest.raises(GeocoderUnavailable):
        geocoder.search(unique("anything"))


# -- Google ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_google():
    fake = FakeGoogleGeocoding(GOOGLE_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture
def google(fake_google, redis_client):
    fake_google.requests.clear()
    return GoogleGeocoder(settings_for("google", fake_google.url, key=GOOGLE_KEY), redis_client)


def test_google_finds_an_intersection_and_drops_what_is_outside_the_area(google, fake_google):
    q = unique("Market St & 5th St")
    fake_google.add(q, (40.7441, -73.9903, "W 25th St & Broadway, New York, NY 10010, USA"),
                    (37.7841, -122.4075, "Market St & 5th St, San Francisco, CA 94103, USA"))
    assert google.search(q) == [Point(40.7441, -73.9903, "W 25th St & Broadway, New York, NY 10010")]
    (asked,) = fake_google.requests
    assert asked["address"] == q and asked["key"] == GOOGLE_KEY and asked["region"] == "us"
    assert "|" in asked["bounds"]


def test_google_zero_results_is_an_empty_answer(google):
    assert google.search(unique("no such corner")) == []


def test_google_names_coordinates(google, fake_google):
    lat = 40.7 + (uuid.uuid4().int % 1000) / 1e6
    fake_google.add_address(lat, -73.98, "E 14th St & Broadway, New York, NY 10003, USA")
    assert google.reverse(Point(lat, -73.98)) == "E 14th St & Broadway, New York, NY 10003"
    assert fake_google.requests[-1]["latlng"].startswith(f"{lat}")


def test_google_refusing_the_key_is_unavailable(fake_google, redis_client):
    geocoder = GoogleGeocoder(settings_for("google", fake_google.url, key="wrong"), redis_client)
    with pytest.raises(GeocoderUnavailable):
        geocoder.search(unique("anything"))


def test_google_slow_answer_is_unavailable_after_one_try(fake_google, redis_client):
    class Slow(FakeGoogleGeocoding):
        def handle(self, h):
            time.sleep(0.5)
            super().handle(h)

    slow = Slow(GOOGLE_KEY).start()
    try:
        geocoder = GoogleGeocoder(settings_for("google", slow.url, timeout=0.2, key=GOOGLE_KEY), redis_client)
        started = time.monotonic()
        with pytest.raises(GeocoderUnavailable):
            geocoder.search(unique("slow corner"))
        assert time.monotonic() - started < 0.45
        time.sleep(0.4)
        assert len(slow.requests) == 1
    finally:
        slow.stop()


def test_at_most_five_choices(google, fake_google):
    q = unique("deli")
    fake_google.add(q, *[(40.74 + i / 1000, -73.99, f"Deli {i}, New York") for i in range(8)])
    assert len(google.search(q)) == MAX_CHOICES
