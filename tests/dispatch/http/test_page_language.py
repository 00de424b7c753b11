"""A dispatcher's language (templates/status/<lang>.json): kept on the account, set through the
API, switched from the page by anyone signed in, and the login page's taken from the browser."""
from __future__ import annotations

import re

import pytest

from tests.dispatch.http.test_accounts import PASSWORD, account, signed_in


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_an_account_is_english_unless_made_or_changed_to_spanish(client, admin_headers, services):
    plain = account(client, admin_headers, "viewer")
    assert plain["language"] == "en"
    spanish = account(client, admin_headers, "dispatcher", language="es")
    assert spanish["language"] == "es"
    assert services.db.dispatchers.find_one({"_id": spanish["id"]})["language"] == "es"
    r = client.patch(f"/api/dispatchers/{plain['id']}", json={"language": "es"}, headers=admin_headers)
    assert r.status_code == 200 and r.get_json()["language"] == "es"
    assert services.accounts.get(plain["id"]).language == "es"


@pytest.mark.parametrize("value", ["fr", "ES", "", None, 1])
def test_a_language_the_page_does_not_speak_is_refused(client, admin_headers, value):
    made = account(client, admin_headers, "viewer")
    r = client.post("/api/dispatchers", json={"username": "lang-x", "name": "X", "password": PASSWORD,
                                              "role": "viewer", "language": value}, headers=admin_headers)
    assert r.status_code == 400 and r.get_json()["field"] == "language"
    r = client.patch(f"/api/dispatchers/{made['id']}", json={"language": value}, headers=admin_headers)
    assert r.status_code == 400 and r.get_json()["field"] == "language"


def test_the_status_page_speaks_the_dispatchers_language(app, client, admin_headers):
    made = account(client, admin_headers, "dispatcher", language="es")
    browser, _ = signed_in(app, made["username"])
    page = browser.get("/").get_data(as_text=True)
    assert '<html lang="es">' in page and "Rescates abiertos" in page and "Open rescues" not in page
    assert '<option value="duplicate request">pedido duplicado</option>' in page  # the API still gets its reason
    words = re.search(r'<script type="application/json" id="sc-words">(.*?)</script>', page, re.S).group(1)
    assert '"lang": "es"' in words and "Asked for a person" not in words


def test_a_viewer_switches_their_own_language_from_the_page_but_may_not_patch_accounts(app, client, admin_headers,
                                                                                      services):
    made = account(client, admin_headers, "viewer")
    viewer, csrf = signed_in(app, made["username"])
    page = viewer.get("/").get_data(as_text=True)
    assert '<html lang="en">' in page and 'name="lang" value="es"' in page
    assert viewer.patch(f"/api/dispatchers/{made['id']}", json={"language": "es"}, headers=csrf).status_code == 403
    assert viewer.post("/language", data={"lang": "es"}).status_code == 400  # no CSRF token
    assert viewer.post("/language", data={"lang": "fr", "csrf": csrf_of(page)}).status_code == 400
    r = viewer.post("/language", data={"lang": "es", "csrf": csrf_of(page)})
    assert r.status_code == 302 and r.headers["Location"].endswith("/")
    assert services.accounts.get(made["id"]).language == "es"
    page = viewer.get("/").get_data(as_text=True)
    assert '<html lang="es">' in page and "Buscar un rescate" in page and 'name="lang" value="en"' in page
    viewer.post("/language", data={"lang": "en", "csrf": csrf_of(page)})
    assert "Find a rescue" in viewer.get("/").get_data(as_text=True)


def test_the_builtin_admin_keeps_a_language_in_the_session(app):
    admin, _ = signed_in(app, "", "test-admin-token")
    admin.post("/language", data={"lang": "es", "csrf": csrf_of(admin.get("/").get_data(as_text=True))})
    assert "Rescates abiertos" in admin.get("/").get_data(as_text=True)


def test_the_charts_are_drawn_in_the_language_of_whoever_asks(app, client, admin_headers):
    made = account(client, admin_headers, "viewer", language="es")
    viewer, _ = signed_in(app, made["username"])
    charts = viewer.get("/api/figures").get_json()["charts"]
    assert "Rescates por hora" in charts["rescues_per_hour"] and "Rescues per hour" not in charts["rescues_per_hour"]
    assert "Median wait" in client.get("/api/figures", headers=admin_headers).get_json()["charts"]["median_wait"]


def test_the_login_page_follows_the_browsers_language(client):
    spanish = {"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}
    page = client.get("/login", headers=spanish).get_data(as_text=True)
    assert '<html lang="es">' in page and "Contraseña" in page and "Entrar" in page
    r = client.post("/login", data={"username": "nobody-here", "password": "wrong password", "csrf": csrf_of(page)},
                    headers=spanish)
    assert r.status_code == 401 and "no son correctos" in r.get_data(as_text=True)
    assert "Password" in client.get("/login", headers={"Accept-Language": "fr-FR,en;q=0.8"}).get_data(as_text=True)
    assert "Password" in client.get("/login").get_data(as_text=True)
