"""The OpenAPI description matches the routes Flask serves, and real answers match it."""
from __future__ import annotations

import re

from tests.conftest import new_number


def flask_api_routes(app) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", "{id}", rule.rule)
            routes.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    return routes


def test_every_route_is_documented_and_every_documented_route_exists(client, app):
    spec = client.get("/api/openapi.json", headers={"Authorization": "Bearer test-admin-token"}).get_json()
    documented = {re.sub(r"{[^}]+}", "{id}", path): {m for m in ops if m in ("get", "post", "patch", "put", "delete")}
                  for path, ops in spec["paths"].items()}
    assert documented == flask_api_routes(app)


def test_documented_required_fields_are_in_real_answers(client, admin_headers, services):
    spec = client.get("/api/openapi.json", headers=admin_headers).get_json()
    schemas = spec["components"]["schemas"]
    driver = client.post("/api/drivers", json={"phone": new_number(), "name": "Spec", "vehicle": "Van"},
                         headers=admin_headers).get_json()
    assert set(schemas["Driver"]["required"]) <= driver.keys()
    assert set(schemas["Driver"]["properties"]) <= driver.keys()
    rescue = services.lifecycle.create(request_key=f"spec-{new_number()}", rider_phone=new_number(),
                                     pickup={"lat": 40.75, "lng": -73.98, "label": "x"}, dropoff=None,
                                     problem="other", problem_note="", quote_cents=2800, trip_miles=0, surge=1.0,
                                     channel="sms")
    shown = client.get(f"/api/rescues/{rescue.id}", headers=admin_headers).get_json()
    assert set(schemas["Rescue"]["properties"]) <= shown.keys()
    error = client.get("/api/rescues?status=nope", headers=admin_headers).get_json()
    assert set(schemas["Error"]["required"]) <= error.keys()
    services.dispatcher.cancel(rescue.id, "test", by="test")
