"""Admin JSON API (PRODUCT.md §3): a thin translation between HTTP and the services; also
/healthz and /metrics."""
from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request
from redis.exceptions import RedisError

from dispatch.adapters import metrics
from dispatch.adapters.mongo import ping
from dispatch.adapters.rq_scheduler import WorkerHeartbeats
from dispatch.http import error, refused, services
from dispatch.http.auth import TooManyWrongTokens, bearer_ok, csrf_ok, logged_in
from dispatch.http.openapi import OPENAPI
from dispatch.http.validation import check_against_document
from dispatch.model import help_request as hr
from dispatch.model.clock import iso
from dispatch.model.driver import NAME_MAX, VEHICLE_MAX, Driver, DuplicateDriver
from dispatch.model.errors import DomainError
from dispatch.model.geo import Point
from dispatch.model.phones import mask, normalise
from dispatch.model.rescue import STATUSES
from dispatch.ports import Busy, PaymentUnavailable
from dispatch.texts import ENGLISH, LANGUAGES

api = Blueprint("api", __name__, url_prefix="/api")
health = Blueprint("health", __name__)

MAX_PAGE = 200
MESSAGE_MAX = 600
TIMELINE_MESSAGES = 200
INTAKE_LOOKBACK_MS = 3600 * 1000


PUBLIC_ENDPOINTS = {"api.openapi_spec"}


def too_many_wrong_tokens():
    return error("too many wrong tokens from this address; wait a minute", 429)


