"""Live links end to end (PRODUCT.md §9): riders and drivers texting `python app.py`, and the
links in their texts used as their phones' browsers would."""
from __future__ import annotations

import json
import re
import threading
import time
import uuid

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.model.driver import Driver
from dispatch.model.geo import eta_for_drive
from tests.conftest import new_number
from tests.e2e.test_dispatch import AUTH, COLUMBUS_CIRCLE, NEAR_UNION_SQ, PHONE_RE, book, online_driver, rescue

LINK = re.compile(r"(https?://\S+/([td])/([A-Za-z0-9_-]{22}))")
MINUTES = re.compile(r"about (\d+) min")


def link_in(text: str, kind: str) -> str:
    found = [m.group(1) for m in LINK.finditer(text) if m.group(2) == kind]
    assert len(found) == 1, text
    return found[0]


def wait_until(check, what: str, timeout: float = 10.0, every: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"never: {what}")


def accepted_job(live_service, phone, name: str = "Ann Lee"):
    """A driver near Union Square takes a rider's rescue by SMS: (rider, driver phone, code, job url)."""
    driver, rider = phone(), phone()
    online_driver(live_service, driver, name, NEAR_UNION_SQ)
    code = book(rider)
    driver.wait_for(f"offer {code}")
    details = driver.ask("Y")
    return rider, driver, code, link_in(details, "d")


def test_the_assigned_text_the_status_reply_the_page_and_the_board_show_one_eta_and_the_link(
        slate, phone, live_service, fake_osrm):
    rider, driver, code, job_url = accepted_job(live_service, phone)
    assigned = rider.wait_for("on the way")
    track_url = link_in(assigned, "t")
    assert track_url.startswith(live_service.url + "/t/")
    minutes = int(MINUTES.search(assigned).group(1))
    r = rescue(live_service, code)
    pickup, at = r["pickup"], [float(x) for x in NEAR_UNION_SQ.split(",")]
    assert minutes == eta_for_drive(fake_osrm.seconds(at[0], at[1], pickup["lat"], pickup["lng"])), "by road"
    state = httpx.get(track_url + "/state.json", timeout=5).json()
    assert state == {"status": "assigned", "eta_minutes": minutes,
                     "driver": {"name": "Ann", "vehicle": "Ford Transit", "lat": at[0], "lng": at[1]}}
    board = httpx.get(f"{live_service.url}/api/board", headers=AUTH, timeout=5).json()
    assert next(x for x in board["rescues"] if x["code"] == code)["eta_min"] == minutes
    status = rider.ask("STATUS")
    assert f"Ann is on the way in a Ford Transit, about {minutes} min" in status and track_url in status
    assert "Lee" not in status and not PHONE_RE.search(status.replace(track_url, ""))
    page = httpx.get(track_url, timeout=5)
    assert page.status_code == 200 and "Ann is coming in a Ford Transit" in page.text
    assert driver.number[2:] not in page.text and rider.number[2:] not in page.text


def test_state_json_follows_the_job_pages_positions_and_the_arriving_text_comes_once(slate, phone, live_service):
    rider, driver, code, job_url = accepted_job(live_service, phone)
    track_url = link_in(rider.wait_for("on the way"), "t")
    pickup = rescue(live_service, code)["pickup"]
    path = [(pickup["lat"] + 0.0060, pickup["lng"]), (pickup["lat"] + 0.0030, pickup["lng"]),
            (pickup["lat"] + 0.0011, pickup["lng"])]  # about 670 m, 330 m, 120 m north
    etas = []
    for lat, lng in path:
        posted = httpx.post(job_url + "/location", json={"lat": lat, "lng": lng, "accuracy": 8}, timeout=5)
        assert posted.status_code == 200 and posted.json()["live"] is True
        state = httpx.get(track_url + "/state.json", timeout=5).json()
        assert (state["driver"]["lat"], state["driver"]["lng"]) == (round(lat, 6), round(lng, 6))
        assert posted.json()["eta_minutes"] == state["eta_minutes"]
        etas.append(state["eta_minutes"])
    assert etas == sorted(etas, reverse=True) and etas[0] > etas[-1]
    arriving = rider.wait_for("almost there")
    assert arriving.startswith("Ann is almost there for rescue " + code)
    for i in range(4):
        near = {"lat": pickup["lat"] + 0.0002 * (i % 2), "lng": pickup["lng"], "accuracy": 5}
        assert httpx.post(job_url + "/location", json=near, timeout=5).status_code == 200
    rider.assert_no_reply(2.0)
    assert sum("almost there" in t for t in rider.replies()) == 1
    timeline = [e["type"] for e in rescue(live_service, code)["timeline"]]
    assert timeline.count("driver_arriving") == 1 and timeline.count("driver_location_updated") >= len(path) + 4


def test_the_tracking_stream_pushes_each_position(slate, phone, live_service):
    rider, driver, code, job_url = accepted_job(live_service, phone)
    track_url = link_in(rider.wait_for("on the way"), "t")
    seen: list[dict] = []

    def listen():
        with httpx.stream("GET", track_url + "/events", timeout=20) as events:
            assert events.status_code == 200
            for line in events.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    if seen[-1]["driver"] and seen[-1]["driver"]["lat"] == 40.7412:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(1.0)  # subscribed
    assert httpx.post(job_url + "/location", json={"lat": 40.7412, "lng": -73.9897}, timeout=5).status_code == 200
    listener.join(10)
    assert seen and seen[-1]["driver"] == {"name": "Ann", "vehicle": "Ford Transit", "lat": 40.7412, "lng": -73.9897}
    assert set(seen[-1]) == {"status", "eta_minutes", "driver"}


