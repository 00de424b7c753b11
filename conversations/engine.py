"""The conversation engine: inbound message in, flow step, effects applied, replies out.

Order of work for one inbound text: the webhook records it (idempotent on MessageSid) and
kicks the inbound drain; the drain, under the sender's lock, runs carrier keywords -> the flow for the
sender's role -> applies the effects, each idempotent on a key derived from the MessageSid
-> saves the conversation -> marks the message processed. A drain re-run after a crash
anywhere in that sequence redoes it without doubling any effect.
"""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from conversations.guards import PhoneBusy, over_rate_limit, phone_lock
from conversations.store import ConversationStore
from dispatch.clock import now_ms
from dispatch.dispatcher import DispatchError, Outcome
from dispatch.geo import Point
from dispatch.metrics import MESSAGES_IN, outcome_label
from dispatch.payments import PaymentError
from dispatch.phones import is_textable, mask, sender_key
from dispatch.rescues import Rescue
from dispatch.services import Services
from dispatch.texts import say
from flows import driver as driver_flow
from flows import rider, words
from flows.effects import (CancelRescue, CreateRescue, DriverCommand, FlowContext, RateRescue, Relay, Reply,
                           ResendPaymentLink)

log = structlog.get_logger(__name__)

JOB_LOCK_WAIT_SECONDS = 60.0
LANE_LOCK_WAIT_SECONDS = 2.0  # in a drain a busy number is skipped, not waited for
INBOUND_BATCH = 64
INBOUND_THREADS = 8
_lanes: ThreadPoolExecutor | None = None
_lanes_guard = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _lanes
    with _lanes_guard:
        if _lanes is None:
            _lanes = ThreadPoolExecutor(INBOUND_THREADS, thread_name_prefix="inbound")
        return _lanes


@dataclass
class StepOutcome:
    """What one rider step did, for entry points that answer in their own words (voice)."""
    state: str
    data: dict[str, Any]
    replies: list[Reply] = field(default_factory=list)
    rescue: Rescue | None = None

    def said(self, template: str) -> dict[str, Any] | None:
        """The context of the reply with this template, if the step gave one."""
        return next((r.context for r in self.replies if r.template == template), None)


@dataclass
class Inbound:
    sid: str
    sender: str
    body: str
    channel: str = "sms"
    media: list[str] = field(default_factory=list)


