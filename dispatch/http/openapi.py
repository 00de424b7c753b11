"""The admin API's OpenAPI description, served at /api/openapi.json.

Every request is checked against it before its view runs (dispatch.http.validation), so
what it says a request may be is what the API accepts. tests/dispatch/http/test_openapi.py
checks it against the routes Flask serves; tests/dispatch/http/test_api_schema.py holds the
API to it with schemathesis."""
from __future__ import annotations

from typing import Any

from dispatch.model import account
from dispatch.model.driver import NAME_MAX, VEHICLE_MAX
from dispatch.model.help_request import NOTE_MAX
from dispatch.model.help_request import STATUSES as HELP_STATUSES
from dispatch.model.rescue import STATUSES
from dispatch.texts import LANGUAGES


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _body(required: bool, schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON request body. Unknown fields are refused (a typo is a 400, not silently ignored),
    which is also how an integer too big for any store is refused wherever it is sent."""
    return {"required": required, **_json({"additionalProperties": False, **schema})}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, **(_json(schema) if schema else {})}


ERROR = {"$ref": "#/components/schemas/Error"}
RESCUE = {"$ref": "#/components/schemas/Rescue"}
HELP = {"$ref": "#/components/schemas/HelpRequest"}
DRIVER = {"$ref": "#/components/schemas/Driver"}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
MAX_OFFSET = 100_000
PAGE = [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}}]
FAIL = {"400": _ok("invalid input, naming the field", ERROR), "401": _ok("missing or wrong token", ERROR),
        "403": _ok("the signed-in role may not do this, or a session change without its CSRF token", ERROR),
        "429": _ok("too many wrong tokens or passwords from this address; wait a minute", ERROR)}
SEARCH = [{"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 40},
           "description": "a code (R1004 or 1004) or the last 4+ digits of the rider's phone"},
          {"name": "since", "in": "query", "schema": {"type": "string", "format": "iso-time"},
           "description": "ISO date or date-time"},
          {"name": "until", "in": "query", "schema": {"type": "string", "format": "iso-time"},
           "description": "ISO date (inclusive) or date-time (exclusive)"}]
ACCOUNT = {"$ref": "#/components/schemas/Dispatcher"}
MISSING = {"404": _ok("not found", ERROR)}
CONFLICT = {"409": _ok("not possible in the rescue's current state", ERROR)}


# A character str.strip() keeps: regex engines differ on what \s is, Python's str.isspace is the rule.
NOT_SPACE = r"[^\s\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def text(max_len: int) -> dict[str, Any]:
    """Text with at least one character that is not a space (it is stored trimmed)."""
    return {"type": "string", "minLength": 1, "maxLength": max_len, "pattern": NOT_SPACE}


PHONE = {"type": "string", "format": "phone", "description": "a valid number, E.164 or national"}
LANGUAGE = {"type": "string", "enum": list(LANGUAGES)}
ACCOUNT_FIELDS = {"name": text(account.NAME_MAX),
                  "password": {"type": "string", "minLength": account.PASSWORD_MIN,
                               "maxLength": account.PASSWORD_MAX},
                  "role": {"type": "string", "enum": list(account.ROLES)},
                  "phone": PHONE, "active": {"type": "boolean"},
                  "language": {**LANGUAGE, "description": "the status page's language for this person (default en)"}}
USERNAME = {"type": "string", "format": "username", "minLength": 1, "maxLength": account.USERNAME_MAX,
            "description": "letters (a-z, A-Z), digits, . _ -; not 'admin'"}
POINT = {"type": "object", "properties": {"lat": {"type": "number"}, "lng": {"type": "number"},
                                          "label": {"type": "string"}}}
PLACE = {"type": "object", "required": ["lat", "lng"], "additionalProperties": False,
         "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                        "lng": {"type": "number", "minimum": -180, "maximum": 180},
                        "label": {"type": "string", "maxLength": 120}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "SupportCarr dispatch admin API", "version": "1.0.0",
             "description": "Bearer ADMIN_TOKEN, or the status page's session with X-CSRF-Token."},
    "security": [{"bearer": []}],
    "paths": {
        "/api/drivers": {
            "get": {"summary": "List drivers", "parameters": PAGE,
                    "responses": {"200": _ok("drivers", {"type": "object", "properties": {
                        "drivers": {"type": "array", "items": DRIVER}}}), **FAIL}},
            "post": {"summary": "Register a driver",
                     "requestBody": _body(True, {
                         "type": "object", "required": ["phone", "name", "vehicle"],
                         "properties": {"phone": PHONE, "name": text(NAME_MAX),
                                        "vehicle": text(VEHICLE_MAX), "language": LANGUAGE}}),
                     "responses": {"201": _ok("the driver, phone in E.164", DRIVER), **FAIL,
                                   "409": _ok("phone already registered", ERROR)}}},
        "/api/drivers/{id}": {
            "parameters": [ID],
            "get": {"summary": "One driver", "responses": {"200": _ok("driver", DRIVER), **FAIL, **MISSING}},
            "patch": {"summary": "Update name, vehicle, active, location",
                      "requestBody": _body(True, {"type": "object", "minProperties": 1, "properties": {
                          "name": text(NAME_MAX), "vehicle": text(VEHICLE_MAX), "active": {"type": "boolean"},
                          "location": PLACE, "language": LANGUAGE}}),
                      "responses": {"200": _ok("driver", DRIVER), **FAIL, **MISSING}}},
        "/api/rescues": {
            "get": {"summary": "Search every rescue, open or closed, newest first",
                    "parameters": [{"name": "status", "in": "query",
                                    "schema": {"type": "string", "enum": list(STATUSES)}}, *SEARCH, *PAGE],
                    "responses": {"200": _ok("rescues", {"type": "object", "properties": {
                        "rescues": {"type": "array", "items": RESCUE}}}), **FAIL}}},
        "/api/rescues/{id}": {
            "parameters": [ID],
            "get": {"summary": "One rescue with its timeline and messages",
                    "responses": {"200": _ok("rescue", RESCUE), **FAIL, **MISSING}}},
        "/api/rescues/{id}/assign": {
            "parameters": [ID],
            "post": {"summary": "Assign (or reassign) a driver",
                     "requestBody": _body(True, {"type": "object", "required": ["driver_id"],
                                                                "properties": {"driver_id": {"type": "string"}}}),
                     "responses": {"200": _ok("rescue", RESCUE), **FAIL, **MISSING, **CONFLICT}}},
        "/api/rescues/{id}/cancel": {
            "parameters": [ID],
            "post": {"summary": "Cancel; repeating it is a no-op",
                     "requestBody": _body(False, {"type": "object", "properties": {
                         "reason": text(200)}}),
                     "responses": {"200": _ok("rescue", RESCUE), **FAIL, **MISSING, **CONFLICT}}},
        "/api/rescues/{id}/refund": {
            "parameters": [ID, {"name": "Idempotency-Key", "in": "header",
                                "schema": {"type": "string", "minLength": 1, "maxLength": 100}}],
            "post": {"summary": "Refund a paid rescue, fully or partly",
                     "requestBody": _body(False, {"type": "object", "properties": {
                         "amount_cents": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}}),
                     "responses": {"201": _ok("the refund entry"), **FAIL, **MISSING, **CONFLICT,
                                   "503": _ok("Stripe did not answer; retry with the same key", ERROR)}}},
        "/api/rescues/{id}/payment-link": {
            "parameters": [ID],
            "post": {"summary": "Text the rider a fresh payment link",
                     "responses": {"202": _ok("queued"), **FAIL, **MISSING, **CONFLICT}}},
        "/api/rescues/{id}/payments": {
            "parameters": [ID],
            "get": {"summary": "The rescue's payment ledger", "responses": {"200": _ok("ledger"), **FAIL, **MISSING}}},
        "/api/rescues/{id}/message": {
            "parameters": [ID],
            "post": {"summary": "Text the rider or driver from the rescue number",
                     "requestBody": _body(True, {
                         "type": "object", "required": ["to", "body"],
                         "properties": {"to": {"type": "string", "enum": ["rider", "driver"]},
                                        "body": text(600)}}),
                     "responses": {"201": _ok("the message"), **FAIL, **MISSING, **CONFLICT}}},
        "/api/help-requests": {
            "get": {"summary": "People who asked for a person or were not understood, newest first",
                    "parameters": [{"name": "status", "in": "query",
                                    "schema": {"type": "string", "enum": list(HELP_STATUSES)}}, *PAGE],
                    "responses": {"200": _ok("help requests", {"type": "object", "properties": {
                        "help_requests": {"type": "array", "items": HELP}}}), **FAIL}}},
        "/api/help-requests/{id}/resolve": {
            "parameters": [ID],
            "post": {"summary": "Resolve a help request, recording who and when; repeating it is a no-op",
                     "requestBody": _body(False, {"type": "object", "properties": {
                         "note": {"type": "string", "maxLength": NOTE_MAX}}}),
                     "responses": {"200": _ok("the help request", HELP), **FAIL, **MISSING}}},
        "/api/riders/{phone}": {
            "parameters": [{"name": "phone", "in": "path", "required": True, "schema": PHONE}],
            "delete": {"summary": "Erase one rider's personal data: message bodies, full numbers, conversation; "
                                  "the rescues stay for accounting with a masked number",
                       "responses": {"200": _ok("what was erased, per kind of record", {
                           "type": "object", "properties": {"phone": {"type": "string"},
                                                            "erased": {"type": "object"}}}),
                                     **FAIL, **MISSING, "409": _ok("the rider has an open rescue", ERROR)}}},
        "/api/stats": {"get": {"summary": "Counts by status, today's medians, drivers online",
                               "responses": {"200": _ok("stats"), **FAIL}}},
        "/api/board": {"get": {"summary": "Everything the status page shows",
                               "responses": {"200": _ok("board"), **FAIL}}},
        "/api/dispatchers": {
            "get": {"summary": "Dispatcher accounts (admin)", "parameters": PAGE,
                    "responses": {"200": _ok("accounts", {"type": "object", "properties": {
                        "dispatchers": {"type": "array", "items": ACCOUNT}}}), **FAIL}},
            "post": {"summary": "Create a dispatcher account (admin)",
                     "requestBody": {"required": True, **_json({
                         "type": "object", "required": ["username", "name", "password", "role"],
                         "properties": {"username": USERNAME, **ACCOUNT_FIELDS},
                         "additionalProperties": False})},
                     "responses": {"201": _ok("the account (never its password)", ACCOUNT), **FAIL,
                                   "409": _ok("username taken", ERROR)}}},
        "/api/dispatchers/{id}": {
            "parameters": [ID],
            "patch": {"summary": "Change name, password, role, phone, active or language (admin)",
                      "requestBody": {"required": True, **_json({"type": "object", "properties": ACCOUNT_FIELDS,
                                                                 "minProperties": 1, "additionalProperties": False})},
                      "responses": {"200": _ok("the account", ACCOUNT), **FAIL, **MISSING}}},
        "/api/stream": {"get": {
            "summary": "Server-Sent Events: a `board` event whenever a rescue, driver, message or help request "
                       "changes; heartbeat comments between",
            "responses": {"200": {"description": "text/event-stream",
                                  "content": {"text/event-stream": {"schema": {
                                       "type": "object", "description": "one event",
                                       "properties": {"event": {"type": "string", "enum": ["board"]},
                                                      "data": {"type": "string", "description": "JSON"}}}}}},
                           **FAIL,
                          "503": _ok("no live stream to spare in this process; poll /api/board", ERROR)}}},
        "/api/figures": {"get": {"summary": "Today's figures by hour, with small SVG charts",
                                 "responses": {"200": _ok("figures"), **FAIL}}},
        "/api/rescues.csv": {"get": {
            "summary": "The rescue list as CSV (same filters as /api/rescues)",
            "parameters": [{"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES)}},
                           *SEARCH],
            "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                          **FAIL}}},
        "/api/openapi.json": {"get": {"summary": "This document (no token needed)", "security": [],
                                      "responses": {"200": _ok("OpenAPI 3")}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Dispatcher": {"type": "object", "required": ["id", "username", "name", "role", "active"], "properties": {
                "id": {"type": "string"}, "username": {"type": "string"}, "name": {"type": "string"},
                "role": {"type": "string", "enum": list(account.ROLES)}, "phone": {"type": "string", "nullable": True},
                "active": {"type": "boolean"}, "language": LANGUAGE, "created_at": {"type": "string"}}},
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"},
                                                                             "field": {"type": "string"}}},
            "HelpRequest": {"type": "object", "required": ["id", "phone", "reason", "status", "created_at"],
                            "properties": {
                                "id": {"type": "string"}, "phone": {"type": "string"},
                                "rescue_id": {"type": "string", "nullable": True},
                                "reason": {"type": "string", "enum": ["asked", "not_understood"]},
                                "text": {"type": "string"}, "status": {"type": "string", "enum": list(HELP_STATUSES)},
                                "created_at": {"type": "string"},
                                "resolved_by": {"type": "string", "nullable": True},
                                "resolved_at": {"type": "string", "nullable": True}}},
            "Driver": {"type": "object", "required": ["id", "phone", "name", "vehicle", "status"], "properties": {
                "id": {"type": "string"}, "phone": {"type": "string"}, "name": {"type": "string"},
                "vehicle": {"type": "string"}, "status": {"type": "string"}, "active": {"type": "boolean"},
                "location": {"nullable": True, **POINT}, "location_updated_at": {"type": "string", "nullable": True},
                "rating": {"type": "number", "nullable": True}, "language": LANGUAGE}},
            "Rescue": {"type": "object", "required": ["id", "code", "status", "rider_phone", "pickup"], "properties": {
                "id": {"type": "string"}, "code": {"type": "string"}, "status": {"type": "string"},
                "rider_phone": {"type": "string"}, "pickup": POINT, "dropoff": {"nullable": True, **POINT},
                "problem": {"type": "string"}, "driver_id": {"type": "string", "nullable": True},
                "quote_cents": {"type": "integer"}, "payment_status": {"type": "string"},
                "created_at": {"type": "string"}, "updated_at": {"type": "string"}}},
        },
    },
}
