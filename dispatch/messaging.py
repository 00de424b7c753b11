"""Outbound texts: recorded first, sent by a background job, never to an opted-out number.

A text is a message record with a unique idempotency key, so the same logical text (the
reply to one inbound MessageSid, say) is queued once however often the webhook is
delivered. The send job claims it (`pending` -> `sending`) before calling the carrier, so
a retried or duplicated job does not send it again.

Sends are not serial, and not one job per text. A new text only "kicks" the outbox: at
most one kick waits, and a worker's outbox drain thread sends every never-tried pending
text in batches on a thread pool (the carrier answers in ~200 ms, and an RQ job costs
~10 ms of queue round trips). The claim makes concurrent drains safe. A text that fails transiently
leaves the batch and is retried by its own send job with back-off; texts the sweeper
finds stuck are re-sent the same way.

Texts to one number leave in the order they were queued, across every worker and drain
(PRODUCT.md §7): each send, from a drain or a send job, goes through the number's lane,
which sends that number's unfinished texts oldest first and stops at the first it cannot
take (mid-send elsewhere: that lane goes on after it; or failed for now: its retry does).
The claim (pending -> sending) is the only gate, so no lane ever sends a text while an
earlier one to the same number is still pending or mid-send.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
# A lane stops after LANE_BUDGET_SECONDS; what is left pending goes with the next drain.
LANE_BUDGET_SECONDS = 20.0
# A send gives up after 10 s (the Twilio adapter's timeout): a text claimed longer ago than
# this lost its worker mid-send, and the texts after it do not wait for the sweeper to settle it.
CLAIM_DEAD_MS = 11_000
LANE_BATCH = 50
WAITING = "waiting"  # left pending behind an earlier text of its number
CLAIMED_ELSEWHERE = "claimed-elsewhere"  # another lane or a copy of the job took it first
RETRYING = "retrying"  # failed for now: its own send job retries it, then the texts after it


@dataclass
class Outbox:
    messages: MessageStore
    scheduler: Scheduler
    # Told of each new text (the status page's change feed, wired in dispatch.bootstrap).
    changed: Callable[..., None] = field(default=lambda what, **fields: None)

    def queue_text(self, to: str, body: str, *, key: str, rescue_id: str | None = None,
                   kind: str = "reply", registry_read: bool = False) -> dict[str, Any] | None:
        """Record a text and kick the outbox; the same key never makes a second text.

        `registry_read`: the opt-out registry said this number may be texted, read under the
        number's lock in the step that queues the text (a reply). Its send skips a second
        read: every way a number opts out (`Delivery.opt_out`) withdraws what is still queued
        for it, and a STOP is a step under the same lock, so it comes after the reply was queued."""
        if not is_textable(to):
            return None
        now = now_ms()
        doc = {"_id": uuid.uuid4().hex, "key": key, "direction": m.OUT, "phone": to, "body": body,
               "kind": kind, "rescue_id": rescue_id, "status": m.PENDING, "status_rank": 0,
               "attempts": 0, "created_at": now, "seq": time.time_ns(), "updated_at": now}
        if registry_read:
            doc["registry_read"] = True
        if not self.messages.add(doc):
            return self.messages.by_key(key)
        self.scheduler.kick_outbox()
        self.changed("message", rescue_id=rescue_id)
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
    scheduler: Scheduler | None = None  # for a text's own send job; None only in tests of one process
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def drain(self) -> int:
        """Send one batch of never-tried pending texts, one lane per number on a thread pool.
        Returns how many texts it took, for `RqScheduler.drain` to tell a full batch from a
        short one; 0 when none of them moved on (all waiting behind texts mid-send elsewhere),
        so a drain stops rather than spinning on them.

        One look reads every unfinished text. When that comes back short it holds each
        number's whole queue, which is what the number's lane would read first, so the lane
        starts from it. Behind a backlog (a full look) each lane reads its number's texts itself."""
        look = self.messages.unfinished(SEND_BATCH)
        if len(look) >= SEND_BATCH:
            return self._drain_backlog()
        queues: dict[str, list[dict[str, Any]]] = {}
        for msg in look:
            queues.setdefault(msg["phone"], []).append(msg)
        fresh = [msg for msg in look if msg["status"] == m.PENDING and not msg.get("attempts")]
        phones = list(dict.fromkeys(msg["phone"] for msg in fresh))
        lanes = list(self._executor().map(lambda phone: self._lane(phone, first=queues[phone]), phones))
        moved = any(outcome != WAITING for lane in lanes for outcome in lane.values())
        return len(fresh) if moved else 0

    def _drain_backlog(self) -> int:
        batch = self.messages.unsent(SEND_BATCH)
        phones = list(dict.fromkeys(msg["phone"] for msg in batch))
        lanes = list(self._executor().map(self._lane, phones))  # every lane done before the next look
        moved = any(outcome != WAITING for lane in lanes for outcome in lane.values())
        return len(batch) if moved else 0

    def deliver(self, message_id: str) -> str:
        """The send job's body: this text, after every earlier pending text to its number.
        A transient failure of this very text is raised, for RQ to retry with back-off."""
        msg = self.messages.get(message_id)
        if msg is None or msg["status"] != m.PENDING:
            return msg["status"] if msg else "missing"
        outcome = self._lane(msg["phone"], raise_for=message_id).get(message_id)
        if outcome is None:  # another lane of this number took it, or it waits behind an earlier text
            now = self.messages.get(message_id) or {"status": "missing"}
            outcome = WAITING if now["status"] == m.PENDING else now["status"]
        return outcome

    def _lane(self, phone: str, raise_for: str | None = None,
              first: list[dict[str, Any]] | None = None) -> dict[str, str]:
        """The number's unfinished texts oldest first (`first`: as the drain's look found them).

        A lane that stops behind a text mid-send elsewhere, or loses a claim to another lane,
        marks that text (`wait_behind`), and the lane sending it reads the number's texts again
        once it has finished its own: texts queued meanwhile go out after the earlier ones, and
        a lane nobody waited on needs no second look. A mark that finds the text no longer
        mid-send means its lane may already have finished: this lane looks again itself."""
        outcomes: dict[str, str] = {}
        deadline = time.monotonic() + LANE_BUDGET_SECONDS
        docs = first
        while time.monotonic() < deadline:
            if docs is None:
                docs = self.messages.unfinished_to(phone, LANE_BATCH)
            full = first is None and len(docs) >= LANE_BATCH
            sent = again = False
            dead_before = now_ms() - CLAIM_DEAD_MS
            for msg in docs:
                if msg["status"] != m.PENDING:
                    if int(msg.get("claimed_at") or 0) < dead_before:
                        continue  # its worker died mid-send: the sweeper settles it
                    if self.messages.wait_behind(msg["_id"]):
                        return outcomes  # mid-send elsewhere: that lane goes on after it
                    again = True
                    break
                outcome, waited_on = self._send_one(msg, raise_for)
                outcomes[msg["_id"]] = outcome
                if outcome == CLAIMED_ELSEWHERE:
                    if self.messages.wait_behind(msg["_id"]):
                        return outcomes
                    again = True
                    break
                if outcome in (WAITING, RETRYING):
                    return outcomes
                sent = True
                again = again or waited_on
            if not (again or (full and sent)):
                break
            docs, first = None, None
        return outcomes

    def unblock(self, phone: str) -> int:
        """The number's texts waiting behind one whose worker died mid-send: start the next
        one's send job (its lane skips the dead claim). 1 if there was one."""
        following = next((msg for msg in self.messages.unfinished_to(phone, LANE_BATCH)
                          if msg["status"] == m.PENDING), None)
        if following is None or self.scheduler is None:
            return 0
        self.scheduler.send_text(following["_id"])
        return 1

    def _send_one(self, msg: dict[str, Any], raise_for: str | None) -> tuple[str, bool]:
        """One text in its lane, and whether another lane waited on it; RETRYING when it failed
        for now (its retry is arranged), WAITING when the lane could not tell (the sweeper
        re-sends it)."""
        try:
            return self._send(msg["_id"])
        except SendFailed:  # transient (a lasting failure is recorded and returned)
            if msg["_id"] == raise_for:
                raise
            if self.scheduler is not None:
                self.scheduler.retry_send(msg["_id"])
            return RETRYING, False
        except Exception as exc:  # noqa: BLE001 - the lane stops; the sweeper re-sends what is left
            log.warning("batch_send_error", message_id=msg["_id"], error=type(exc).__name__)
            return WAITING, False

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="send")
        return self._pool

    def _send(self, message_id: str) -> tuple[str, bool]:
        """Claim the text (one round trip that also returns it, so what is sent is what was
        claimed), check the opt-out registry, send. The finish returns the text's marks: whether
        another lane waited on it, and whether a receipt may have come before its sid was stored."""
        msg = self.messages.claim(message_id, now_ms())
        if msg is None:
            return CLAIMED_ELSEWHERE, False
        if not msg.get("registry_read") and self.optouts.is_opted_out(msg["phone"]):
            # Never tried at the carrier: the attempt the claim counted is given back.
            was = self.messages.finish(message_id, m.SENDING, m.SUPPRESSED, error_code=_code(m.OPTED_OUT_CODE),
                                       attempts=msg.get("attempts", 0))
            if was is None:
                return CLAIMED_ELSEWHERE, False  # the sweeper took it back meanwhile
            log.info("text_suppressed", to=mask(msg["phone"]), message_id=message_id)
            self.metrics.text_out(m.SUPPRESSED, str(m.OPTED_OUT_CODE))
            return m.SUPPRESSED, bool(was.get("waited_on"))
        try:
            sid = self.sender.send(msg["phone"], msg["body"], self.status_callback)
        except SendFailed as exc:
            if exc.transient:
                self.messages.finish(message_id, m.SENDING, m.PENDING, error_code=_code(exc.code))
                log.warning("text_retry", to=mask(msg["phone"]), code=exc.code, message_id=message_id)
                self.metrics.text_out("retried", str(exc.code or ""))
                raise
            if exc.opted_out:
                self.opt_out(msg["phone"], source="carrier")
            was = self.messages.finish(message_id, m.SENDING, m.FAILED, error_code=_code(exc.code))
            log.warning("text_failed", to=mask(msg["phone"]), code=exc.code, message_id=message_id)
            self.metrics.text_out(m.FAILED, str(exc.code or ""))
            return m.FAILED, bool(was and was.get("waited_on"))
        status = m.SANDBOX if sid.startswith("SANDBOX") else m.SENT
        was = self.messages.finish(message_id, m.SENDING, status, twilio_sid=sid, sent_at=now_ms(), error_code=None)
        if was and was.get("receipt_early"):
            self._apply_early_receipt(sid)
        self.metrics.text_out(status, "")
        log.info("text_sent", to=mask(msg["phone"]), message_id=message_id, kind=msg.get("kind"))
        return status, bool(was and was.get("waited_on"))

    def opt_out(self, phone: str, source: str) -> int:
        """Every opt-out goes through here: record it, then withdraw the texts still queued for
        the number (a reply queued with `registry_read` is sent without looking again).
        A text already mid-send goes, as one whose registry read came just before the opt-out
        did. Returns how many texts were withdrawn."""
        self.optouts.opt_out(phone, source=source)
        withdrawn = self.messages.withdraw_queued(phone, error_code=_code(m.OPTED_OUT_CODE))
        for _ in range(withdrawn):
            self.metrics.text_out(m.SUPPRESSED, str(m.OPTED_OUT_CODE))
        if withdrawn:
            log.info("texts_withdrawn", to=mask(phone), count=withdrawn)
        return withdrawn

    def reconcile(self, msg: dict[str, Any]) -> str:
        """A text left `sending` by a worker that died mid-send: ask the carrier whether it
        went out. If it did, record it; if not, start its send job again at once. Never a blind
        second send."""
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
        if not self.messages.finish(msg["_id"], m.SENDING, m.PENDING):
            return "moved-on"
        # Its rider or driver has waited long enough: sent now, not after another sweep's wait.
        if self.scheduler is not None:
            self.scheduler.send_text(msg["_id"])
        return "released"

    def record_status(self, twilio_sid: str, status: str, error_code: str | None) -> bool:
        """Apply a delivery status callback unless it would move the status backwards.

        The callback can beat the send job to the store (Twilio answers the send, calls
        back, and only then does the job store the sid), so every receipt is also kept by
        sid and applied once the sid is known. A sender reads the receipts only for a text
        marked since its claim: a receipt that finds no text marks every text mid-send, then
        tries again. The finish stores the sid and reads the mark in one step, so either it
        came before the second try (which then applies the receipt) or it sees the mark.
        """
        rank = m.STATUS_RANK.get(status)
        if rank is None:
            return False
        fields: dict[str, Any] = {"status": status, "status_rank": rank}
        if error_code:
            fields["error_code"] = _code(error_code)
        self.messages.keep_receipt(twilio_sid, fields)
        if self.messages.advance(twilio_sid, fields):
            return True
        if self.messages.has_sid(twilio_sid):
            return False  # an older status than the text has: nothing waits for it
        self.messages.expect_receipt()
        return self.messages.advance(twilio_sid, fields)

    def _apply_early_receipt(self, twilio_sid: str) -> None:
        receipt = self.messages.receipt(twilio_sid)
        if receipt:
            self.messages.advance(twilio_sid, {k: receipt[k] for k in ("status", "status_rank", "error_code")
                                               if k in receipt})


def _code(code: Any) -> str | None:
    """Error codes arrive as ints from the client and strings from callbacks: store strings."""
    return str(code)[:16] if code not in (None, "") else None
