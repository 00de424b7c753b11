"""The conversation engine: inbound message in, flow step, effects applied, replies out.

Order of work for one inbound text: the webhook records it (idempotent on MessageSid) and
kicks the inbound drain; the drain, under the sender's lock, runs carrier keywords -> the
flow for the sender's role -> applies the effects, each idempotent on a key derived from
the MessageSid -> saves the conversation -> marks the message applied. A drain re-run
after a crash anywhere in that sequence redoes it without doubling any effect.

Calls (conversations.voice) go through the same flows and the same effect handlers; only
their words are spoken instead of texted.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

from conversations.intake import group_for
from dispatch.bootstrap import Services
from dispatch.dispatcher import DriverResult
from dispatch.holding import release
from dispatch.model import events as ev
from dispatch.model import message as m
from dispatch.model.account import Identity
from dispatch.model.clock import now_ms
from dispatch.model.driver import Driver
from dispatch.model.errors import DomainError
from dispatch.model.geo import Point
from dispatch.model.phones import is_textable, mask, sender_key
from dispatch.model.rescue import Rescue
from dispatch.ports import Busy
from dispatch.texts import ENGLISH, say
from flows import dispatcher as desk_flow
from flows import driver as driver_flow
from flows import rider, words
from flows.effects import (
    Accept,
    CancelRescue,
    CreateRescue,
    Decline,
    DeskCommand,
    Drop,
    Effect,
    FlowContext,
    GoOffline,
    GoOnline,
    JobStep,
    Locate,
    OpenHelpRequest,
    RateRescue,
    RecordCall,
    Relay,
    Reply,
    ResendPaymentLink,
    SendText,
    StepResult,
    TextParty,
)

log = structlog.get_logger(__name__)

JOB_LOCK_WAIT_SECONDS = 60.0
LANE_LOCK_WAIT_SECONDS = 2.0  # in a drain a busy number is skipped, not waited for
# A step takes milliseconds (seconds with a slow geocoder); a process killed holding the
# lock blocks that number until the TTL runs out.
PHONE_LOCK_TTL_SECONDS = 15
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


class UnknownEffect(TypeError):
    """A flow asked for something the engine has no handler for: a bug, never ignored."""


@dataclass
class Inbound:
    sid: str
    sender: str
    body: str
    channel: str = m.SMS
    media: list[str] = field(default_factory=list)


def request_key(channel: str, step_key: str) -> str:
    """What makes a booking one booking: the channel and the text (or call step) that made it."""
    return f"{channel}:{step_key}"


@dataclass
class Turn:
    """One message's worth of effects being applied, and what they produced."""
    phone: str
    key: str  # the step's idempotency key (the MessageSid, or a call step)
    channel: str = m.SMS
    driver: Driver | None = None
    lang: str = ENGLISH  # the words of replies and texts to this person
    created: Rescue | None = None
    # Words every reply of this turn may use (a rider's driver, ETA and tracking link).
    context: dict[str, Any] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    results: list[DriverResult] = field(default_factory=list)
    desk: Identity | None = None  # an active dispatcher texting commands (PRODUCT.md §8)