@api.before_request
def require_admin():
    """The bearer token, or the status page's session (with its CSRF token on changes). The
    API's own document is public: it holds no data, and tools read it before they have a token."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if logged_in() and "Authorization" not in request.headers:
        if request.method in ("GET", "HEAD") or csrf_ok():
            return None
        return error("missing or wrong CSRF token", 403)
    try:
        if bearer_ok():
            return None
    except TooManyWrongTokens:
        return too_many_wrong_tokens()
    return error("missing or wrong bearer token", 401)


api.before_request(check_against_document)  # after the token: a stranger learns nothing of the schema


def _page() -> tuple[int, int] | tuple[None, Any]:
    try:
        limit = int(request.args.get("limit", 50))
        offset = int(request.args.get("offset", 0))
    except ValueError:
        return None, error("limit and offset must be integers", 400, field="limit")
    if not (1 <= limit <= MAX_PAGE) or offset < 0:
        return None, error(f"limit must be 1..{MAX_PAGE} and offset >= 0", 400, field="limit")
    return limit, offset


def _text_field(body: dict, name: str, max_len: int) -> str | None:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > max_len:
        return None
    return value.strip()


@api.post("/drivers")
def create_driver():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error("body must be a JSON object", 400)
    phone = normalise(body.get("phone") if isinstance(body.get("phone"), str) else None,
                      services().settings.default_region)
    if phone is None:
        return error("phone must be a valid phone number", 400, field="phone")
    name = _text_field(body, "name", NAME_MAX)
    if name is None:
        return error(f"name is required (1..{NAME_MAX} characters)", 400, field="name")
    vehicle = _text_field(body, "vehicle", VEHICLE_MAX)
    if vehicle is None:
        return error(f"vehicle is required (1..{VEHICLE_MAX} characters)", 400, field="vehicle")
    language = body.get("language", ENGLISH)
    if language not in LANGUAGES:
        return error(f"language must be one of {', '.join(LANGUAGES)}", 400, field="language")
    driver = dataclasses.replace(Driver.new(phone, name, vehicle), language=language)
    try:
        services().drivers.add(driver)
    except DuplicateDriver:
        return error("a driver with this phone is already registered", 409, field="phone")
    return jsonify(driver.to_json()), 201


@api.get("/drivers")
def list_drivers():
    limit, offset = _page()
    if limit is None:
        return offset
    drivers = services().drivers.list(limit=limit, offset=offset)
    return jsonify({"drivers": [d.to_json() for d in drivers], "limit": limit, "offset": offset})


@api.get("/drivers/<driver_id>")
def show_driver(driver_id: str):
    driver = services().drivers.get(driver_id)
    return jsonify(driver.to_json()) if driver else error("no such driver", 404)


@api.patch("/drivers/<driver_id>")
def update_driver(driver_id: str):
    svc = services()
    driver = svc.drivers.get(driver_id)
    if driver is None:
        return error("no such driver", 404)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body:
        return error("body must be a non-empty JSON object", 400)
    unknown = set(body) - {"name", "vehicle", "active", "location", "language"}
    if unknown:
        return error(f"unknown field {sorted(unknown)[0]}", 400, field=sorted(unknown)[0])
    fields: dict[str, Any] = {}
    for name, max_len in (("name", NAME_MAX), ("vehicle", VEHICLE_MAX)):
        if name in body:
            value = _text_field(body, name, max_len)
            if value is None:
                return error(f"{name} must be 1..{max_len} characters", 400, field=name)
            fields[name] = value
    if "language" in body:
        if body["language"] not in LANGUAGES:
            return error(f"language must be one of {', '.join(LANGUAGES)}", 400, field="language")
        fields["language"] = body["language"]
    if "active" in body:
        if not isinstance(body["active"], bool):
            return error("active must be true or false", 400, field="active")
        fields["active"] = body["active"]
    if fields:
        driver = svc.drivers.update_profile(driver_id, fields)
        if fields.get("active") is False:
            svc.dispatcher.go_offline(driver)
    if "location" in body:
        loc = body["location"]
        try:
            point = Point(float(loc["lat"]), float(loc["lng"]), str(loc.get("label") or "")[:120])
            if not (-90 <= point.lat <= 90 and -180 <= point.lng <= 180):
                raise ValueError
        except (TypeError, KeyError, ValueError, OverflowError):
            return error("location must be {lat, lng, label?} with valid coordinates", 400, field="location")
        svc.dispatcher.update_location(driver, point)
    return jsonify(svc.drivers.get(driver_id).to_json())


@api.post("/rescues/<rescue_id>/assign")
def assign_rescue(rescue_id: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("driver_id"), str):
        return error("driver_id is required", 400, field="driver_id")
    try:
        rescue = services().dispatcher.assign(rescue_id, body["driver_id"])
    except DomainError as exc:
        return refused(exc)
    return jsonify(rescue.to_json())


@api.post("/rescues/<rescue_id>/cancel")
def cancel_rescue(rescue_id: str):
    body = request.get_json(silent=True) or {}
    reason = body.get("reason", "cancelled by dispatcher") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
        return error("reason must be 1..200 characters", 400, field="reason")
    try:
        rescue = services().dispatcher.cancel(rescue_id, reason.strip(), by="dispatcher")
    except DomainError as exc:
        return refused(exc)
    return jsonify(rescue.to_json())


@api.post("/rescues/<rescue_id>/refund")
def refund_rescue(rescue_id: str):
    body = request.get_json(silent=True)
    body = {} if body is None else body
    if not isinstance(body, dict):
        return error("body must be a JSON object", 400)
    amount = body.get("amount_cents")
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0):
        return error("amount_cents must be a positive integer", 400, field="amount_cents")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 100):
        return error("Idempotency-Key must be 1..100 characters", 400, field="Idempotency-Key")
    try:
        entry = services().payments.refund(rescue_id, amount, key, by="dispatcher")
    except DomainError as exc:
        return refused(exc)
    except (PaymentUnavailable, Busy):
        return error("Stripe did not answer; retry with the same Idempotency-Key", 503)
    return jsonify(_ledger_json(entry)), 201


@api.post("/rescues/<rescue_id>/payment-link")
def resend_payment_link(rescue_id: str):
    try:
        services().payments.resend(rescue_id, by="dispatcher")
    except DomainError as exc:
        return refused(exc)
    return jsonify({"status": "queued"}), 202


@api.get("/rescues/<rescue_id>/payments")
def rescue_payments(rescue_id: str):
    svc = services()
    if svc.rescues.get(rescue_id) is None:
        return error("no such rescue", 404)
    ledger = svc.payments.ledger_of(rescue_id)
    return jsonify({**ledger, "entries": [_ledger_json(e) for e in ledger["entries"]],
                    "stripe_events": [{"id": e["_id"], "type": e["type"], "received_at": iso(e["received_at"])}
                                      for e in ledger["stripe_events"]]})


def _ledger_json(entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": entry["_id"], "kind": entry["kind"], "amount_cents": entry.get("amount_cents"),
            "status": entry["status"], "created_at": iso(entry.get("created_at")),
            **{k: entry[k] for k in ("attempt", "url", "payment_intent", "stripe_refund_id", "by") if entry.get(k)}}


@api.post("/rescues/<rescue_id>/message")
def message_party(rescue_id: str):
    """A dispatcher's own text to the rider or driver, from the rescue number."""
    svc = services()
    rescue = svc.rescues.get(rescue_id)
    if rescue is None:
        return error("no such rescue", 404)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("to") not in ("rider", "driver"):
        return error("to must be rider or driver", 400, field="to")
    text = body.get("body")
    if not isinstance(text, str) or not text.strip() or len(text) > MESSAGE_MAX:
        return error(f"body must be 1..{MESSAGE_MAX} characters", 400, field="body")
    if body["to"] == "rider":
        phone = rescue.rider_phone
    else:
        driver = svc.drivers.get(rescue.driver_id) if rescue.driver_id else None
        if driver is None:
            return error("this rescue has no driver", 409, field="to")
        phone = driver.phone
    msg = svc.outbox.queue_text(phone, text.strip(), key=f"dispatcher:{uuid.uuid4().hex}", rescue_id=rescue.id,
                                kind="dispatcher")
    if msg is None:
        return error("that number cannot receive texts", 409, field="to")
    return jsonify(_message_json(msg)), 201


