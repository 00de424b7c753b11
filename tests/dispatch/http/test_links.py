"""The live-link routes (PRODUCT.md §9) in process, over the real stores: what they refuse, what
they show, and the headers that keep a secret URL secret."""
from __future__ import annotations

import dataclasses
import json
import re
import uuid
from dataclasses import dataclass

import pytest

from dispatch.http import sse
from dispatch.http.links import POSITIONS_PER_MINUTE, tile_source
from dispatch.model.driver import Driver
from dispatch.model.geo import Point
from dispatch.model.rescue import Rescue
from tests.conftest import new_number

UNION_SQ = {"lat": 40.7359, "lng": -73.9911, "label": "Union Square"}
PHONE_DIGITS = re.compile(r"\d{7,}")


@dataclass
class Job:
    rescue: Rescue
    driver: Driver
    track: str  # paths: /t/<token>, /d/<token>
    job: str


def path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


@pytest.fixture
def make_job(services):
    made: list[Job] = []

    def make(language: str = "en", driver_language: str = "en", name: str = "Ann Marie Lee",
             dropoff: dict | None = None) -> Job:
        driver = dataclasses.replace(Driver.new(new_number(), name, "white Ford Transit"), language=driver_language)
        services.drivers.add(driver)
        services.dispatcher.update_location(driver, Point(40.7420, -73.9890, "pin"))
        rescue = services.lifecycle.create(
            request_key=f"links-{uuid.uuid4().hex}", rider_phone=new_number(), pickup=UNION_SQ, dropoff=dropoff,
            problem="flat_tire", problem_note="", quote_cents=2800, trip_miles=1.0, surge=1.0, channel="sms",
            language=language)
        rescue = services.dispatcher.assign(rescue.id, driver.id)
        job = Job(rescue, services.drivers.get(driver.id), path(services.links.track_url(rescue)),
                  path(services.links.job_url(rescue, driver.id)))
        made.append(job)
        return job

    yield make
    for job in made:
        try:
            services.dispatcher.cancel(job.rescue.id, "test cleanup", by="test")
        except Exception:  # noqa: BLE001 - closed by the test itself
            pass


def from_address(client, address: str):
    """A client whose requests come from `address` (each test's own, for the per-address limit)."""
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture
def visitor(client):
    return from_address(client, f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}")


def test_the_tracking_page_shows_first_name_vehicle_eta_and_no_phone(services, visitor, make_job):
    job = make_job()
    page = visitor.get(job.track)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Ann is coming in a white Ford Transit" in html
    assert "Marie" not in html and "Lee" not in html
    assert job.driver.phone[2:] not in html and job.rescue.rider_phone[2:] not in html
    assert not PHONE_DIGITS.search(re.sub(r"[A-Za-z0-9_-]{22}", "", html)), "no phone number, in any form"
    state = visitor.get(job.track + "/state.json").get_json()
    assert set(state) == {"status", "eta_minutes", "driver"}
    assert state["status"] == "assigned" and state["eta_minutes"] >= 3
    assert state["driver"] == {"name": "Ann", "vehicle": "white Ford Transit", "lat": 40.742, "lng": -73.989}
    assert f"About {state['eta_minutes']} min away" in html


def test_the_pages_are_in_the_riders_and_the_drivers_language(visitor, make_job):
    job = make_job(language="es", driver_language="en")
    assert "Tu conductor va en camino" in visitor.get(job.track).get_data(as_text=True)
    job_page = visitor.get(job.job).get_data(as_text=True)
    assert "Head to the pickup" in job_page and "Share my location" in job_page
    other = make_job(language="en", driver_language="es")
    assert "Your driver is on the way" in visitor.get(other.track).get_data(as_text=True)
    job_page = visitor.get(other.job).get_data(as_text=True)
    assert 'lang="es"' in job_page and "Compartir mi ubicación" in job_page and "Llanta ponchada" in job_page


