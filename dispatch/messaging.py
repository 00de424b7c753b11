"""Outbound texts: recorded first, sent by a background job, never to an opted-out number.

A text is a document in `messages` with a unique idempotency key, so the same logical
text (the reply to one inbound MessageSid, say) is queued once however often the
webhook is delivered. The send job claims it (`pending` -> `sending`) before calling
the vendor, so a retried or duplicated job does not send it again.

Sends are not serial, and not one job per text. A new text only "kicks" the outbox: at
most one drain job is queued per kick, and it sends every never-tried pending text in
batches on a thread pool (the vendor answers in ~200 ms, and an RQ job costs ~10 ms of
Redis round trips, so one text per job capped a worker at about 5 texts/s). The claim
(`pending` -> `sending`) makes concurrent drains safe. A text that fails transiently
leaves the batch and is retried by its own `send_text` job with back-off; texts the
sweeper finds stuck are re-sent the same way.
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Callable, Protocol

import structlog
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dispatch.phones import is_textable, mask
from dispatch.clock import now_ms
from dispatch.metrics import MESSAGES_OUT

log = structlog.get_logger(__name__)

# Ranks keep delivery status monotonic whatever order Twilio's callbacks arrive in.
STATUS_RANK = {
    "pending": 0, "sending": 1, "accepted": 2, "scheduled": 2, "queued": 2, "sent": 3,
    "delivered": 4, "read": 5, "undelivered": 5, "failed": 5, "canceled": 5,
    "suppressed": 5, "sandbox": 4,
}
NEVER_RETRY_CODES = {21610, 21211, 21614, 21408, 21612}
SEND_THREADS = 64
SEND_BATCH = 64  # texts one drain takes at a time: one vendor round trip at SEND_THREADS
OPTED_OUT_CODE = 21610


class SendFailed(Exception):
    """A vendor error. `transient` ones are retried with backoff; the rest are final."""

    def __init__(self, message: str, *, code: int | None = None, transient: bool) -> None:
        super().__init__(message)
        self.code, self.transient = code, transient


class Sender(Protocol):
    def send(self, to: str, body: str, status_callback: str | None) -> str:
        """Hand one text to the carrier; returns the vendor's message id."""

    def find_sent(self, to: str, body: str, since_ms: int) -> list[str]:
        """Ids of texts the carrier has to `to` with this body since the claim (a send whose
        worker died may be among them)."""


