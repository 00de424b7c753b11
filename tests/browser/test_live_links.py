"""The live-link pages in real Chromium (PRODUCT.md §9), against `python app.py`: the driver's page
shares the phone's position with one tap, and the rider's page moves the driver without a reload."""
from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import shoot
from tests.e2e.test_dispatch import NEAR_UNION_SQ, book, online_driver, rescue
from tests.e2e.test_live_links import link_in

PHONE_RE = re.compile(r"\+?1?\d{10}")
# Fifth Avenue walking south to Union Square: about 1.2 km, 600 m, then 100 m from the pickup.
ROUTE = [(40.7467, -73.9890), (40.7413, -73.9898), (40.7368, -73.9905)]


@pytest.fixture
def job(slate, phone, live_service):
    """A rider's rescue taken by a driver by SMS, as in the texts: (rider phone, driver phone, code,
    tracking link, job link)."""
    driver, rider = phone(), phone()
    online_driver(live_service, driver, "Ann Lee", NEAR_UNION_SQ)
    code = book(rider)
    driver.wait_for(f"offer {code}")
    job_url = link_in(driver.ask("Y"), "d")
    track_url = link_in(rider.wait_for("on the way"), "t")
    return rider, driver, code, track_url, job_url


def phone_context(browser, live_service, **extra):
    context = browser.new_context(base_url=live_service.url, viewport={"width": 412, "height": 860},
                                  device_scale_factor=1, is_mobile=True, has_touch=True, **extra)
    return context


def csp_violations(page) -> list[str]:
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if "Content Security Policy" in m.text else None)
    return found


def marker_at(page) -> list[float] | None:
    return page.evaluate("""() => { const m = SCMap.getMarker(SCTrack.map, 'driver', 'driver');
                                    if (!m) return null; const p = m.getLatLng(); return [p.lat, p.lng]; }""")


def wait_marker(page, lat: float, lng: float, timeout_ms: int = 15000) -> None:
    page.wait_for_function(
        """([lat, lng]) => { const m = SCMap.getMarker(SCTrack.map, 'driver', 'driver');
                             if (!m) return false; const p = m.getLatLng();
                             return Math.abs(p.lat - lat) < 1e-6 && Math.abs(p.lng - lng) < 1e-6; }""",
        arg=[lat, lng], timeout=timeout_ms)


def test_the_driver_shares_with_one_tap_and_the_rider_sees_the_van_move(browser, live_service, job):
    rider, driver, code, track_url, job_url = job
    start = ROUTE[0]
    driver_ctx = phone_context(browser, live_service, permissions=["geolocation"],
                               geolocation={"latitude": start[0], "longitude": start[1], "accuracy": 10})
    rider_ctx = phone_context(browser, live_service)
    try:
        rider_page = rider_ctx.new_page()
        rider_page.set_default_timeout(15000)
        rider_csp = csp_violations(rider_page)
        rider_page.goto(track_url)
        expect(rider_page.locator("#status")).to_have_text("Your driver is on the way")
        expect(rider_page.locator("#driver")).to_have_text("Ann is coming in a Ford Transit")
        rider_page.evaluate("window.__same_page = true")

        driver_page = driver_ctx.new_page()
        driver_page.set_default_timeout(15000)
        driver_csp = csp_violations(driver_page)
        driver_page.goto(job_url)
        expect(driver_page.get_by_role("heading", name=f"Job {code}")).to_be_visible()
        expect(driver_page.get_by_role("link", name="Google Maps").first).to_have_attribute(
            "href", re.compile(r"^https://www\.google\.com/maps/dir/\?api=1&destination=40\.7"))
        driver_page.get_by_role("button", name="Share my location").click()
        expect(driver_page.get_by_role("button", name="Stop sharing")).to_be_visible()
        expect(driver_page.locator("#share-status")).to_contain_text("Position sent at")
        wait_marker(rider_page, *start)

        for lat, lng in ROUTE[1:]:
            driver_ctx.set_geolocation({"latitude": lat, "longitude": lng, "accuracy": 8})
            wait_marker(rider_page, lat, lng)  # the job page posts at most every 5 s
            located = rescue(live_service, code)
            assert any(e["type"] == "driver_location_updated" and e["data"]["lat"] == lat
                       for e in located["timeline"])
        assert rider_page.evaluate("window.__same_page") is True, "no reload"
        assert rider_page.evaluate("SCTrack.streaming()") is True, "live by Server-Sent Events"
        expect(rider_page.locator("#eta")).to_have_text(re.compile(r"^About \d+ min away$"))
        rider.wait_for("almost there")
        shoot(rider_page, "tracking-page.png")
        expect(driver_page.locator("#share-status")).to_contain_text("The rider sees: about")
        shoot(driver_page, "job-page.png")

        for text in (rider_page.content(), driver_page.content()):
            visible = re.sub(r"[A-Za-z0-9_-]{22}", "", text)
            assert rider.number[2:] not in visible and driver.number[2:] not in visible
        assert not rider_csp and not driver_csp, rider_csp + driver_csp
    finally:
        driver_ctx.close()
        rider_ctx.close()


