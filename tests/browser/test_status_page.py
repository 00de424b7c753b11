"""The dispatcher's status page in a real browser: login, live updates, actions."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import shoot
from tests.conftest import ADMIN_TOKEN
from tests.e2e.test_dispatch import COLUMBUS_CIRCLE, NEAR_UNION_SQ, online_driver


def test_wrong_token_is_refused_and_pages_need_login(page):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("Password").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not right")


def test_login_post_needs_the_csrf_token(page, live_service):
    import httpx

    r = httpx.post(f"{live_service.url}/login", data={"password": ADMIN_TOKEN})
    assert r.status_code == 400


def test_rescue_appears_without_reload_then_assign_and_cancel(slate, logged_in, phone, live_service):
    page = logged_in
    ann_phone, bo_phone = phone(), phone()
    online_driver(live_service, ann_phone, "Ann Lee", NEAR_UNION_SQ)
    online_driver(live_service, bo_phone, "Bo Chen", COLUMBUS_CIRCLE)
    page.evaluate("window.__marker = 'same page'")
    rider = phone()
    rider.ask("flat tire at Union Square")
    rider.ask("skip")
    code = re.search(r"R\d+", rider.ask("y")).group(0)
    row = page.locator("#rescues tr", has_text=code)
    expect(row).to_be_visible(timeout=10000)
    assert page.evaluate("window.__marker") == "same page"  # no reload
    expect(row).to_contain_text("Union Square")
    expect(row).not_to_contain_text(rider.number)  # masked
    row.click()
    expect(page.locator("#detail h2")).to_contain_text(code)
    bo_value = page.locator("#assign-driver option", has_text="Bo Chen").get_attribute("value")
    page.select_option("#assign-driver", value=bo_value)
    page.get_by_role("button", name="Assign").click()
    expect(page.locator("#notices")).to_contain_text(f"Assign {code}: done.")
    expect(row).to_contain_text("Bo Chen", timeout=10000)
    bo_phone.wait_for(f"You've got {code}")
    rider.wait_for("Bo is on the way")
    expect(page.locator("#messages")).to_contain_text("service → Bo Chen", timeout=10000)
    expect(page.locator("#messages")).to_contain_text("service → rider")
    shoot(page, "status-page.png")
    page.select_option("#cancel-reason", value="")
    page.get_by_label("Other reason").fill("rider found a friend with a van")
    page.get_by_role("button", name="Cancel rescue").click()
    expect(page.locator("#notices")).to_contain_text(f"Cancel {code}: done.")
    rider.wait_for("cancelled by our dispatch team (rider found a friend with a van)")
    expect(page.locator("#rescues tr", has_text=code)).to_have_count(0, timeout=10000)
    page.wait_for_timeout(4000)
    expect(page.locator("#notices")).to_contain_text(f"Cancel {code}: done.")  # stays until dismissed
    page.locator("#notices .notice", has_text=f"Cancel {code}").get_by_role("button", name="Dismiss").click()
    expect(page.locator("#notices")).not_to_contain_text(f"Cancel {code}: done.")


def test_refund_from_the_page_in_dollars(slate, logged_in, services, live_service):
    from tests.conftest import new_number

    page = logged_in
    rider = new_number()
    r = services.lifecycle.create(request_key=f"page-refund-{rider}", rider_phone=rider,
                                pickup={"lat": 40.7359, "lng": -73.9911, "label": "Union Square"}, dropoff=None,
                                problem="flat_tire", problem_note="", quote_cents=2800, trip_miles=0, surge=1.0,
                                channel="sms")
    services.db.ledger.insert_one({"_id": "cs_page_" + r.id, "kind": "session", "key": "k-" + r.id,
                                   "rescue_id": r.id, "amount_cents": 2800, "status": "paid",
                                   "payment_intent": "pi_page", "created_at": 0})
    services.db.rescues.update_one({"_id": r.id}, {"$set": {"paid_cents": 2800, "payment_status": "paid"}})
    page.locator("#rescues tr", has_text=r.code).click()
    page.get_by_label("Refund ($, blank = all)").fill("8.00")
    page.get_by_role("button", name="Refund").click()
    expect(page.locator("#notices")).to_contain_text(f"Refund {r.code}: done.")
    assert services.rescues.get(r.id).extra["refunded_cents"] == 800
    page.get_by_label("Refund ($, blank = all)").fill("50")
    page.get_by_role("button", name="Refund").click()
    expect(page.locator("#notices")).to_contain_text(f"Refund {r.code} refused")


def test_status_page_fits_a_phone(logged_in):
    page = logged_in
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.get_by_role("heading", name="Open rescues")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400
    shoot(page, "status-phone.png")


def test_a_spanish_speaking_dispatcher_gets_the_page_in_spanish_and_can_switch(slate, browser, live_service,
                                                                               services):
    import uuid

    import httpx

    from dispatch.texts import STATUS, page_words
    from tests.browser.test_dispatcher_shift import make_rescue

    es = page_words("es", STATUS)
    username, password = f"lucia-{uuid.uuid4().hex[:6]}", "una frase bastante larga"
    made = httpx.post(f"{live_service.url}/api/dispatchers", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                      json={"username": username, "name": "Lucía Pérez", "password": password,
                            "role": "dispatcher", "language": "es"}, timeout=10)
    assert made.status_code == 201, made.text
    context = browser.new_context(base_url=live_service.url, locale="es-MX", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        page.goto("/login")  # nobody signed in yet: the browser's Spanish decides
        expect(page.locator("html")).to_have_attribute("lang", "es")
        page.get_by_label("Usuario").fill(username)
        page.get_by_label("Contraseña").fill(password)
        page.get_by_role("button", name="Entrar").click()
        page.wait_for_url("**/")
        for heading in ("Rescates abiertos", "Buscar un rescate", "Conductores", "Mapa"):
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        expect(page.locator("#me")).to_contain_text(f"{username} (despachador)")
        expect(page.locator("#updated")).to_contain_text("actualizado")
        expect(page.locator("#charts figcaption").first).to_have_text("Rescates por hora")
        expect(page.locator(".sc-legend")).to_contain_text("Conductor al rescate")

        rescue = make_rescue(services, "Washington Square")
        row = page.locator("#rescues tr", has_text=rescue.code)
        expect(row).to_be_visible(timeout=10000)
        status = row.locator("td[data-status]")
        code = status.get_attribute("data-status")
        expect(status).to_have_text(es["status"][code])
        expect(row.locator("td[data-problem]")).to_have_text("llanta ponchada")
        expect(row.locator("td[data-payment]")).to_have_text("sin cobrar")
        row.click()
        expect(page.locator("#detail h2")).to_contain_text(f"{rescue.code} · {es['status'][code]}")
        expect(page.locator("#detail-summary")).to_contain_text("llanta ponchada en Washington Square")
        expect(page.locator("#timeline")).to_contain_text("rescate pedido por el cliente")

        page.get_by_label("Motivo de cancelación").select_option(label="otro (escríbelo)")
        page.get_by_role("button", name="Cancelar rescate").click()
        expect(page.locator("#notices")).to_contain_text("Escribe el motivo de la cancelación.")
        page.get_by_label("Motivo de cancelación").select_option(label="pedido duplicado")
        page.get_by_role("button", name="Cancelar rescate").click()
        expect(page.locator("#notices")).to_contain_text(f"Cancelar {rescue.code}: listo.")
        assert services.rescues.get(rescue.id).cancel_reason == "duplicate request"  # the API's words, not the page's
        expect(page.locator("#timeline")).to_contain_text(f"rescate cancelado por {username}", timeout=10000)
        done = page.locator("#notices .notice", has_text=f"Cancelar {rescue.code}")
        done.get_by_role("button", name="Cerrar").click()
        expect(done).to_have_count(0)

        page.set_viewport_size({"width": 390, "height": 844})  # the longer Spanish words still fit a phone
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        page.set_viewport_size({"width": 1280, "height": 900})
        page.get_by_role("button", name="English").click()  # the dispatcher's own choice, kept on the account
        expect(page.get_by_role("heading", name="Open rescues")).to_be_visible()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("#me")).to_contain_text(f"{username} (dispatcher)")
        expect(page.get_by_role("button", name="Español")).to_be_visible()
        assert services.accounts.by_username(username).language == "en"
    finally:
        context.close()
