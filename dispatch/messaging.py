"""Outbound texts: recorded first, sent by a background job, never to an opted-out number.

A text is a message record with a unique idempotency key, so the same logical text (the
reply to one inbound MessageSid, say) is queued once however often the webhook is
delivered. The send job claims it (`pending` -> `sending`) before calling the carrier, so
a retried or duplicated job does not send it again.

Sends are not serial, and not one job per text. A new text only "kicks" the outbox: at
most one drain job is queued per kick, and it sends every never-tried pending text in
batches on a thread pool (the carrier answers in ~200 ms, and a job costs ~10 ms of queue
round trips). The claim makes concurrent drains safe. A text that fails transiently
leaves the batch and is retried by its own send job with back-off; texts the sweeper
finds stuck are re-sent the same way.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import structlog

from dispatch.model import message as m
from dispatch.model.clock import now_ms
from dispatch.model.phones import is_textable, mask
from dispatch.ports import MessageStore, Metrics, OptOutRegistry, Scheduler, Sender, SendFailed

log = structlog.get_logger(__name__)

SEND_THREADS = 64
SEND_BATCH = 64  # texts one drain takes at a time: one carrier round trip at SEND_THREADS
REQUEUE_BATCH = 500


@dataclass
class Outbox:
    messages: MessageStore
    scheduler: Scheduler

    def queue_text(self, to: str, body: str, *, key: str, rescue_id: str | None = None,
                   kind: str = "reply") -> dict[str, Any] | None:
        """Record a text and kick the outbox; the same key never makes a second text."""
        if not is_textable(to):
            return None
        now = now_ms()
        doc = {"_id": uuid.uuid4().hex, "key": key, "direction": m.OUT, "phone": to, "body": body,
               "kind": kind, "rescue_id": rescue_id, "status": m.PENDING, "status_rank": 0,
               "attempts": 0, "created_at": now, "updated_at": now}
        if not self.messages.add(doc):
            return self.messages.by_key(key)
        self.scheduler.kick_outbox()
        return doc

    def requeue_pending(self, older_than_ms: int) -> int:
        """Texts whose send job never ran (Redis lost, enqueue failed): start them again."""
        ids = self.messages.stale_pending(older_than_ms, REQUEUE_BATCH)
        for message_id in ids:
            self.messages.touch(message_id)
            self.scheduler.send_text(message_id)
        return len(ids)


@dataclass
class Delivery:
    """The body of the send jobs."""

    messages: MessageStore
    sender: Sender
    optouts: OptOutRegistry
    metrics: Metrics
    status_callback: str | None
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def drain(self, retry_later: Callable[[str], None]) -> int:
        """Send one batch of never-tried pending texts concurrently; returns how many it took.

        A number's texts in the batch go out one after another, oldest first, so a rider
        never gets "driver arrived" before "driver assigned". A text that fails
        transiently is back to `pending` and handed to `retry_later` (its own job).
        """
        batch = self.messages.unsent(SEND_BATCH)
        if not batch:
            return 0
        batch.sort(key=lambda msg: (msg["phone"], msg["created_at"]))
        lanes = [[msg["_id"] for msg in msgs] for _, msgs in groupby(batch, key=lambda msg: msg["phone"])]
        for lane in self._executor().map(self._deliver_lane, lanes):
            for message_id, outcome in lane:
                if isinstance(outcome, SendFailed) and outcome.transient:
                    retry_later(message_id)
        return len(batch)

    def _deliver_lane(self, ids: list[str]) -> list[tuple[str, str | Exception]]:
        out: list[tuple[str, str | Exception]] = []
        for message_id in ids:
            try:
                out.append((message_id, self.deliver(message_id)))
            except Exception as exc:  # noqa: BLE001 - one text's failure must not stop the others
                if not isinstance(exc, SendFailed):
                    log.warning("batch_send_error", message_id=message_id, error=type(exc).__name__)
                out.append((message_id, exc))
        return out

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="send")
        return self._pool

    def deliver(self, message_id: str) -> str:
        """Claim the text (the claim returns it, so it is read once), check the opt-out
        registry, send. A text that is not pending answers with its status."""
        msg = self.messages.claim(message_id, now_ms())
        if msg is None:
            current = self.messages.get(message_id)
            return current["status"] if current else "missing"
        if self.optouts.is_opted_out(msg["phone"]):
            # Never tried at the carrier: the attempt the claim counted is given back.
            if not self.messages.finish(message_id, m.SENDING, m.SUPPRESSED, error_code=_code(m.OPTED_OUT_CODE),
                                        attempts=msg.get("attempts", 0)):
                return "claimed-elsewhere"  # the sweeper took it back meanwhile
            log.info("text_suppressed", to=mask(msg["phone"]), message_id=message_id)
            self.metrics.text_out(m.SUPPRESSED, str(m.OPTED_OUT_CODE))
            return m.SUPPRESSED
        try:
            sid = self.sender.send(msg["phone"], msg["body"], self.status_callback)
        except SendFailed as exc:
            if exc.transient:
                self.messages.finish(message_id, m.SENDING, m.PENDING, error_code=_code(exc.code))
                log.warning("text_retry", to=mask(msg["phone"]), code=exc.code, message_id=message_id)
                self.metrics.text_out("retried", str(exc.code or ""))
                raise
            if exc.opted_out:
                self.optouts.opt_out(msg["phone"], source="carrier")
            self.messages.finish(message_id, m.SENDING, m.FAILED, error_code=_code(exc.code))
            log.warning("text_failed", to=mask(msg["phone"]), code=exc.code, message_id=message_id)
            self.metrics.text_out(m.FAILED, str(exc.code or ""))
            return m.FAILED
        status = m.SANDBOX if sid.startswith("SANDBOX") else m.SENT
        self.messages.finish(message_id, m.SENDING, status, twilio_sid=sid, sent_at=now_ms(), error_code=None)
        self._apply_early_receipt(sid)
        self.metrics.text_out(status, "")
        log.info("text_sent", to=mask(msg["phone"]), message_id=message_id, kind=msg.get("kind"))
        return status

    def reconcile(self, msg: dict[str, Any]) -> str:
        """A text left `sending` by a worker that died mid-send: ask the carrier whether it
        went out. If it did, record it; if not, send it again. Never a blind second send."""
        try:
            candidates = self.sender.find_sent(msg["phone"], msg["body"], int(msg.get("claimed_at") or 0))
        except SendFailed:
            return "unknown"  # try again on the next sweep
        # An identical text (a second STATUS answer, say) already recorded is not this one.
        sid = next((c for c in candidates if not self.messages.has_sid(c)), None)
        if sid:
            self.messages.finish(msg["_id"], m.SENDING, m.SENT, twilio_sid=sid)
            self._apply_early_receipt(sid)
            return "found"
        released = self.messages.finish(msg["_id"], m.SENDING, m.PENDING)
        return "released" if released else "moved-on"

    def record_status(self, twilio_sid: str, status: str, error_code: str | None) -> bool:
        """Apply a delivery status callback unless it would move the status backwards.

        The callback can beat the send job to the store (Twilio answers the send, calls
        back, and only then does the job store the sid), so every receipt is also kept by
        sid and applied once the sid is known.
        """
        rank = m.STATUS_RANK.get(status)
        if rank is None:
            return False
        fields: dict[str, Any] = {"status": status, "status_rank": rank}
        if error_code:
            fields["error_code"] = _code(error_code)
        self.messages.keep_receipt(twilio_sid, fields)
        return self.messages.advance(twilio_sid, fields)

    def _apply_early_receipt(self, twilio_sid: str) -> None:
        receipt = self.messages.receipt(twilio_sid)
        if receipt:
            self.messages.advance(twilio_sid, {k: receipt[k] for k in ("status", "status_rank", "error_code")
                                               if k in receipt})


def _code(code: Any) -> str | None:
    """Error codes arrive as ints from the client and strings from callbacks: store strings."""
    return str(code)[:16] if code not in (None, "") else None