def test_the_tracking_page_polls_when_the_browser_has_no_event_source(browser, live_service, job):
    rider, driver, code, track_url, job_url = job
    context = phone_context(browser, live_service)
    context.add_init_script("delete window.EventSource;")
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(track_url)
        page.evaluate("window.__same_page = true")
        assert httpx.post(job_url + "/location", json={"lat": 40.7401, "lng": -73.9902}, timeout=5).status_code == 200
        wait_marker(page, 40.7401, -73.9902, timeout_ms=12000)
        assert page.evaluate("SCTrack.streaming()") is False and page.evaluate("window.__same_page") is True
    finally:
        context.close()


def test_the_buttons_mark_arrived_then_done_after_a_second_tap_and_the_rider_page_closes(browser, live_service, job):
    rider, driver, code, track_url, job_url = job
    driver_ctx, rider_ctx = phone_context(browser, live_service), phone_context(browser, live_service)
    try:
        rider_page = rider_ctx.new_page()
        rider_page.goto(track_url)
        expect(rider_page.locator("#driver")).to_have_text("Ann is coming in a Ford Transit")
        page = driver_ctx.new_page()
        page.set_default_timeout(15000)
        page.goto(job_url)
        done = page.get_by_role("button", name="Done")
        expect(done).to_be_disabled()
        page.get_by_role("button", name="I've arrived").click()
        expect(page.locator("#result")).to_have_text("Marked arrived. The rider has been told.")
        rider.wait_for("has arrived")
        expect(rider_page.locator("#status")).to_have_text("Your driver is there", timeout=10000)
        expect(done).to_be_enabled()
        done.click()
        expect(page.get_by_role("button", name="Tap again: job done")).to_be_visible()
        assert rescue(live_service, code)["status"] == "arrived", "one tap does not end the job"
        page.get_by_role("button", name="Tap again: job done").click()
        expect(page.locator("#result")).to_have_text("Job done. Thanks!")
        expect(page.locator("#status")).to_have_text("Job complete. Thanks!")
        expect(page.get_by_role("button", name="Share my location")).to_be_disabled()
        rider.wait_for("is complete")
        expect(rider_page.locator("#status")).to_have_text("Rescue complete", timeout=10000)
        expect(rider_page.locator("#note")).to_contain_text("no longer shown")
        assert marker_at(rider_page) is None, "the driver's position is gone once the rescue is closed"
    finally:
        driver_ctx.close()
        rider_ctx.close()


def test_a_refused_location_permission_is_explained(browser, live_service, job):
    rider, driver, code, track_url, job_url = job
    context = phone_context(browser, live_service)  # no geolocation permission granted
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(job_url)
        page.get_by_role("button", name="Share my location").click()
        expect(page.locator("#share-status")).to_contain_text("Location access was refused")
        expect(page.get_by_role("button", name="Share my location")).to_be_visible()
    finally:
        context.close()


def test_a_spanish_riders_page_is_in_spanish_down_to_the_map_controls(browser, live_service, services, slate):
    import uuid

    from dispatch.model.driver import Driver
    from dispatch.model.geo import Point
    from tests.conftest import new_number

    driver = Driver.new(new_number(), "Luz Marina Ortiz", "camioneta blanca")
    services.drivers.add(driver)
    services.dispatcher.update_location(driver, Point(40.7410, -73.9897, "pin"))
    r = services.lifecycle.create(request_key=f"es-page-{uuid.uuid4().hex}", rider_phone=new_number(),
                                  pickup={"lat": 40.7359, "lng": -73.9911, "label": "Union Square"}, dropoff=None,
                                  problem="flat_tire", problem_note="", quote_cents=2800, trip_miles=1.0, surge=1.0,
                                  channel="sms", language="es")
    services.dispatcher.assign(r.id, driver.id)
    context = phone_context(browser, live_service)
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(services.links.track_url(services.rescues.get(r.id)))
        expect(page.locator("html")).to_have_attribute("lang", "es")
        expect(page.locator("#status")).to_have_text("Tu conductor va en camino")
        expect(page.locator("#driver")).to_have_text("Luz viene en camioneta blanca")
        expect(page.locator("#eta")).to_have_text(re.compile(r"^Llega en unos \d+ min$"))
        expect(page.get_by_title("Acercar")).to_be_visible()
        expect(page.get_by_title("Alejar")).to_be_visible()
        wait_marker(page, 40.7410, -73.9897)
    finally:
        context.close()