def test_the_job_page_has_both_places_with_google_and_apple_directions(visitor, make_job):
    job = make_job(dropoff={"lat": 40.7506, "lng": -73.9935, "label": "Penn Station"})
    html = visitor.get(job.job).get_data(as_text=True)
    assert "Union Square" in html and "Penn Station" in html and job.rescue.code in html
    assert "https://www.google.com/maps/dir/?api=1&amp;destination=40.735900,-73.991100" in html
    assert "https://maps.apple.com/?daddr=40.750600,-73.993500" in html
    assert html.count('rel="noopener noreferrer"') == 4
    assert job.rescue.rider_phone[2:] not in html and not PHONE_DIGITS.search(re.sub(r"[A-Za-z0-9_-]{22}", "", html))


def test_secret_urls_are_not_cached_framed_indexed_or_passed_on(services, visitor, make_job):
    job = make_job()
    for url in (job.track, job.track + "/state.json", job.job, job.job + "/state.json", "/t/" + "A" * 22):
        headers = visitor.get(url).headers
        assert headers["Cache-Control"] == "no-store", url
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert headers["X-Frame-Options"] == "DENY" and "noindex" in headers["X-Robots-Tag"]
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        assert tile_source(services.settings.map_tiles_url) in csp


def test_the_tile_server_of_any_template_is_allowed_and_nothing_wider():
    assert tile_source("https://tile.openstreetmap.org/{z}/{x}/{y}.png") == "https://tile.openstreetmap.org"
    assert tile_source("https://{s}.tile.example.com/{z}/{x}/{y}.png") == "https://*.tile.example.com"
    assert tile_source("https://tiles-{region}.example.com/{z}/{x}/{y}.png") == "https:"
    assert tile_source("javascript:alert(1)") == ""


@pytest.mark.parametrize("route", ["/t/{t}", "/t/{t}/state.json", "/t/{t}/events", "/d/{t}", "/d/{t}/state.json"])
def test_unknown_and_malformed_tokens_are_404(visitor, route, make_job):
    job = make_job()
    for token in ("A" * 22, "short", "x" * 200, "%00" * 8, job.job.rsplit("/", 1)[1] if route.startswith("/t")
                  else job.track.rsplit("/", 1)[1]):
        assert visitor.get(route.format(t=token)).status_code == 404, (route, token)


def test_posts_with_an_unknown_token_are_404_and_change_nothing(services, visitor, make_job):
    job = make_job()
    before = services.drivers.get(job.driver.id).location
    for url in ("/d/" + "B" * 22 + "/location", job.track + "/location", "/d/" + "B" * 22 + "/done"):
        assert visitor.post(url, json={"lat": 40.7, "lng": -73.9}).status_code in (404, 405)
    assert services.drivers.get(job.driver.id).location == before


def test_guessing_tokens_from_one_address_is_stopped(services, client, make_job):
    job = make_job()
    guesser = from_address(client, "10.250.250.1")
    limit = services.settings.link_misses_per_minute
    statuses: list[int] = []
    while len(statuses) < 2 * limit + 2 and 429 not in statuses:  # a window may turn over once
        statuses.append(guesser.get(f"/t/{uuid.uuid4().hex[:22]}/state.json").status_code)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {404} and limit <= len(statuses) - 1 <= 2 * limit
    assert guesser.get(job.track + "/state.json").status_code == 429, "even a right one, until the minute is over"
    assert from_address(client, "10.250.250.2").get(job.track + "/state.json").status_code == 200