def test_links_are_dead_after_completion(slate, phone, live_service):
    rider, driver, code, job_url = accepted_job(live_service, phone)
    track_url = link_in(rider.wait_for("on the way"), "t")
    assert httpx.post(job_url + "/arrived", json={}, timeout=5).json()["status"] == "arrived"
    rider.wait_for("has arrived")
    assert httpx.post(job_url + "/done", json={}, timeout=5).json()["status"] == "completed"
    rider.wait_for("is complete")
    for action, body in (("location", {"lat": 40.74, "lng": -73.99}), ("arrived", {}), ("done", {})):
        assert httpx.post(f"{job_url}/{action}", json=body, timeout=5).status_code == 410, action
    assert httpx.get(job_url, timeout=5).status_code == 410
    assert httpx.get(track_url + "/state.json", timeout=5).json() == {"status": "completed", "eta_minutes": None,
                                                                       "driver": None}
    page = httpx.get(track_url, timeout=5)
    assert page.status_code == 200 and "no longer shown" in page.text


def test_a_drivers_link_dies_when_a_dispatcher_gives_the_job_to_another(slate, phone, live_service):
    rider, first, code, first_url = accepted_job(live_service, phone)
    track_url = link_in(rider.wait_for("on the way"), "t")
    second = phone()
    bo = online_driver(live_service, second, "Bo Chen", COLUMBUS_CIRCLE)
    r = rescue(live_service, code)
    moved = httpx.post(f"{live_service.url}/api/rescues/{r['id']}/assign", headers=AUTH,
                       json={"driver_id": bo["id"]}, timeout=5)
    assert moved.status_code == 200
    second_url = link_in(second.wait_for(f"You've got {code}"), "d")
    assert second_url != first_url
    assert link_in(rider.wait_for("Bo is on the way"), "t") == track_url, "the rider's link stays the same"
    dead = httpx.post(first_url + "/location", json={"lat": 40.7360, "lng": -73.9911}, timeout=5)
    assert dead.status_code == 410 and dead.json() == {"error": dead.json()["error"], "live": False, "status": None,
                                                        "eta_minutes": None}
    assert httpx.post(first_url + "/arrived", json={}, timeout=5).status_code == 410
    assert "Union Square" not in httpx.get(first_url, timeout=5).text
    assert httpx.post(second_url + "/location", json={"lat": 40.7600, "lng": -73.9850}, timeout=5).status_code == 200
    state = httpx.get(track_url + "/state.json", timeout=5).json()
    assert state["driver"] == {"name": "Bo", "vehicle": "Ford Transit", "lat": 40.76, "lng": -73.985}
    assert rescue(live_service, code)["status"] == "assigned", "the dead link changed nothing"


# -- fuzzing --------------------------------------------------------------------------------------
class Jobs:
    """Fresh job links for the fuzzer (made in process over the same stores, as a dispatcher's
    assignment would): each one takes fewer posts than its per-minute limit."""
    POSTS_EACH = 25

    def __init__(self, services, base_url: str) -> None:
        self.services, self.base_url, self.posts, self.url, self.made = services, base_url, 0, "", []

    def current(self) -> str:
        if not self.url or self.posts >= self.POSTS_EACH:
            svc = self.services
            driver = Driver.new(new_number(), "Fuzz Driver", "van")
            svc.drivers.add(driver)
            r = svc.lifecycle.create(request_key=f"fuzz-{uuid.uuid4().hex}", rider_phone=new_number(),
                                     pickup={"lat": 40.7359, "lng": -73.9911, "label": "Union Square"}, dropoff=None,
                                     problem="flat_tire", problem_note="", quote_cents=2800, trip_miles=1.0,
                                     surge=1.0, channel="sms")
            svc.dispatcher.assign(r.id, driver.id)
            self.url, self.posts = svc.links.job_url(svc.rescues.get(r.id), driver.id), 0
            self.made.append(driver.id)
        self.posts += 1
        return self.url


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)
BODIES = st.one_of(
    st.fixed_dictionaries({"lat": JSON_VALUES, "lng": JSON_VALUES},
                          optional={"accuracy": JSON_VALUES, "extra": JSON_VALUES}).map(
        lambda d: json.dumps(d, allow_nan=True).encode()),
    st.fixed_dictionaries({"lat": st.floats(-100, 100), "lng": st.floats(-200, 200),
                           "accuracy": st.floats(-10, 1e6)}).map(lambda d: json.dumps(d, allow_nan=True).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
)
CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", ""])


def test_fuzzed_location_bodies_never_get_a_5xx(slate, services, live_service):
    jobs = Jobs(services, live_service.url)
    answers: dict[int, int] = {}
    accepted: list[tuple[float, float]] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=BODIES, content_type=CONTENT_TYPES)
    def post(body: bytes, content_type: str):
        url = jobs.current() + "/location"
        r = httpx.post(url, content=body, headers={"Content-Type": content_type} if content_type else {}, timeout=10)
        assert r.status_code < 500, (body[:200], content_type, r.status_code, r.text[:200])
        assert r.status_code in (200, 400), (body[:200], r.status_code)
        answers[r.status_code] = answers.get(r.status_code, 0) + 1
        if r.status_code == 200:
            sent = json.loads(body)
            accepted.append((float(sent["lat"]), float(sent["lng"])))

    post()
    assert answers.get(400, 0) > 50, answers
    for driver_id in jobs.made:  # a driver only ever moved to a position that was accepted
        location = services.drivers.get(driver_id).location
        assert location is None or (location["lat"], location["lng"]) in {(round(a, 6), round(b, 6))
                                                                           for a, b in accepted}
