"""dispatch.places: the built-in gazetteer, the Locator's order, and the Nominatim adapter.

The Nominatim tests use geopy's real client against the local fake server and a real Redis
(REDIS_URL, or the embedded one from the `stores` fixture). They only touch the keys they
create: the `geocode:<sha1>` cache keys of their own unique queries and `geocoder:slot`.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from dispatch.adapters.nominatim import NominatimGeocoder
from dispatch.config import load_settings
from dispatch.model.geo import Point, bounding_box
from dispatch.places import MAX_CHOICES, Gazetteer, GeocoderUnavailable, Locator, normalise_place
from tests.fakes.nominatim import FakeNominatim


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer.builtin()


def labels(points: list[Point]) -> list[str]:
    return [p.label for p in points]


# -- normalise_place -------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Union Square", "union sq"),
    ("  BROADWAY and 42nd!! ", "broadway & 42nd"),
    ("Broadway&42nd", "broadway & 42nd"),
    ("5th Avenue at 23rd Street", "5th ave & 23rd st"),
    ("Fifth Av", "5th ave"),
    ("", ""),
    (None, ""),
])
def test_normalise_place(text, expected):
    assert normalise_place(text) == expected


# -- Gazetteer.search ---------------------------------------------------------------------------

@pytest.mark.parametrize("query, expected", [
    ("Times Square", "Times Square"),
    ("times square", "Times Square"),
    ("UNION SQUARE!", "Union Square"),
    ("union sq", "Union Square"),                       # alias
    ("Union Sq.", "Union Square"),
    ("broadway and 42nd", "Times Square"),              # "and" -> "&"
    ("Broadway & 42nd", "Times Square"),
    ("42nd and broadway", "Times Square"),              # words in any order
    ("grand central", "Grand Central Terminal"),
    ("Madison Square Garden", "Penn Station"),          # alias of another place
    ("wall street", "Wall Street & Broadway"),          # street -> st
    ("the vessel", "Hudson Yards"),
    ("jfk", "JFK Airport"),
])
def test_search_single_match(gazetteer, query, expected):
    found = gazetteer.search(query)
    assert labels(found) == [expected]
    assert isinstance(found[0], Point)


def test_search_returns_points_with_coordinates(gazetteer):
    (point,) = gazetteer.search("union sq")
    assert (point.lat, point.lng) == (40.7359, -73.9911)


def test_search_several_matches_in_gazetteer_order(gazetteer):
    assert labels(gazetteer.search("42nd")) == ["Times Square", "Bryant Park", "Grand Central Terminal"]
    assert labels(gazetteer.search("central park")) == [
        "Central Park South", "Central Park Bethesda Terrace", "Central Park North"]


def test_search_caps_matches_at_five(gazetteer):
    found = gazetteer.search("park")
    assert MAX_CHOICES == 5
    assert len(found) == 5
    assert labels(found) == ["Washington Square Park", "Madison Square Park", "Bryant Park",
                             "Grand Central Terminal", "Central Park South"]


def test_exact_name_beats_word_match(gazetteer):
    # "madison sq" is exactly an alias of Madison Square Park; as words it would also match
    # Penn Station's alias "madison square garden".
    assert labels(gazetteer.search("madison square")) == ["Madison Square Park"]
    assert labels(gazetteer.search("madison")) == ["Madison Square Park", "Penn Station"]


@pytest.mark.parametrize("query", ["", "   ", "the", "near the", "nowhere land", "5th avenue & 99th",
                                   "!!!"])
def test_search_no_match(gazetteer, query):
    assert gazetteer.search(query) == []


def test_search_cross_street_with_street_suffix(gazetteer):
    # The ask_location prompt suggests "Broadway & 42nd"; riders naturally add "St".
    assert labels(gazetteer.search("Broadway & 42nd St")) == ["Times Square"], (
        "APP BUG dispatch/places.py (Gazetteer.search): the word match requires every "
        "token, so the street suffix 'st' (from 'St'/'Street') makes 'Broadway & 42nd St' "
        "find nothing although 'Broadway & 42nd' is a Times Square alias")


# -- Gazetteer.find_in_text -------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("stuck near union square with a flat", "Union Square"),
    ("Flat tire at Union Sq.", "Union Square"),
    ("my bike died at madison square garden", "Penn Station"),   # longest: not "madison sq"
    ("flat at central park south ok", "Central Park South"),
    ("chain broke by Grand Central Terminal", "Grand Central Terminal"),
    ("im at broadway and 42nd, battery dead", "Times Square"),
    ("penn station", "Penn Station"),
])
def test_find_in_text_picks_the_longest_place_name(gazetteer, text, expected):
    found = gazetteer.find_in_text(text)
    assert found is not None and found.label == expected


@pytest.mark.parametrize("text", [
    "help my bike broke",
    "im at msg",          # names shorter than 4 characters are not spotted in chatter
    "unionsquare",        # not whole words
    "",
])
def test_find_in_text_nothing(gazetteer, text):
    assert gazetteer.find_in_text(text) is None


def test_find_in_text_does_not_take_the_battery_for_battery_park(gazetteer):
    found = gazetteer.find_in_text("The battery died at Union Square")
    assert found is not None and found.label == "Union Square", (
        "APP BUG dispatch/places.py (Gazetteer.find_in_text) with gazetteer alias "
        "'the battery' (Battery Park): a first message 'The battery died at Union Square' sets "
        f"the pickup to {found.label if found else None!r} instead of Union Square, because the "
        "longest whole-word name wins and 'the battery' (11 chars) beats 'union sq' (8)")


# -- Locator.resolve order ----------------------------------------------------------------------

class RecordingGeocoder:
    """A Geocoder (the protocol) that answers from a dict and records what it was asked."""

    def __init__(self, answers: dict[str, list[Point]] | None = None, fail: bool = False) -> None:
        self.answers = answers or {}
        self.fail = fail
        self.asked: list[str] = []

    def search(self, query: str) -> list[Point]:
        self.asked.append(query)
        if self.fail:
            raise GeocoderUnavailable("down")
        return self.answers.get(query, [])


def test_resolve_coordinates_first(gazetteer):
    geocoder = RecordingGeocoder()
    locator = Locator(gazetteer, geocoder)
    # The text also names a gazetteer place; the coordinates win and nobody is asked.
    assert locator.resolve("union square 40.7580,-73.9855") == [
        Point(40.7580, -73.9855, "40.75800,-73.98550")]
    assert locator.resolve("https://maps.apple.com/?ll=40.7359,-73.9911")[0].lat == 40.7359
    assert geocoder.asked == []


def test_resolve_gazetteer_before_geocoder(gazetteer):
    geocoder = RecordingGeocoder({"union square": [Point(1.0, 1.0, "elsewhere")]})
    locator = Locator(gazetteer, geocoder)
    assert labels(locator.resolve("union square")) == ["Union Square"]
    assert len(locator.resolve("park")) == 5
    assert geocoder.asked == []


def test_resolve_falls_back_to_geocoder(gazetteer):
    bodega = Point(40.7465, -74.0014, "Bodega, 9th Avenue, Chelsea")
    geocoder = RecordingGeocoder({"the corner bodega on 9th": [bodega]})
    locator = Locator(gazetteer, geocoder)
    assert locator.resolve("the corner bodega on 9th") == [bodega]
    assert locator.resolve("nowhere land") == []
    assert geocoder.asked == ["the corner bodega on 9th", "nowhere land"]


def test_resolve_without_geocoder(gazetteer):
    locator = Locator(gazetteer)
    assert locator.resolve("nowhere land") == []
    assert labels(locator.resolve("times sq")) == ["Times Square"]


def test_resolve_propagates_geocoder_unavailable(gazetteer):
    locator = Locator(gazetteer, RecordingGeocoder(fail=True))
    with pytest.raises(GeocoderUnavailable):
        locator.resolve("the corner bodega on 9th")
    # ...but never when the gazetteer already knows the place.
    assert labels(locator.resolve("union sq")) == ["Union Square"]


def test_spot_in_message_never_asks_the_geocoder(gazetteer):
    geocoder = RecordingGeocoder(fail=True)
    locator = Locator(gazetteer, geocoder)
    assert locator.spot_in_message("flat tire near the corner bodega") is None
    assert locator.spot_in_message("flat at union square").label == "Union Square"
    assert locator.spot_in_message("flat at 40.7359,-73.9911 pls").lat == 40.7359
    assert geocoder.asked == []


# -- NominatimGeocoder against the fake server ----------------------------------------------

class RecordingNominatim(FakeNominatim):
    """The shared fake, also keeping each request's parsed query string."""

    def __init__(self) -> None:
        super().__init__()
        self.params: list[dict[str, list[str]]] = []

    def handle(self, h) -> None:
        self.params.append(parse_qs(urlsplit(h.path).query))
        super().handle(h)