class Engine:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.conversations = ConversationStore(svc.db)

    def accept(self, msg: Inbound) -> str:
        """The webhook's whole part: record the text once (MongoDB is the record) and queue
        its step. Answering Twilio never waits on a flow, a lock or the number's previous
        text; replies go out by SMS jobs anyway. If Redis is down no drain is kicked and the
        sweeper kicks one once it is back."""
        key = sender_key(msg.sender, self.svc.settings.default_region)
        if key is None:
            return "no-sender"
        record, new = self._record_inbound(key, msg, words.clean(msg.body))
        if not new:
            log.info("inbound_duplicate", phone=mask(key), sid=msg.sid)
            return "duplicate"
        self.svc.jobs.kick_inbound()
        return "queued"

    def apply_pending(self) -> int:
        """One batch of the inbound drain: the oldest unapplied texts, one lane per number on
        a thread pool (a number's texts in order, different numbers side by side, as the web
        tier's threads used to). Returns how many numbers it moved on, so a drain stops when
        only a busy number (a call in progress) or a failing text is left: those wait for the
        next kick or the sweeper's."""
        batch = list(self.svc.db.messages.find({"direction": "in", "channel": "sms", "processed": False},
                                               {"phone": 1, "seq": 1}).sort("seq", 1).limit(INBOUND_BATCH))
        if not batch:
            return 0
        last: dict[str, dict[str, Any]] = {}
        for doc in batch:  # each number's latest: applying it applies the earlier ones first
            last[doc["phone"]] = doc
        outcomes = list(_pool().map(self._apply_lane, [d["_id"] for d in last.values()]))
        return sum(outcome not in ("busy", "failed") for outcome in outcomes)

    def _apply_lane(self, message_id: str) -> str:
        try:
            return self.apply_recorded(message_id, wait=LANE_LOCK_WAIT_SECONDS)
        except PhoneBusy:
            return "busy"
        except Exception:  # noqa: BLE001 - one number's failure must not stop the others
            log.exception("inbound_apply_failed", message_id=message_id)
            return "failed"

    def apply_recorded(self, message_id: str, wait: float = JOB_LOCK_WAIT_SECONDS) -> str:
        """Apply a recorded text, and before it every earlier unapplied text from the same
        number, in arrival order, under the number's lock: two workers picking up two texts
        from one rider still apply them one at a time and in order."""
        doc = self.svc.db.messages.find_one({"_id": message_id, "direction": "in"})
        if doc is None or doc.get("processed"):
            return "done"
        outcome = "done"
        with phone_lock(self.svc.redis, doc["phone"], wait):
            waiting = self.svc.db.messages.find({"phone": doc["phone"], "direction": "in", "channel": "sms",
                                                 "processed": False}).sort([("seq", 1)])
            for pending in list(waiting):
                if pending.get("seq", 0) > doc.get("seq", 0):
                    break  # later texts wait for the drain's next look, after this one
                result = self._apply_recorded(pending)
                if pending["_id"] == message_id:
                    outcome = result
        return outcome

    def voice_step(self, caller: str, step_key: str, said: str) -> StepOutcome | None:
        """One answer in a voice intake: the rider flow exactly as for a text, in the same
        conversation, but answered by the caller's TwiML instead of SMS replies. None when
        the caller is over the flood limit."""
        key = sender_key(caller, self.svc.settings.default_region)
        if key is None:
            return None
        msg = Inbound(sid=f"voice:{step_key}", sender=caller, body=said, channel="voice")
        with phone_lock(self.svc.redis, key, self.svc.settings.phone_lock_wait_seconds):
            record, _ = self._record_inbound(key, msg, words.clean(said))
            if record.get("processed"):
                convo = self.conversations.load(key, role="rider")
                return StepOutcome(convo.state, convo.data)
            if self._flooded(key):
                self._finish(record, "rate-limited")
                return None
            # no carrier keywords by voice: a caller saying "stop" means no harm
            step = self._rider_step(key, msg.sid, record["body"], channel="voice")
            self._finish(record, f"rider:{step.state}")
            return step

    # -- steps ---------------------------------------------------------------------------
    def _apply_recorded(self, record: dict[str, Any]) -> str:
        key = record["phone"]
        if self._flooded(key):
            outcome = "rate-limited"
            log.warning("inbound_rate_limited", phone=mask(key))
        else:
            outcome = self._apply(key, record["twilio_sid"], record["body"])
        self._finish(record, outcome)
        return outcome

    def _flooded(self, key: str) -> bool:
        s = self.svc.settings
        return over_rate_limit(self.svc.redis, key, s.inbound_rate_limit, s.inbound_rate_window_seconds)

    def _finish(self, record: dict[str, Any], outcome: str) -> None:
        status = "rate_limited" if outcome == "rate-limited" else outcome
        self.svc.db.messages.update_one({"_id": record["_id"]},
                                        {"$set": {"processed": True, "status": status, "updated_at": now_ms()}})
        MESSAGES_IN.labels(record.get("channel", "sms"), outcome_label(outcome)).inc()
        log.info("inbound_applied", phone=mask(record["phone"]), sid=record["twilio_sid"], outcome=outcome,
                 channel=record.get("channel", "sms"))

    def _record_inbound(self, key: str, msg: Inbound, body: str) -> tuple[dict[str, Any], bool]:
        """(the record, whether it is new). `seq` orders a number's texts as they arrived."""
        now = now_ms()
        doc = {"_id": uuid.uuid4().hex, "key": f"in:{msg.sid}", "direction": "in", "phone": key,
               "body": body, "channel": msg.channel, "media": msg.media[:10], "twilio_sid": msg.sid,
               "status": "received", "processed": False, "seq": time.time_ns(), "created_at": now,
               "updated_at": now}
        try:
            self.svc.db.messages.insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            return self.svc.db.messages.find_one({"key": doc["key"]}), False

    def _apply(self, key: str, sid: str, body: str) -> str:
        normal = words.normalise(body)
        optouts = self.svc.optouts
        if normal in words.OPT_OUT:
            optouts.opt_out(key, source="keyword")
            self._cancel_open_rescue(key, reason="rider opted out", by="rider")
            driver = self.svc.drivers.by_phone(key)
            if driver:  # offers could not reach them any more
                self.svc.dispatcher.go_offline(driver)
            return "opted-out"
        opted_out = optouts.is_opted_out(key)
        if normal in words.OPT_IN or (opted_out and normal == "yes"):
            optouts.opt_in(key, source="keyword")
            return "opted-in"
        if opted_out:
            return "ignored-opted-out"
        if not is_textable(key):
            return "ignored-unreachable"
        driver = self.svc.drivers.by_phone(key)
        if normal in words.HELP:
            self._reply(key, sid, [say("driver_help" if driver else "help")])
            return "help"
        if normal == "human":
            self.svc.db.conversations.update_one({"_id": key}, {"$set": {"needs_human": True,
                                                                          "needs_human_at": now_ms()}})
            self._reply(key, sid, [say("human_requested")])
            return "human-requested"
        if driver:
            return self._driver_step(driver, sid, body)
        return f"rider:{self._rider_step(key, sid, body).state}"

    def _rider_step(self, key: str, sid: str, body: str, channel: str = "sms") -> StepOutcome:
        convo = self.conversations.load(key, role="rider")
        if sid in convo.applied:  # a retry after the step was saved: its effects all happened
            return StepOutcome(convo.state, convo.data)
        open_rescue = self.svc.rescues.open_for_rider(key)
        aftercare = None if open_rescue else self.svc.payments.aftercare_for(key)
        ctx = FlowContext(locator=self.svc.locator, area=self.svc.settings.service_area,
                          max_trip_miles=self.svc.settings.max_trip_miles,
                          quote=self.svc.current_quote, open_rescue=open_rescue,
                          aftercare=Rescue.from_doc(aftercare) if aftercare else None, channel=channel)
        result = rider.step(convo.state, convo.data, body, ctx)
        created, texts = self._apply_effects(key, sid, result.effects, channel)
        if channel == "sms":
            self._reply(key, sid, texts)
        self.conversations.save(convo, result.state, result.data, applied_key=sid)
        return StepOutcome(result.state, result.data, [e for e in result.effects if isinstance(e, Reply)], created)

    def _apply_effects(self, key: str, sid: str, effects: list,
                       channel: str = "sms") -> tuple[Rescue | None, list[str]]:
        """Apply rescue changes in order; render replies with what those changes produced."""
        created: Rescue | None = None
        texts: list[str] = []
        for effect in effects:
            if isinstance(effect, CreateRescue):
                created = self.svc.rescues.create(request_key=f"{channel}:{sid}", rider_phone=key, channel=channel,
                                                  driver_pay_cents=self.svc.driver_pay(effect.quote_cents),
                                                  **effect.__dict__)
                log.info("rescue_created", rescue_id=created.id, code=created.code, phone=mask(key))
            elif isinstance(effect, CancelRescue):
                self._cancel(effect.rescue_id, effect.reason, by="rider")
            elif isinstance(effect, Relay):
                self._relay_to_driver(key, sid, effect.text)
            elif isinstance(effect, RateRescue):
                self.svc.payments.rate(effect.rescue_id, effect.stars, effect.comment)
            elif isinstance(effect, ResendPaymentLink):
                try:
                    self.svc.payments.resend(effect.rescue_id, by="rider")
                except PaymentError:
                    pass  # paid in the meantime: the receipt says so

            elif isinstance(effect, Reply):
                texts.append(say(effect.template, **{"rescue": created, **effect.context}))
        return created, texts

    def _driver_step(self, driver: dict[str, Any], sid: str, body: str) -> str:
        texts: list[str] = []
        for effect in driver_flow.step(driver, body, self.svc.locator):
            if isinstance(effect, Reply):
                texts.append(say(effect.template, **effect.context))
            elif isinstance(effect, Relay):
                self._relay_to_rider(driver, sid, effect.text)
            elif isinstance(effect, DriverCommand):
                outcome = self._driver_command(driver, effect)
                texts.append(say(outcome.template, **outcome.context))
        self._reply(driver["phone"], sid, texts)
        return f"driver:{driver.get('status')}"

    def _driver_command(self, driver: dict[str, Any], command: DriverCommand) -> Outcome:
        d = self.svc.dispatcher
        match command.name:
            case "go_online":
                return d.go_online(driver)
            case "go_offline":
                return d.go_offline(driver)
            case "accept":
                return d.accept(driver, command.code)
            case "decline":
                return d.decline(driver)
            case "drop":
                return d.drop(driver)
            case "locate":
                return d.update_location(driver, Point.from_json(command.place))
            case "status":
                return Outcome("driver_status", {"driver": driver})
            case _:
                return d.job_action(driver, command.name)

    def _relay_to_driver(self, rider_phone: str, sid: str, text: str) -> None:
        rescue = self.svc.rescues.open_for_rider(rider_phone)
        driver = self.svc.drivers.get(rescue.driver_id) if rescue and rescue.driver_id else None
        if driver:
            self.svc.outbox.queue_text(driver["phone"], say("relay_to_driver", code=rescue.code, text=text),
                                       key=f"relay:{sid}", rescue_id=rescue.id, kind="relay")

    def _relay_to_rider(self, driver: dict[str, Any], sid: str, text: str) -> None:
        rescue = self.svc.rescues.get(driver["rescue_id"]) if driver.get("rescue_id") else None
        if rescue and rescue.is_open:
            self.svc.outbox.queue_text(rescue.rider_phone, say("relay_to_rider", name=driver["name"], text=text),
                                       key=f"relay:{sid}", rescue_id=rescue.id, kind="relay")

    def _cancel_open_rescue(self, key: str, reason: str, by: str) -> None:
        rescue = self.svc.rescues.open_for_rider(key)
        if rescue:
            self._cancel(rescue.id, reason, by)

    def _cancel(self, rescue_id: str, reason: str, by: str) -> None:
        try:
            self.svc.dispatcher.cancel(rescue_id, reason, by=by)
        except DispatchError:
            pass  # already closed: nothing left to cancel

    def _reply(self, key: str, sid: str, texts: list[str]) -> None:
        if texts:
            self.svc.outbox.queue_text(key, "\n\n".join(texts), key=f"reply:{sid}", kind="reply")
