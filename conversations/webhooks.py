"""Twilio webhooks: translate the HTTP request, check its signature, hand it to the engine."""
from __future__ import annotations

import hmac
import re
from functools import lru_cache, wraps

import pymongo
import structlog
from flask import Blueprint, Response, request
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from conversations.engine import Engine, Inbound
from dispatch.http import plain, services

log = structlog.get_logger(__name__)
bp = Blueprint("twilio", __name__, url_prefix="/twilio")

SID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_MEDIA = 10
EMPTY_TWIML = str(MessagingResponse())


def twiml(body: str = EMPTY_TWIML, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/xml")


def public_url() -> str:
    """The URL exactly as Twilio called it: PUBLIC_BASE_URL, the raw path and query."""
    query = request.query_string.decode("latin-1")
    return services().settings.public_base_url + request.path + (f"?{query}" if query else "")


@lru_cache(maxsize=4)
def _validator(token: str) -> RequestValidator:
    return RequestValidator(token)


def signature_ok(token: str, url: str, form, signature: str) -> bool:
    """Twilio signs the URL it was given: first the one signature for that URL exactly (one
    HMAC); only if it does not match, the library's full check with its port variants."""
    validator = _validator(token)
    if "bodySHA256" not in url and hmac.compare_digest(validator.compute_signature(url, form), signature):
        return True  # (a bodySHA256 URL signs a JSON body: the library checks that one)
    return validator.validate(url, form, signature)


def twilio_signed(view):
    """403 unless X-Twilio-Signature matches; only a sandbox without a token skips it."""

    @wraps(view)
    def checked(*args, **kwargs):
        token = services().settings.twilio_auth_token
        if token:
            signature = request.headers.get("X-Twilio-Signature", "")
            if not signature or not signature_ok(token, public_url(), request.form, signature):
                log.warning("twilio_signature_rejected", path=request.path)
                return plain("invalid Twilio signature", 403)
        return view(*args, **kwargs)

    return checked


def _media(form) -> list[str]:
    try:
        count = max(0, min(int(form.get("NumMedia", "0")), MAX_MEDIA))
    except ValueError:
        count = 0
    return [url[:1000] for i in range(count) if (url := form.get(f"MediaUrl{i}"))]


@bp.post("/sms")
@twilio_signed
def inbound_sms():
    form = request.form
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    sender = form.get("From") or ""
    if not SID_RE.match(sid):
        return plain("MessageSid missing or malformed", 400)
    if not sender.strip():
        return plain("From missing", 400)
    msg = Inbound(sid=sid, sender=sender, body=form.get("Body") or "", media=_media(form))
    svc = services()
    engine = Engine(svc)
    try:
        with pymongo.timeout(svc.settings.webhook_store_timeout_seconds):
            engine.accept(msg)
    except PyMongoError as exc:  # Twilio never redelivers a 5xx: keep the text in Redis
        log.error("store_unavailable", error=type(exc).__name__, sid=sid)
        try:
            engine.hold(msg)
        except RedisError as again:  # both stores down: nothing kept, Twilio's error log has it
            log.error("store_unavailable", error=type(again).__name__, sid=sid)
            return plain("temporarily unavailable; retry", 503)
    return twiml()


@bp.post("/status")
@twilio_signed
def message_status():
    form = request.form
    sid, status = form.get("MessageSid") or "", (form.get("MessageStatus") or "").lower()
    if not SID_RE.match(sid) or not status:
        return plain("MessageSid and MessageStatus required", 400)
    try:
        services().delivery.record_status(sid, status, form.get("ErrorCode"))
    except PyMongoError as exc:
        log.error("store_unavailable", error=type(exc).__name__)
        return plain("temporarily unavailable; retry", 503)
    return plain("ok", 200)
