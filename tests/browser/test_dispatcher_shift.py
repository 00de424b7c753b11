"""A dispatcher's shift in a real browser (issue 14): search, live updates that keep the scroll,
the map from the service itself, and roles with names on the timeline."""
from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import shoot
from tests.conftest import ADMIN_TOKEN, new_number

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PASSWORD = "a long enough password"


def account(live_service, role: str) -> str:
    username = f"{role}-{uuid.uuid4().hex[:6]}"
    r = httpx.post(f"{live_service.url}/api/dispatchers", headers=AUTH, timeout=10,
                   json={"username": username, "name": role.title(), "password": PASSWORD, "role": role})
    assert r.status_code == 201, r.text
    return username


def sign_in(page, username: str, password: str = PASSWORD):
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
    page.get_by_role("heading", name="Open rescues").wait_for()
    return page


def make_rescue(services, label: str = "Union Square"):
    rider = new_number()
    rescue = services.lifecycle.create(request_key=f"shift-{rider}", rider_phone=rider,
                                       pickup={"lat": 40.7359, "lng": -73.9911, "label": label}, dropoff=None,
                                       problem="flat_tire", problem_note="", quote_cents=2800, trip_miles=0,
                                       surge=1.0, channel="sms")
    return rescue


def test_search_finds_a_closed_rescue_and_opens_its_page(slate, logged_in, services):
    page = logged_in
    rescue = make_rescue(services, "Bryant Park")
    services.dispatcher.cancel(rescue.id, "closed before the search", by="dispatcher:someone")
    expect(page.locator("#rescues tr", has_text=rescue.code)).to_have_count(0)
    page.get_by_label("Code or phone digits").fill(rescue.rider_phone[-4:])
    page.get_by_label("Status").select_option("cancelled")
    page.get_by_role("button", name="Search").click()
    found = page.locator("#results tr", has_text=rescue.code)
    expect(found).to_be_visible()
    expect(found).to_contain_text("cancelled")
    found.click()
    expect(page.locator("#detail h2")).to_contain_text(f"{rescue.code} · cancelled")
    expect(page.locator("#timeline")).to_contain_text("by someone")
    export = f"/api/rescues.csv?q={rescue.rider_phone[-4:]}&status=cancelled"
    expect(page.locator("#export")).to_have_attribute("href", export)


def test_scroll_and_typing_survive_a_live_update(slate, logged_in, services):
    page = logged_in
    rescue = make_rescue(services)
    for n in range(30):
        services.outbox.queue_text(rescue.rider_phone, f"note {n} " + "word " * 12, key=f"scroll:{rescue.id}:{n}",
                                   rescue_id=rescue.id, kind="dispatcher")
    page.locator("#rescues tr", has_text=rescue.code).click()
    expect(page.locator("#messages li")).to_have_count(30)
    page.evaluate("document.getElementById('messages').scrollTop = 300")
    page.evaluate("window.scrollTo(0, 200)")
    page.get_by_label("Message").fill("half-typed")
    before = page.evaluate("[document.getElementById('messages').scrollTop, window.scrollY]")
    assert before[0] == 300
    services.outbox.queue_text(rescue.rider_phone, "one more", key=f"scroll:{rescue.id}:new", rescue_id=rescue.id,
                               kind="dispatcher")
    expect(page.locator("#messages li")).to_have_count(31, timeout=5000)  # the stream told the page
    after = page.evaluate("[document.getElementById('messages').scrollTop, window.scrollY]")
    assert after == before
    expect(page.get_by_label("Message")).to_have_value("half-typed")
    assert page.evaluate("window.SCStatus.isLive()") is True
    services.dispatcher.cancel(rescue.id, "test", by="test")


def test_the_map_is_leaflet_served_by_the_service(slate, logged_in, live_service, services):
    page = logged_in
    rescue = make_rescue(services)
    expect(page.locator("#map.leaflet-container")).to_be_visible()
    scripts = page.evaluate("Array.from(document.scripts).map(s => s.src).filter(Boolean)")
    leaflet = [s for s in scripts if "leaflet" in s]
    assert leaflet and all(s.startswith(live_service.url + "/static/vendor/leaflet/") for s in leaflet)
    assert page.evaluate("typeof window.L.map") == "function"
    expect(page.locator("#map .leaflet-control-scale")).to_be_visible()
    expect(page.locator("#map .leaflet-interactive").first).to_be_attached(timeout=10000)
    # Recently unfulfilled rescues of earlier tests have markers too: wait for this one's.
    page.wait_for_function(f"!!window.SCMap.getMarker(window.SCStatus.map, 'rescues', '{rescue.id}')",
                           timeout=10000)
    shoot(page, "status-map.png")
    services.dispatcher.cancel(rescue.id, "test", by="test")


def test_a_viewer_cannot_cancel(slate, page, live_service, services):
    sign_in(page, account(live_service, "viewer"))
    rescue = make_rescue(services)
    page.locator("#rescues tr", has_text=rescue.code).click()
    expect(page.locator("#detail h2")).to_contain_text(rescue.code)
    expect(page.get_by_role("button", name="Cancel rescue")).to_be_hidden()
    status = page.evaluate(f"""fetch('/api/rescues/{rescue.id}/cancel', {{method: 'POST', credentials: 'same-origin',
        headers: {{'Content-Type': 'application/json',
                   'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content}},
        body: JSON.stringify({{reason: 'viewer tries'}})}}).then(r => r.status)""")
    assert status == 403
    assert services.rescues.get(rescue.id).status == "searching"
    services.dispatcher.cancel(rescue.id, "test", by="test")


def test_a_dispatcher_cancels_and_the_timeline_names_them(slate, page, live_service, services):
    username = account(live_service, "dispatcher")
    sign_in(page, username)
    expect(page.locator("#me")).to_contain_text(f"{username} (dispatcher)")
    rescue = make_rescue(services)
    page.locator("#rescues tr", has_text=rescue.code).click()
    page.get_by_label("Cancel reason").select_option("duplicate request")
    page.get_by_role("button", name="Cancel rescue").click()
    expect(page.locator("#notices")).to_contain_text(f"Cancel {rescue.code}: done.")
    expect(page.locator("#timeline")).to_contain_text(f"rescue cancelled by {username}", timeout=10000)
    assert services.rescues.get(rescue.id).cancelled_by == f"dispatcher:{username}"
    expect(page.get_by_role("button", name="Refund")).to_be_hidden()  # refunds are for admins