class Engine:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.conversations = svc.conversations
        d = svc.dispatcher
        self._handlers: dict[type, Callable[[Turn, Any], None]] = {
            Reply: self._say, SendText: self._send_text, TextParty: self._text_party, Relay: self._relay,
            CreateRescue: self._create_rescue, CancelRescue: self._cancel_rescue, RateRescue: self._rate,
            ResendPaymentLink: self._resend_link, OpenHelpRequest: self._open_help_request,
            RecordCall: self._record_call, DeskCommand: self._desk_command,
            GoOnline: self._command(lambda t, e: d.go_online(t.driver)),
            GoOffline: self._command(lambda t, e: d.go_offline(t.driver)),
            Accept: self._command(lambda t, e: d.accept(t.driver, e.code)),
            Decline: self._command(lambda t, e: d.decline(t.driver)),
            JobStep: self._command(lambda t, e: d.job_action(t.driver, e.action)),
            Drop: self._command(lambda t, e: d.drop(t.driver)),
            Locate: self._command(lambda t, e: d.update_location(t.driver, Point.from_json(e.place))),
        }

    # -- the webhook's part and the drain ---------------------------------------------------
    def accept(self, msg: Inbound) -> str:
        """The webhook's whole part: record the text once (MongoDB is the record) and queue
        its step. Answering Twilio never waits on a flow, a lock or the number's previous
        text; replies go out by SMS jobs anyway. If Redis is down no drain is kicked and the
        sweeper kicks one once it is back. Texts arriving together in this process share one
        insert and one kick (`conversations.intake`); a failed insert raises here for each."""
        key = sender_key(msg.sender, self.svc.settings.default_region)
        if key is None:
            return "no-sender"
        if not group_for(self.svc).record(self._inbound_doc(key, msg, words.clean(msg.body))):
            log.info("inbound_duplicate", phone=mask(key), sid=msg.sid)
            return "duplicate"
        return "queued"

    def hold(self, msg: Inbound) -> str:
        """The webhook's part while MongoDB does not answer: keep the text in Redis, once per
        MessageSid, stamped with its arrival order. The sweeper records it once MongoDB
        answers again (`dispatch.holding`); raises the Redis error if Redis is down too."""
        key = sender_key(msg.sender, self.svc.settings.default_region)
        if key is None:
            return "no-sender"
        if not self.svc.held.hold(msg.sid, self._inbound_doc(key, msg, words.clean(msg.body))):
            return "duplicate"
        log.warning("inbound_held", phone=mask(key), sid=msg.sid)
        return "held"

    def apply_pending(self) -> int:
        """One batch of the inbound drain: the oldest unapplied texts, one lane per number on
        a thread pool (a number's texts in order, different numbers side by side). Returns
        how many texts it looked at, or 0 if it moved no number on, so a drain stops when only
        a busy number (a call in progress) or a failing text is left: those wait for the next
        kick or the sweeper's. Texts held in Redis through a MongoDB outage arrived first: they
        are recorded before each look."""
        release(self.svc.held, self.svc.messages)
        batch = self.svc.messages.unapplied(INBOUND_BATCH)
        if not batch:
            return 0
        last: dict[str, dict[str, Any]] = {}
        for doc in batch:  # each number's latest: applying it applies the earlier ones first
            last[doc["phone"]] = doc
        outcomes = list(_pool().map(self._apply_lane, last.values()))
        return len(batch) if any(outcome not in ("busy", "failed") for outcome in outcomes) else 0

    def _apply_lane(self, seen: dict[str, Any]) -> str:
        try:
            return self.apply_recorded(seen["_id"], wait=LANE_LOCK_WAIT_SECONDS, seen=seen)
        except Busy:
            return "busy"
        except Exception:
            log.exception("inbound_apply_failed", message_id=seen["_id"])
            return "failed"

    @contextmanager
    def phone_lock(self, phone: str, wait: float) -> Iterator[None]:
        """One message per number at a time across every process (re-entrant per thread:
        a call's step runs under the lock its callback already holds)."""
        with self.svc.locks.hold(f"phone:{phone}", PHONE_LOCK_TTL_SECONDS, wait) as got:
            if not got:
                raise Busy(phone)
            yield

    def apply_recorded(self, message_id: str, wait: float = JOB_LOCK_WAIT_SECONDS,
                       seen: dict[str, Any] | None = None) -> str:
        """Apply a recorded text, and before it every earlier unapplied text from the same
        number, in arrival order, under the number's lock: two workers picking up two texts
        from one rider still apply them one at a time and in order. `seen`: the text's phone
        and seq as the drain's look found it unapplied (saves reading it again; under the lock
        the number's unapplied texts are read anyway, so one applied meanwhile is skipped)."""
        doc = seen or self.svc.messages.inbound(message_id)
        if doc is None or doc.get("processed"):
            return "done"
        outcome = "done"
        with self.phone_lock(doc["phone"], wait):
            for pending in self.svc.messages.unapplied_from(doc["phone"]):
                if pending.get("seq", 0) > doc.get("seq", 0):
                    break  # later texts wait for the drain's next look, after this one
                result = self._apply_recorded(pending)
                if pending["_id"] == message_id:
                    outcome = result
        return outcome

    def voice_step(self, caller: str, step_key: str, said: str) -> StepResult | None:
        """One answer in a voice intake: the rider flow exactly as for a text, in the same
        conversation, but answered by the caller's TwiML instead of SMS replies. None when
        the caller is over the flood limit."""
        key = sender_key(caller, self.svc.settings.default_region)
        if key is None:
            return None
        msg = Inbound(sid=f"voice:{step_key}", sender=caller, body=said, channel=m.VOICE)
        with self.phone_lock(key, self.svc.settings.phone_lock_wait_seconds):
            record, _ = self._record_inbound(key, msg, words.clean(said))
            if record.get("processed"):
                convo = self.conversations.load(key, role="rider")
                return StepResult(convo.state, convo.data, language=convo.language,
                                  language_chosen=convo.language_chosen)
            if self._flooded(key):
                self._finish(record, "rate-limited")
                return None
            # no carrier keywords by voice: a caller saying "stop" means no harm
            step = self._rider_step(key, msg.sid, record["body"], channel=m.VOICE)
            self._finish(record, f"rider:{step.state}")
            return step

    def run(self, turn: Turn, effects: list[Effect]) -> Turn:
        """Apply effects in order, each with the handler of its type."""
        for effect in effects:
            handler = self._handlers.get(type(effect))
            if handler is None:
                raise UnknownEffect(f"no handler for {type(effect).__name__}")
            handler(turn, effect)
        return turn

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
        return self.svc.limits.hit(f"in:{key}", s.inbound_rate_window_seconds) > s.inbound_rate_limit

    def _finish(self, record: dict[str, Any], outcome: str) -> None:
        status = "rate_limited" if outcome == "rate-limited" else outcome
        self.svc.messages.mark_applied(record["_id"], status)
        self.svc.metrics.text_in(record.get("channel", m.SMS), outcome)
        log.info("inbound_applied", phone=mask(record["phone"]), sid=record["twilio_sid"], outcome=outcome,
                 channel=record.get("channel", m.SMS))

    @staticmethod
    def _inbound_doc(key: str, msg: Inbound, body: str) -> dict[str, Any]:
        """The inbound record. `seq` orders a number's texts as they arrived."""
        now = now_ms()
        return {"_id": uuid.uuid4().hex, "key": f"in:{msg.sid}", "direction": m.IN, "phone": key,
                "body": body, "channel": msg.channel, "media": msg.media[:10], "twilio_sid": msg.sid,
                "status": "received", "processed": False, "seq": time.time_ns(), "created_at": now,
                "updated_at": now}

    def _record_inbound(self, key: str, msg: Inbound, body: str) -> tuple[dict[str, Any], bool]:
        """(the record, whether it is new)."""
        doc = self._inbound_doc(key, msg, body)
        if self.svc.messages.add(doc):
            return doc, True
        return self.svc.messages.by_key(doc["key"]), False

    def _apply(self, key: str, sid: str, body: str) -> str:
        normal = words.normalise(body)
        optouts = self.svc.optouts
        if normal in words.OPT_OUT:
            self.svc.delivery.opt_out(key, source="keyword")
            rescue = self.svc.rescues.open_for_rider(key)
            if rescue:
                self._cancel(rescue.id, reason="rider opted out", by="rider")
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
        account = None if driver else self.svc.accounts.active_by_phone(key)
        if account:  # a dispatcher's HELP is the dispatcher's help
            turn = self.run(Turn(key, sid, desk=account.identity, lang=account.language), desk_flow.step(body))
            self._reply(key, sid, turn.texts)
            return "dispatcher"
        if normal in words.HELP:
            lang = driver.language if driver else self.conversations.load(key, role="rider").language
            self._reply(key, sid, [say("driver_help" if driver else "help", lang=lang)])
            return "help"
        if driver:
            turn = self.run(Turn(key, sid, driver=driver, lang=driver.language),
                            driver_flow.step(driver, body, self.svc.locator))
            self._reply(key, sid, turn.texts)
            return f"driver:{driver.status}"
        return f"rider:{self._rider_step(key, sid, body).state}"

    def _rider_step(self, key: str, sid: str, body: str, channel: str = m.SMS) -> StepResult:
        convo = self.conversations.load(key, role="rider")
        if sid in convo.applied:  # a retry after the step was saved: its effects all happened
            return StepResult(convo.state, convo.data, language=convo.language, language_chosen=convo.language_chosen)
        open_rescue = self.svc.rescues.open_for_rider(key)
        if open_rescue is not None and open_rescue.extra.get("request_key") == request_key(channel, sid):
            # This very text booked it, on a run that died before the step was saved: the step
            # runs again as it first did (booking returns that rescue), so the rider gets the
            # words of their booking rather than "your rescue is open".
            open_rescue = None
        s = self.svc.settings
        ctx = FlowContext(locator=self.svc.locator, area=s.service_area, max_trip_miles=s.max_trip_miles,
                          quote=self.svc.current_quote, open_rescue=open_rescue,
                          find_aftercare=None if open_rescue else lambda: self.svc.payments.aftercare_for(key),
                          channel=channel,
                          language=convo.language if convo.version else None, language_chosen=convo.language_chosen)
        result = rider.step(convo.state, convo.data, body, ctx)
        replies = any(isinstance(e, Reply) for e in result.effects)
        turn = self.run(Turn(key, sid, channel=channel, lang=result.language,
                             context=self._rescue_context(open_rescue) if replies else {}), result.effects)
        if channel == m.SMS:
            self._reply(key, sid, turn.texts)
        convo.language, convo.language_chosen = result.language, result.language_chosen
        self.conversations.save(convo, result.state, result.data, applied_key=sid)
        result.rescue = turn.created
        return result

    # -- effect handlers -----------------------------------------------------------------
    def _rescue_context(self, rescue: Rescue | None) -> dict[str, Any]:
        """For a rider whose rescue has a driver: the driver (first name, vehicle), the ETA every
        surface shows, and the tracking link (PRODUCT.md §9), for the replies that mention them
        (STATUS)."""
        driver = self.svc.drivers.get(rescue.driver_id) if rescue and rescue.driver_id else None
        if driver is None:
            return {}
        return {"driver": driver, "eta": self.svc.tracking.eta_minutes(rescue, driver),
                "track_url": self.svc.links.track_url(rescue)}

    def _say(self, turn: Turn, effect: Reply) -> None:
        context = {"rescue": turn.created, **turn.context, **effect.context}
        turn.texts.append(say(effect.template, lang=turn.lang, **context))

    def _send_text(self, turn: Turn, effect: SendText) -> None:
        self.svc.outbox.queue_text(turn.phone, say(effect.template, lang=turn.lang, **effect.context),
                                   key=effect.key or f"text:{turn.key}", rescue_id=effect.rescue_id,
                                   kind=effect.template)

    def _text_party(self, turn: Turn, effect: TextParty) -> None:
        rescue = self.svc.rescues.get(effect.rescue_id)
        if rescue is None:
            return
        party = rescue if effect.to == "rider" else self.svc.drivers.get(rescue.driver_id or "")
        if party:
            number = party.rider_phone if party is rescue else party.phone
            self.svc.outbox.queue_text(number, say(effect.template, lang=party.language, rescue=rescue, to=effect.to),
                                       key=effect.key, rescue_id=rescue.id, kind=effect.template)

    def _relay(self, turn: Turn, effect: Relay) -> None:
        """Through the rescue number: neither party sees the other's."""
        if turn.driver:
            driver = turn.driver
            rescue = self.svc.rescues.get(driver.rescue_id) if driver.rescue_id else None
            if rescue and rescue.is_open:
                words = say("relay_to_rider", lang=rescue.language, name=driver.name, text=effect.text)
                self.svc.outbox.queue_text(rescue.rider_phone, words, key=f"relay:{turn.key}", rescue_id=rescue.id,
                                           kind="relay")
            return
        rescue = self.svc.rescues.open_for_rider(turn.phone)
        driver = self.svc.drivers.get(rescue.driver_id) if rescue and rescue.driver_id else None
        if driver:
            self.svc.outbox.queue_text(driver.phone, say("relay_to_driver", lang=driver.language, code=rescue.code,
                                                         text=effect.text),
                                       key=f"relay:{turn.key}", rescue_id=rescue.id, kind="relay")

    def _create_rescue(self, turn: Turn, effect: CreateRescue) -> None:
        turn.created = self.svc.lifecycle.create(
            request_key=request_key(turn.channel, turn.key), rider_phone=turn.phone, channel=turn.channel,
            driver_pay_cents=self.svc.driver_pay(effect.quote_cents), language=turn.lang, **effect.__dict__)
        log.info("rescue_created", rescue_id=turn.created.id, code=turn.created.code, phone=mask(turn.phone))

    def _cancel_rescue(self, turn: Turn, effect: CancelRescue) -> None:
        self._cancel(effect.rescue_id, effect.reason, by="rider")

    def _rate(self, turn: Turn, effect: RateRescue) -> None:
        self.svc.payments.rate(effect.rescue_id, effect.stars, effect.comment)

    def _resend_link(self, turn: Turn, effect: ResendPaymentLink) -> None:
        try:
            self.svc.payments.resend(effect.rescue_id, by="rider")
        except DomainError:
            pass  # paid in the meantime: the receipt says so

    def _open_help_request(self, turn: Turn, effect: OpenHelpRequest) -> None:
        self.svc.help_desk.open(turn.phone, effect.reason, effect.text, rescue_id=effect.rescue_id, language=turn.lang)

    def _record_call(self, turn: Turn, effect: RecordCall) -> None:
        kind = ev.CallConnected if effect.dial_status == "completed" else ev.CallFailed
        self.svc.bus.publish(kind(rescue_id=effect.rescue_id, by=effect.by, to=effect.to,
                                  dial_status=effect.dial_status, duration=effect.duration))

    def _desk_command(self, turn: Turn, effect: DeskCommand) -> None:
        """A dispatcher's command: the shift acts under their role, the dispatcher flow says what happened."""
        shift, who = self.svc.shift, turn.desk
        if effect.verb == "list":
            result = shift.listing()
        elif effect.verb == "status":
            result = shift.standing(effect.code)
        elif effect.verb == "assign":
            result = shift.assign(who, effect.code, effect.rest)
        else:
            result = shift.cancel(who, effect.code, effect.rest)
        reply = desk_flow.reply_for(result)
        turn.texts.append(say(reply.template, lang=turn.lang, **reply.context))

    def _command(self, run: Callable[[Turn, Any], DriverResult]) -> Callable[[Turn, Any], None]:
        """A driver's command: the dispatcher acts, and the driver flow says what happened."""
        def handle(turn: Turn, effect: Any) -> None:
            result = run(turn, effect)
            turn.results.append(result)
            reply = driver_flow.reply_for(result)
            turn.texts.append(say(reply.template, lang=turn.lang, **reply.context))
        return handle

    # -- helpers -------------------------------------------------------------------------
    def _cancel(self, rescue_id: str, reason: str, by: str) -> None:
        try:
            self.svc.dispatcher.cancel(rescue_id, reason, by=by)
        except DomainError:
            pass  # already closed: nothing left to cancel

    def _reply(self, key: str, sid: str, texts: list[str]) -> None:
        """Only in a step of `_apply`, after the registry said the number may be texted, under
        the number's lock: the send need not read it again (`Outbox.queue_text`)."""
        if texts:
            self.svc.outbox.queue_text(key, "\n\n".join(texts), key=f"reply:{sid}", kind="reply",
                                       registry_read=True)