class OptOuts:
    """The opt-out registry every send path consults (MongoDB is the record)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def is_opted_out(self, phone: str) -> bool:
        return self.db.optouts.find_one({"_id": phone, "opted_out": True}) is not None

    def opt_out(self, phone: str, source: str) -> None:
        self.db.optouts.update_one({"_id": phone}, {"$set": {"opted_out": True, "source": source,
                                                             "at": now_ms()}}, upsert=True)

    def opt_in(self, phone: str, source: str) -> None:
        self.db.optouts.update_one({"_id": phone}, {"$set": {"opted_out": False, "source": source,
                                                             "at": now_ms()}}, upsert=True)


@dataclass
class Outbox:
    db: Database
    kick: Callable[[], None]  # start a drain of the outbox (coalesced: see the module doc)
    enqueue_send: Callable[[str], None]  # one text's own send job (retries, sweeper re-queues)

    def queue_text(self, to: str, body: str, *, key: str, rescue_id: str | None = None,
                   kind: str = "reply") -> dict[str, Any] | None:
        """Record a text and start its send job; the same key never makes a second text."""
        if not is_textable(to):
            return None
        doc = {"_id": uuid.uuid4().hex, "key": key, "direction": "out", "phone": to, "body": body,
               "kind": kind, "rescue_id": rescue_id, "status": "pending", "status_rank": 0,
               "attempts": 0, "created_at": now_ms(), "updated_at": now_ms()}
        try:
            self.db.messages.insert_one(doc)
        except DuplicateKeyError:
            return self.db.messages.find_one({"key": key})
        self.kick()
        return doc

    def requeue_pending(self, older_than_ms: int) -> int:
        """Texts whose send job never ran (Redis lost, enqueue failed): start them again."""
        count = 0
        for msg in self.db.messages.find({"direction": "out", "status": "pending",
                                          "updated_at": {"$lt": older_than_ms}}, {"_id": 1}).limit(500):
            self.db.messages.update_one({"_id": msg["_id"]}, {"$set": {"updated_at": now_ms()}})
            self.enqueue_send(msg["_id"])
            count += 1
        return count


@dataclass
class Delivery:
    """The body of the send job."""

    db: Database
    sender: Sender
    optouts: OptOuts
    status_callback: str | None
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def drain(self, retry_later: Callable[[str], None]) -> int:
        """Send one batch of never-tried pending texts concurrently; returns how many it took.

        A number's texts in the batch go out one after another, oldest first, so a rider
        never gets "driver arrived" before "driver assigned". A text that fails
        transiently is back to `pending` and handed to `retry_later` (its own job).
        """
        batch = list(self.db.messages.find({"direction": "out", "status": "pending", "attempts": 0},
                                           {"phone": 1, "created_at": 1}).sort("created_at", 1).limit(SEND_BATCH))
        if not batch:
            return 0
        batch.sort(key=lambda m: (m["phone"], m["created_at"]))
        lanes = [[m["_id"] for m in msgs] for _, msgs in groupby(batch, key=lambda m: m["phone"])]
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
        msg = self.db.messages.find_one({"_id": message_id})
        if msg is None or msg["status"] != "pending":
            return msg["status"] if msg else "missing"
        if self.optouts.is_opted_out(msg["phone"]):
            if not self._finish(message_id, "suppressed", expect="pending", error_code=_code(OPTED_OUT_CODE)):
                return "claimed-elsewhere"  # another copy of this job already sent it
            log.info("text_suppressed", to=mask(msg["phone"]), message_id=message_id)
            MESSAGES_OUT.labels("suppressed", str(OPTED_OUT_CODE)).inc()
            return "suppressed"
        claimed = self.db.messages.find_one_and_update(
            {"_id": message_id, "status": "pending"},
            {"$set": {"status": "sending", "status_rank": STATUS_RANK["sending"], "claimed_at": now_ms()},
             "$inc": {"attempts": 1}})
        if claimed is None:
            return "claimed-elsewhere"
        try:
            sid = self.sender.send(msg["phone"], msg["body"], self.status_callback)
        except SendFailed as exc:
            if exc.transient:
                self.db.messages.update_one({"_id": message_id, "status": "sending"},
                                            {"$set": {"status": "pending", "status_rank": 0,
                                                      "error_code": _code(exc.code)}})
                log.warning("text_retry", to=mask(msg["phone"]), code=exc.code, message_id=message_id)
                MESSAGES_OUT.labels("retried", str(exc.code or "")).inc()
                raise
            if exc.code == OPTED_OUT_CODE:
                self.optouts.opt_out(msg["phone"], source="carrier")
            self._finish(message_id, "failed", expect="sending", error_code=_code(exc.code))
            log.warning("text_failed", to=mask(msg["phone"]), code=exc.code, message_id=message_id)
            MESSAGES_OUT.labels("failed", str(exc.code or "")).inc()
            return "failed"
        status = "sandbox" if sid.startswith("SANDBOX") else "sent"
        self.db.messages.update_one({"_id": message_id, "status": "sending"},
                                    {"$set": {"status": status, "status_rank": STATUS_RANK[status],
                                              "twilio_sid": sid, "sent_at": now_ms(), "updated_at": now_ms(),
                                              "error_code": None}})
        _apply_early_receipt(self.db, sid)
        MESSAGES_OUT.labels(status, "").inc()
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
        sid = next((c for c in candidates if not self.db.messages.find_one({"twilio_sid": c})), None)
        if sid:
            self.db.messages.update_one({"_id": msg["_id"], "status": "sending"},
                                        {"$set": {"status": "sent", "status_rank": STATUS_RANK["sent"],
                                                  "twilio_sid": sid, "updated_at": now_ms()}})
            _apply_early_receipt(self.db, sid)
            return "found"
        released = self.db.messages.update_one({"_id": msg["_id"], "status": "sending"},
                                               {"$set": {"status": "pending", "status_rank": 0,
                                                         "updated_at": now_ms()}})
        return "released" if released.modified_count else "moved-on"

    def _finish(self, message_id: str, status: str, expect: str, **fields: Any) -> bool:
        result = self.db.messages.update_one({"_id": message_id, "status": expect},
                                             {"$set": {"status": status, "status_rank": STATUS_RANK[status],
                                                       "updated_at": now_ms(), **fields}})
        return result.modified_count == 1


def _code(code: Any) -> str | None:
    """Error codes arrive as ints from the client and strings from callbacks: store strings."""
    return str(code)[:16] if code not in (None, "") else None


def record_status(db: Database, twilio_sid: str, status: str, error_code: str | None) -> bool:
    """Apply a delivery status callback unless it would move the status backwards.

    The callback can beat the send job to the database (Twilio answers the send, calls
    back, and only then does the job store the sid), so every receipt is also kept by
    sid and `Delivery` applies it once it knows the sid.
    """
    rank = STATUS_RANK.get(status)
    if rank is None:
        return False
    fields: dict[str, Any] = {"status": status, "status_rank": rank, "updated_at": now_ms()}
    if error_code:
        fields["error_code"] = _code(error_code)
    try:
        db.receipts.update_one({"_id": twilio_sid, "status_rank": {"$lt": rank}}, {"$set": fields},
                               upsert=True)
    except DuplicateKeyError:
        pass  # a later status is already stored
    result = db.messages.update_one({"twilio_sid": twilio_sid, "status_rank": {"$lt": rank}},
                                    {"$set": fields})
    return result.modified_count == 1


def _apply_early_receipt(db: Database, twilio_sid: str) -> None:
    receipt = db.receipts.find_one({"_id": twilio_sid})
    if receipt:
        fields = {k: receipt[k] for k in ("status", "status_rank", "error_code") if k in receipt}
        db.messages.update_one({"twilio_sid": twilio_sid, "status_rank": {"$lt": receipt["status_rank"]}},
                               {"$set": fields})