BAD_BODIES = [
    ("text/plain", '{"lat": 40.74, "lng": -73.99}'),
    ("application/json", "not json"),
    ("application/json", ""),
    ("application/json", "[40.74, -73.99]"),
    ("application/json", '"40.74,-73.99"'),
    ("application/json", "{}"),
    ("application/json", '{"lat": 40.74}'),
    ("application/json", '{"lat": "40.74", "lng": "-73.99"}'),
    ("application/json", '{"lat": true, "lng": false}'),
    ("application/json", '{"lat": NaN, "lng": -73.99}'),
    ("application/json", '{"lat": Infinity, "lng": -73.99}'),
    ("application/json", '{"lat": 1e400, "lng": -73.99}'),
    ("application/json", '{"lat": 91, "lng": -73.99}'),
    ("application/json", '{"lat": 40.74, "lng": -181}'),
    ("application/json", '{"lat": 0, "lng": 0}'),
    ("application/json", '{"lat": null, "lng": null}'),
    ("application/json", '{"lat": 40.74, "lng": -73.99, "accuracy": -1}'),
    ("application/json", '{"lat": 40.74, "lng": -73.99, "accuracy": "5"}'),
    ("application/json", '{"lat": 40.74, "lng": -73.99, "accuracy": 1e12}'),
    ("application/json", '{"lat": [40.74], "lng": {"x": 1}}'),
    ("application/json", "[" * 20_000 + "]" * 20_000),
    ("application/json", '{"lat": 40.74, "lng": -73.99' + "\x00"),
]


def test_bad_position_bodies_are_400_and_change_nothing(services, visitor, make_job):
    job = make_job()
    before = services.drivers.get(job.driver.id)
    timeline = len(services.events.timeline(job.rescue.id))
    for content_type, body in BAD_BODIES:
        r = visitor.post(job.job + "/location", data=body.encode(), content_type=content_type)
        assert r.status_code == 400, (body[:60], r.status_code)
        assert "error" in r.get_json()
    after = services.drivers.get(job.driver.id)
    assert (after.location, after.location_updated_at) == (before.location, before.location_updated_at)
    assert len(services.events.timeline(job.rescue.id)) == timeline


def test_a_position_moves_the_driver_and_is_on_the_timeline(services, visitor, make_job):
    job = make_job()
    r = visitor.post(job.job + "/location", json={"lat": 40.7390, "lng": -73.9902, "accuracy": 12.5})
    assert r.status_code == 200 and r.get_json()["live"] is True and r.get_json()["eta_minutes"] >= 3
    assert services.drivers.get(job.driver.id).location["lat"] == 40.739
    [event] = [e for e in services.events.timeline(job.rescue.id) if e["type"] == "driver_location_updated"]
    assert event["data"] == {"lat": 40.739, "lng": -73.9902, "driver_id": job.driver.id, "accuracy_m": 12.5}
    assert visitor.get(job.track + "/state.json").get_json()["driver"]["lat"] == 40.739


def test_positions_are_rate_limited_per_token(services, visitor, make_job):
    job, other = make_job(), make_job()
    answers: list[int] = []
    while len(answers) < 2 * POSITIONS_PER_MINUTE + 2 and 429 not in answers:  # a window may turn over once
        answers.append(visitor.post(job.job + "/location", json={"lat": 40.74 + len(answers) / 10_000,
                                                                  "lng": -73.99}).status_code)
    assert answers[-1] == 429 and set(answers[:-1]) == {200}
    assert POSITIONS_PER_MINUTE <= answers.count(200) <= 2 * POSITIONS_PER_MINUTE
    kept = services.drivers.get(job.driver.id).location
    assert visitor.post(job.job + "/location", json={"lat": 40.7000, "lng": -73.99}).status_code == 429
    assert services.drivers.get(job.driver.id).location == kept, "a refused position changes nothing"
    assert visitor.post(other.job + "/location", json={"lat": 40.74, "lng": -73.99}).status_code == 200