@api.get("/help-requests")
def list_help_requests():
    status = request.args.get("status")
    if status is not None and status not in hr.STATUSES:
        return error(f"status must be one of {', '.join(hr.STATUSES)}", 400, field="status")
    limit, offset = _page()
    if limit is None:
        return offset
    found = services().help_desk.list(status, limit, offset)
    return jsonify({"help_requests": [r.to_json() for r in found], "limit": limit, "offset": offset})


@api.post("/help-requests/<request_id>/resolve")
def resolve_help_request(request_id: str):
    body = request.get_json(silent=True)
    body = {} if body is None else body
    note = body.get("note", "") if isinstance(body, dict) else None
    if not isinstance(note, str) or len(note) > hr.NOTE_MAX:
        return error(f"note must be text of at most {hr.NOTE_MAX} characters", 400, field="note")
    try:
        resolved = services().help_desk.resolve(request_id, by="dispatcher", note=note.strip())
    except DomainError as exc:
        return refused(exc)
    return jsonify(resolved.to_json())


@api.get("/stats")
def stats():
    return jsonify(services().board.stats())


@api.get("/board")
def live_board():
    """Everything the status page shows, in one request per refresh."""
    return jsonify(services().board.board())


@api.delete("/riders/<path:phone>")
def forget_rider(phone: str):
    """Erase one rider's personal data at once (PRODUCT.md §7); the rescues stay, masked."""
    svc = services()
    number = normalise(phone, svc.settings.default_region)
    if number is None:
        return error("phone must be a valid phone number", 400, field="phone")
    try:
        erased = svc.privacy.forget_rider(number)
    except DomainError as exc:
        return refused(exc)
    svc.limits.clear(f"in:{number}", svc.settings.inbound_rate_window_seconds)  # the flood counter's key
    return jsonify({"phone": mask(number), "erased": erased})


@api.get("/openapi.json")
def openapi_spec():
    return jsonify(OPENAPI)


@api.get("/rescues")
def list_rescues():
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        return error(f"status must be one of {', '.join(STATUSES)}", 400, field="status")
    limit, offset = _page()
    if limit is None:
        return offset
    rescues = services().rescues.list(status=status, limit=limit, offset=offset)
    return jsonify({"rescues": [r.to_json() for r in rescues], "limit": limit, "offset": offset})


def _message_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "direction": doc["direction"], "phone": doc["phone"], "body": doc["body"],
            "status": doc["status"], "kind": doc.get("kind"), "created_at": iso(doc["created_at"])}


@api.get("/rescues/<rescue_id>")
def show_rescue(rescue_id: str):
    svc = services()
    rescue = svc.rescues.get(rescue_id)
    if rescue is None:
        return error("no such rescue", 404)
    # The conversation that led to the rescue starts before it; an hour covers any intake.
    since = rescue.created_at - INTAKE_LOOKBACK_MS
    messages = svc.messages.for_rescue(rescue.id, rescue.rider_phone, since, TIMELINE_MESSAGES)
    timeline = [{**e, "at": iso(e["at"])} for e in svc.events.timeline(rescue.id)]
    return jsonify({**rescue.to_json(), "timeline": timeline,
                    "messages": [_message_json(m) for m in messages]})


@health.get("/healthz")
def healthz():
    svc = services()
    checks: dict[str, Any] = {}
    try:
        checks["mongodb"] = ping(svc.db)
    except Exception as exc:  # noqa: BLE001 - any failure means "not answering"
        checks["mongodb"] = False
        checks["mongodb_error"] = type(exc).__name__
    try:
        checks["redis"] = bool(svc.redis.ping())
        checks["workers"] = WorkerHeartbeats(svc.redis, svc.keys).alive()
    except RedisError as exc:
        checks["redis"], checks["workers"] = False, 0
        checks["redis_error"] = type(exc).__name__
    down = [store for store in ("mongodb", "redis") if not checks[store]]
    ok = not down and checks["workers"] > 0
    return jsonify({"ok": ok, "down": down, **checks}), 200 if ok else 503


@health.get("/metrics")
def prometheus_metrics():
    try:
        if not bearer_ok():
            return {"error": "missing or wrong bearer token"}, 401
    except TooManyWrongTokens:
        return too_many_wrong_tokens()
    svc = services()
    return Response(metrics.render(svc.rescues.count_by_status, svc.scheduler.queues), mimetype=metrics.CONTENT_TYPE)
