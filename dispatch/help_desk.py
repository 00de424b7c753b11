"""Bringing a person in (PRODUCT.md §4 rider step 9): help requests that dispatchers see at
once and resolve, and the text that alerts the on-call dispatcher.

One open request per phone: asking again, or being misunderstood again, while one is open
adds nothing for a dispatcher to do twice, so the open one is returned.
"""
from __future__ import annotations

import uuid

import structlog

from dispatch.bus import EventBus
from dispatch.config import Settings
from dispatch.messaging import Outbox
from dispatch.model import events as ev
from dispatch.model import help_request as hr
from dispatch.model.clock import now_ms
from dispatch.model.errors import NotFound
from dispatch.model.help_request import HelpRequest
from dispatch.model.phones import mask
from dispatch.ports import HelpRequestStore, RescueRepository
from dispatch.texts import say

log = structlog.get_logger(__name__)


class HelpDesk:
    def __init__(self, settings: Settings, requests: HelpRequestStore, rescues: RescueRepository, outbox: Outbox,
                 bus: EventBus) -> None:
        self.settings, self.requests, self.rescues, self.outbox, self.bus = settings, requests, rescues, outbox, bus

    def open(self, phone: str, reason: str, text: str, rescue_id: str | None = None,
             language: str = "en") -> HelpRequest:
        """Open a request for `phone` (or return the one already open) and alert the on-call dispatcher."""
        current = self.requests.open_for(phone)
        if current:
            return current
        request = HelpRequest(id=uuid.uuid4().hex, phone=phone, reason=reason, text=text[:hr.TEXT_MAX],
                              status=hr.OPEN, created_at=now_ms(), rescue_id=rescue_id, language=language)
        if not self.requests.add(request):  # two at once from one phone: the other one won
            return self.requests.open_for(phone) or request
        self.bus.publish(ev.HelpRequested(rescue_id=rescue_id, by="rider", help_request_id=request.id,
                                          reason=reason))
        log.info("help_requested", phone=mask(phone), reason=reason, help_request_id=request.id)
        return request

    def alert(self, event: ev.HelpRequested) -> None:
        """The on-call dispatcher's text (DISPATCH_ALERT_PHONE), once per request."""
        to = self.settings.dispatch_alert_phone
        request = self.requests.get(event.help_request_id)
        if not to or request is None:
            return
        rescue = self.rescues.get(request.rescue_id) if request.rescue_id else None
        self.outbox.queue_text(to, say("help_alert", request=request, rescue=rescue, phone=mask(request.phone)),
                               key=f"help-alert:{request.id}", rescue_id=request.rescue_id, kind="help_alert")

    def resolve(self, request_id: str, by: str, note: str = "") -> HelpRequest:
        """Record who resolved it and when; resolving it again changes nothing."""
        request = self.requests.get(request_id)
        if request is None:
            raise NotFound("no such help request")
        if request.status == hr.RESOLVED:
            return request
        resolved = self.requests.resolve(request_id, by, note[:hr.NOTE_MAX], now_ms())
        if resolved is None:  # resolved by somebody else in the meantime
            return self.requests.get(request_id)
        self.bus.publish(ev.HelpResolved(rescue_id=resolved.rescue_id, by=by, help_request_id=request_id))
        return resolved

    def list(self, status: str | None = None, limit: int = 50, offset: int = 0) -> list[HelpRequest]:
        return self.requests.list(status, limit, offset)