def test_the_buttons_follow_the_same_rules_as_the_texts(services, visitor, make_job):
    job = make_job()
    refused = visitor.post(job.job + "/done", json={})
    assert refused.status_code == 409 and refused.get_json()["status"] == "assigned", "not arrived yet"
    assert visitor.post(job.job + "/arrived", data="x", content_type="text/plain").status_code == 400
    arrived = visitor.post(job.job + "/arrived", json={})
    assert arrived.status_code == 200 and arrived.get_json() == {"status": "arrived", "repeat": False}
    assert visitor.post(job.job + "/arrived", json={}).get_json() == {"status": "arrived", "repeat": True}
    done = visitor.post(job.job + "/done", json={})
    assert done.status_code == 200 and done.get_json()["status"] == "completed"
    assert services.rescues.get(job.rescue.id).status == "completed"
    types = [e["type"] for e in services.events.timeline(job.rescue.id)]
    # A live worker may already have added the payment link's events after these.
    lifecycle = [t for t in types if t in ("driver_arrived", "rescue_completed")]
    assert lifecycle[-2:] == ["driver_arrived", "rescue_completed"]
    for url, body in ((job.job + "/arrived", {}), (job.job + "/done", {}),
                      (job.job + "/location", {"lat": 40.74, "lng": -73.99})):
        dead = visitor.post(url, json=body)
        assert dead.status_code == 410 and dead.get_json()["live"] is False, url
    assert visitor.get(job.job).status_code == 410
    assert visitor.get(job.track + "/state.json").get_json() == {"status": "completed", "eta_minutes": None,
                                                                 "driver": None}


def test_a_reassigned_drivers_link_is_dead_and_shows_nothing_of_the_job(services, visitor, make_job):
    job = make_job()
    newcomer = Driver.new(new_number(), "Bo Chen", "grey Ram ProMaster")
    services.drivers.add(newcomer)
    services.dispatcher.update_location(newcomer, Point(40.7300, -73.9950, "pin"))
    services.dispatcher.assign(job.rescue.id, newcomer.id)
    page = visitor.get(job.job)
    html = page.get_data(as_text=True)
    assert page.status_code == 410 and "no longer yours" in html and "Union Square" not in html
    assert visitor.get(job.job + "/state.json").get_json() == {"live": False, "status": None, "eta_minutes": None}
    kept = services.drivers.get(job.driver.id).location
    assert visitor.post(job.job + "/location", json={"lat": 40.735, "lng": -73.99}).status_code == 410
    assert visitor.post(job.job + "/arrived", json={}).status_code == 410
    assert services.drivers.get(job.driver.id).location == kept and services.rescues.get(job.rescue.id).status == \
        "assigned"
    state = visitor.get(job.track + "/state.json").get_json()
    assert state["driver"]["name"] == "Bo" and state["driver"]["vehicle"] == "grey Ram ProMaster"


def test_with_no_stream_to_spare_the_tracking_page_is_told_to_poll(app, make_job):
    """One web process over real HTTP (werkzeug's threaded server): its streams are bounded."""
    import threading

    import httpx
    from werkzeug.serving import make_server

    job = make_job()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    held = []
    try:
        with httpx.Client(base_url=base, timeout=5) as http:
            for _ in range(sse.MAX_STREAMS_PER_PROCESS):
                stream = http.stream("GET", job.track + "/events")
                response = stream.__enter__()
                held.append(stream)
                assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
                assert next(response.iter_lines()) == f"retry: {sse.RETRY_MS}"
            busy = http.get(job.track + "/events")
            assert busy.status_code == 503 and int(busy.headers["Retry-After"]) > 0 and "poll" in busy.json()["error"]
            assert http.get(job.track + "/state.json").status_code == 200, "polling still works"
    finally:
        for stream in held:
            stream.__exit__(None, None, None)
        server.shutdown()


def test_the_page_words_are_the_same_keys_in_english_and_spanish():
    from dispatch.texts import TEMPLATE_DIR

    def keys(d, prefix=""):
        return {f"{prefix}{k}" for k in d} | {x for k, v in d.items() if isinstance(v, dict)
                                               for x in keys(v, f"{prefix}{k}.")}

    en, es = (json.loads((TEMPLATE_DIR / "links" / f"{lang}.json").read_text()) for lang in ("en", "es"))
    assert keys(en) == keys(es)
    assert en["track"]["status"].keys() == es["track"]["status"].keys() == set(
        __import__("dispatch.model.rescue", fromlist=["STATUSES"]).STATUSES)