@pytest.fixture(scope="module")
def redis_client(request):
    url = os.environ.get("REDIS_URL") or request.getfixturevalue("stores").redis_url
    client = redis.Redis.from_url(url)
    client.ping()
    return client


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
    fake_nominatim.delay = 0.0
    redis_client.delete("geocoder:slot")
    used: list[str] = []

    class Helper:
        fake = fake_nominatim
        redis = redis_client

        @staticmethod
        def geocoder(timeout: float = 2.0) -> NominatimGeocoder:
            settings = load_settings({
                "GEOCODER": "nominatim", "GEOCODER_URL": fake_nominatim.url,
                "GEOCODER_TIMEOUT_SECONDS": str(timeout),
                "PUBLIC_BASE_URL": "https://rescue.example.test",
            })
            return NominatimGeocoder(settings, redis_client)

        @staticmethod
        def query(text: str) -> str:
            q = f"{text} {uuid.uuid4().hex[:10]}"
            used.append(q)
            return q

        @staticmethod
        def cache_key(q: str) -> str:
            return "geocode:" + hashlib.sha1(normalise_place(q).encode()).hexdigest()

        @staticmethod
        def free_slot() -> None:
            redis_client.delete("geocoder:slot")

    yield Helper
    fake_nominatim.delay = 0.0
    keys = [Helper.cache_key(q) for q in used]
    if keys:
        redis_client.delete(*keys)
    redis_client.delete("geocoder:slot")


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
        "APP BUG dispatch/adapters/nominatim.py (NominatimGeocoder.__init__): geopy's default "
        "RequestsAdapter retries read timeouts (max_retries=2), so one search sent "
        f"{len(nominatim.fake.queries)} requests to a slow geocoder inside one rate-limit slot "
        f"(breaks the 1 request/s policy) and took {elapsed:.2f}s for a 0.2s timeout; with the "
        "default 3 s timeout a webhook can block ~9 s plus up to 3 s waiting for the slot")
    assert elapsed < 0.2 * 2 + 0.3


def test_rate_limit_slot_held_elsewhere_gives_unavailable_without_asking(nominatim):
    # Another process just used the one-request-a-second slot for longer than our timeout.
    nominatim.redis.set("geocoder:slot", "1", px=5000)
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
