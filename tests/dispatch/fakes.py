"""In-memory fakes of the ports (dispatch/ports.py), in the style of cosmic python's
FakeRepository: enough behaviour to test the business rules in milliseconds, without
MongoDB or Redis. They are never a stand-in for the real adapters, which the rest of the
suite runs against the real servers; tests/dispatch/adapters checks the store semantics the
fakes copy (conditional updates, duplicate keys).

`core()` wires the real business rules (dispatch.bootstrap.Core) over a fresh set of them.
"""
from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from dispatch.bootstrap import Core
from dispatch.config import Settings
from dispatch.model import help_request as hr
from dispatch.model import message as m
from dispatch.model import offer as of
from dispatch.model.clock import now_ms
from dispatch.model.driver import AVAILABLE, ONLINE_STATUSES, Driver, DuplicateDriver
from dispatch.model.events import Event
from dispatch.model.geo import Point, distance_km
from dispatch.model.help_request import HelpRequest
from dispatch.model.link import Link
from dispatch.model.offer import Offer
from dispatch.model.rescue import COMPLETED, OPEN_STATUSES, PAY_NONE, SEARCHING, STATUSES, UNFULFILLED, Rescue
from dispatch.ports import ANY, GeocoderUnavailable, PaymentUnavailable, RoutingUnavailable, SendFailed

CANDIDATES_PER_STEP = 50


def _copy(obj):
    return copy.deepcopy(obj)


class FakeRescues:
    def __init__(self) -> None:
        self.rows: dict[str, Rescue] = {}
        self._seq = itertools.count(1001)

    def _doc(self, rescue_id: str) -> dict[str, Any] | None:
        rescue = self.rows.get(rescue_id)
        return rescue.to_doc() if rescue else None

    def _set(self, rescue_id: str, fields: dict[str, Any]) -> Rescue:
        doc = {**self.rows[rescue_id].to_doc(), **_copy(fields)}
        self.rows[rescue_id] = Rescue.from_doc(doc)
        return _copy(self.rows[rescue_id])

    def next_seq(self) -> int:
        return next(self._seq)

    def add(self, rescue: Rescue) -> bool:
        if self.by_request_key(rescue.extra["request_key"]):
            return False
        self.rows[rescue.id] = _copy(rescue)
        return True

    def get(self, rescue_id: str) -> Rescue | None:
        return _copy(self.rows.get(rescue_id))

    def by_request_key(self, key: str) -> Rescue | None:
        return next((_copy(r) for r in self.rows.values() if r.extra.get("request_key") == key), None)

    def _newest(self, rows) -> list[Rescue]:
        return [_copy(r) for r in sorted(rows, key=lambda r: (r.created_at, r.extra.get("seq", 0)), reverse=True)]

    def open_for_rider(self, phone: str) -> Rescue | None:
        found = self._newest(r for r in self.rows.values() if r.rider_phone == phone and r.is_open)
        return found[0] if found else None

    def by_code(self, code: str) -> Rescue | None:
        return next((_copy(r) for r in self.rows.values() if r.code == code), None)

    def list(self, status: str | None = None, limit: int = 50, offset: int = 0) -> list[Rescue]:
        return self._newest(r for r in self.rows.values() if status in (None, r.status))[offset:offset + limit]

    def count_open(self) -> int:
        return sum(r.is_open for r in self.rows.values())

    def count_by_status(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.rows.values()) for s in STATUSES}

    def on_board(self, unfulfilled_since: int, limit: int) -> list[Rescue]:
        return self._newest(r for r in self.rows.values() if r.status in OPEN_STATUSES
                            or (r.status == UNFULFILLED and r.updated_at > unfulfilled_since))[:limit]

    def created_since(self, since: int) -> dict[str, int]:
        return {r.id: r.created_at for r in self.rows.values() if r.created_at >= since}

    def compare_and_set(self, rescue_id: str, version: int, status: str, fields: dict[str, Any]) -> Rescue | None:
        rescue = self.rows.get(rescue_id)
        if rescue is None or rescue.version != version or rescue.status != status:
            return None
        return self._set(rescue_id, fields)

    def set_fields(self, rescue_id: str, fields: dict[str, Any]) -> None:
        if rescue_id in self.rows:
            self._set(rescue_id, {**fields, "updated_at": now_ms()})

    def _claim(self, rescue_id: str, ok, fields: dict[str, Any]) -> bool:
        doc = self._doc(rescue_id)
        if doc is None or not ok(doc):
            return False
        self._set(rescue_id, fields)
        return True

    def claim_next_dispatch(self, rescue_id: str, now: int, due: int) -> bool:
        return self._claim(rescue_id, lambda d: d["status"] == SEARCHING and int(d.get("next_dispatch_at") or 0) < now,
                           {"next_dispatch_at": due})

    def claim_rider_update(self, rescue_id: str, last: int | None, now: int) -> bool:
        return self._claim(rescue_id, lambda d: d["status"] == SEARCHING and d.get("rider_updated_at") == last,
                           {"rider_updated_at": now})

    def waiting_for_retry(self, now: int, limit: int) -> list[str]:
        waiting = [r for r in self.rows.values()
                   if r.status == SEARCHING and int(r.extra.get("next_dispatch_at") or 0) > now]
        return [r.id for r in sorted(waiting, key=lambda r: r.created_at)][:limit]

    def overdue_searching(self, before: int, limit: int) -> list[str]:
        return [r.id for r in self.rows.values()
                if r.status == SEARCHING and int(r.extra.get("next_dispatch_at") or 0) < before][:limit]

    def completed_without_link(self, before: int, limit: int) -> list[str]:
        return [r.id for r in self.rows.values()
                if r.status == COMPLETED and r.payment_status == PAY_NONE and r.updated_at < before][:limit]

    def claim_payment_link(self, rescue_id, current_session, payable, fields) -> bool:
        return self._claim(rescue_id, lambda d: d.get("payment_session_id") == current_session
                           and d.get("payment_status") in payable, {**fields, "updated_at": now_ms()})

    def bump_payment_attempt(self, rescue_id: str, expected: int | None, attempt: int) -> None:
        self._claim(rescue_id, lambda d: d.get("payment_attempt") == expected, {"payment_attempt": attempt})

    def rate(self, rescue_id: str, stars: int, comment: str, at: int) -> Rescue | None:
        if not self._claim(rescue_id, lambda d: d.get("rating") is None,
                           {"rating": stars, "rating_comment": comment, "rated_at": at}):
            return None
        return self.get(rescue_id)

    def latest_completed(self, rider_phone: str, updated_since: int) -> Rescue | None:
        found = self._newest(r for r in self.rows.values() if r.rider_phone == rider_phone
                             and r.status == COMPLETED and r.updated_at > updated_since)
        return found[0] if found else None

    def claim_arriving(self, rescue_id: str, event_id: str, at: int) -> bool:
        return self._claim(rescue_id, lambda d: d.get("arriving_at") is None,
                           {"arriving_at": at, "arriving_event_id": event_id})


class FakeRiders:
    def __init__(self) -> None:
        self.rescues: dict[str, int] = defaultdict(int)

    def count_rescue(self, phone: str, at: int) -> None:
        self.rescues[phone] += 1


class FakeDrivers:
    def __init__(self) -> None:
        self.rows: dict[str, Driver] = {}

    def add(self, driver: Driver) -> None:
        if any(d.phone == driver.phone for d in self.rows.values()):
            raise DuplicateDriver(driver.phone)
        self.rows[driver.id] = _copy(driver)

    def get(self, driver_id: str) -> Driver | None:
        return _copy(self.rows.get(driver_id))

    def by_phone(self, phone: str) -> Driver | None:
        return next((_copy(d) for d in self.rows.values() if d.phone == phone), None)

    def many(self, ids) -> dict[str, Driver]:
        return {i: _copy(self.rows[i]) for i in ids if i in self.rows}

    def all(self) -> list[Driver]:
        return [_copy(d) for d in self.rows.values()]

    def list(self, limit: int = 100, offset: int = 0) -> list[Driver]:
        return sorted(self.all(), key=lambda d: d.created_at)[offset:offset + limit]

    def available(self) -> list[Driver]:
        return [d for d in self.all() if d.status == AVAILABLE]

    def count_online(self, active_only: bool = True) -> int:
        return sum(d.status in ONLINE_STATUSES and (d.active or not active_only) for d in self.rows.values())

    def _set(self, driver_id: str, fields: dict[str, Any]) -> Driver:
        self.rows[driver_id] = replace(self.rows[driver_id], **_copy(fields), updated_at=now_ms())
        return _copy(self.rows[driver_id])

    def update_profile(self, driver_id: str, fields: dict[str, Any]) -> Driver | None:
        return self._set(driver_id, fields) if driver_id in self.rows else None

    def move(self, driver_id, sources, *, holding_offer=ANY, on_rescue=ANY, **fields) -> Driver | None:
        d = self.rows.get(driver_id)
        if d is None or (sources is not None and d.status not in sources) \
                or (holding_offer is not ANY and d.offer_id != holding_offer) \
                or (on_rescue is not ANY and d.rescue_id != on_rescue):
            return None
        return self._set(driver_id, fields)

    def set_location(self, driver_id: str, location: dict[str, Any], at: int) -> Driver | None:
        if driver_id not in self.rows:
            return None
        return self._set(driver_id, {"location": location, "location_updated_at": at})

    def unchanged_since(self, status: str, before: int) -> list[Driver]:
        return [_copy(d) for d in self.rows.values() if d.status == status and d.updated_at < before]

    def add_rating(self, driver_id: str, stars: int) -> None:
        d = self.rows[driver_id]
        self.rows[driver_id] = replace(d, rating_count=d.rating_count + 1, rating_sum=d.rating_sum + stars)


class FakeOffers:
    def __init__(self) -> None:
        self.rows: dict[str, Offer] = {}

    def add(self, offer: Offer) -> None:
        self.rows[offer.id] = _copy(offer)

    def get(self, offer_id: str | None) -> Offer | None:
        return _copy(self.rows.get(offer_id or ""))

    def move(self, offer_id, sources, **fields) -> Offer | None:
        offer = self.rows.get(offer_id)
        if offer is None or (sources is not None and offer.status not in sources):
            return None
        self.rows[offer_id] = replace(offer, **fields)
        return _copy(self.rows[offer_id])

    def claim_unexpired(self, offer_id: str, now: int) -> Offer | None:
        offer = self.rows.get(offer_id)
        if offer is None or offer.status != of.OPEN or offer.expires_at <= now:
            return None
        return self.move(offer_id, None, status=of.ACCEPTING, answered_at=now)

    def count_live(self, rescue_id: str) -> int:
        return sum(o.rescue_id == rescue_id and o.status in of.LIVE for o in self.rows.values())

    def for_rescue(self, rescue_id: str, status: str | None = None) -> list[Offer]:
        return [_copy(o) for o in self.rows.values() if o.rescue_id == rescue_id and status in (None, o.status)]

    def latest_for_driver(self, driver_id: str, rescue_code: str | None = None) -> Offer | None:
        mine = [o for o in self.rows.values() if o.driver_id == driver_id and rescue_code in (None, o.rescue_code)]
        return _copy(max(mine, key=lambda o: o.created_at)) if mine else None

    def recent_for_driver(self, driver_id: str, since: int, limit: int) -> list[Offer]:
        # Newest first; a driver holds one offer at a time, so within one millisecond the later one was made later.
        mine = [(o.created_at, n, o) for n, o in enumerate(self.rows.values())
                if o.driver_id == driver_id and o.created_at >= since]
        return [_copy(o) for _, _, o in sorted(mine, key=lambda t: t[:2], reverse=True)[:limit]]

    def drop_accepted(self, rescue_id: str, driver_id: str) -> None:
        for o in list(self.rows.values()):
            if o.rescue_id == rescue_id and o.driver_id == driver_id and o.status == of.ACCEPTED:
                self.rows[o.id] = replace(o, status=of.DROPPED)

    def expired_open(self, before: int, limit: int) -> list[Offer]:
        return [_copy(o) for o in self.rows.values() if o.status == of.OPEN and o.expires_at < before][:limit]

    def stuck_accepting(self, before: int, limit: int) -> list[Offer]:
        return [_copy(o) for o in self.rows.values()
                if o.status == of.ACCEPTING and (o.answered_at or 0) < before][:limit]


class FakeEventStore:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def _row(self, event_id: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["event"].id == event_id)

    def append(self, event: Event, handled: bool) -> None:
        self.rows.append({"event": event, "handled": handled, "redelivered": 0})

    def mark_handled(self, event_id: str) -> None:
        self._row(event_id)["handled"] = True

    def unhandled(self, older_than: int, limit: int) -> list[tuple[Event, int]]:
        return [(replace(r["event"], redelivered=True), r["redelivered"]) for r in self.rows
                if not r["handled"] and r["event"].at < older_than][:limit]

    def count_redelivery(self, event_id: str) -> None:
        self._row(event_id)["redelivered"] += 1

    def give_up(self, event_id: str) -> None:
        self._row(event_id).update(handled=True, gave_up=True)

    def timeline(self, rescue_id: str) -> list[dict[str, Any]]:
        return [{"type": r["event"].type, "by": r["event"].by, "at": r["event"].at, "data": r["event"].data}
                for r in self.rows if r["event"].rescue_id == rescue_id]

    def of_types_since(self, types, since: int) -> list[Event]:
        return [r["event"] for r in self.rows if r["event"].type in types and r["event"].at >= since]

    def types(self, rescue_id: str) -> list[str]:
        return [e["type"] for e in self.timeline(rescue_id)]


class FakeMessages:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.receipts: dict[str, dict[str, Any]] = {}

    def add(self, doc: dict[str, Any]) -> bool:
        if self.by_key(doc["key"]):
            return False
        self.rows[doc["_id"]] = _copy(doc)
        return True

    def add_many(self, docs: list[dict[str, Any]]) -> list[bool]:
        return [self.add(doc) for doc in docs]

    def by_key(self, key: str) -> dict[str, Any] | None:
        return next((_copy(d) for d in self.rows.values() if d["key"] == key), None)

    def get(self, message_id: str) -> dict[str, Any] | None:
        return _copy(self.rows.get(message_id))

    def unsent(self, limit: int) -> list[dict[str, Any]]:
        waiting = [d for d in self.rows.values()
                   if d["direction"] == m.OUT and d["status"] == m.PENDING and d["attempts"] == 0]
        return [_copy(d) for d in sorted(waiting, key=lambda d: d["created_at"])][:limit]

    def unfinished(self, limit: int) -> list[dict[str, Any]]:
        rows = [d for d in self.rows.values() if d["direction"] == m.OUT and d["status"] in (m.PENDING, m.SENDING)]
        return [_copy(d) for d in sorted(rows, key=lambda d: (d["created_at"], d.get("seq", 0)))][:limit]

    def unfinished_to(self, phone: str, limit: int) -> list[dict[str, Any]]:
        rows = [d for d in self.rows.values()
                if d["phone"] == phone and d["direction"] == m.OUT and d["status"] in (m.PENDING, m.SENDING)]
        return [_copy(d) for d in sorted(rows, key=lambda d: (d["created_at"], d.get("seq", 0)))][:limit]

    def stale_pending(self, older_than: int, limit: int) -> list[str]:
        return [d["_id"] for d in self.rows.values()
                if d["direction"] == m.OUT and d["status"] == m.PENDING and d["updated_at"] < older_than][:limit]

    def touch(self, message_id: str) -> None:
        self.rows[message_id]["updated_at"] = now_ms()

    def claim(self, message_id: str, at: int) -> dict[str, Any] | None:
        d = self.rows.get(message_id)
        if d is None or d["status"] != m.PENDING:
            return None
        before = dict(d)
        d.update(status=m.SENDING, status_rank=m.STATUS_RANK[m.SENDING], claimed_at=at, attempts=d["attempts"] + 1,
                 waited_on=False, receipt_early=False)
        return before

    def finish(self, message_id: str, expect: str, status: str, **fields: Any) -> dict[str, Any] | None:
        d = self.rows.get(message_id)
        if d is None or d["status"] != expect:
            return None
        before = {"_id": message_id, "waited_on": d.get("waited_on", False),
                  "receipt_early": d.get("receipt_early", False)}
        d.update(status=status, status_rank=m.STATUS_RANK[status], updated_at=now_ms(), **fields)
        return before

    def withdraw_queued(self, phone: str, error_code: str | None) -> int:
        queued = [d for d in self.rows.values()
                  if d["phone"] == phone and d["direction"] == m.OUT and d["status"] == m.PENDING]
        for d in queued:
            d.update(status=m.SUPPRESSED, status_rank=m.STATUS_RANK[m.SUPPRESSED], error_code=error_code,
                     updated_at=now_ms())
        return len(queued)

    def wait_behind(self, message_id: str) -> bool:
        d = self.rows.get(message_id)
        if d is None or d["status"] != m.SENDING:
            return False
        d["waited_on"] = True
        return True

    def expect_receipt(self) -> None:
        for d in self.rows.values():
            if d["direction"] == m.OUT and d["status"] == m.SENDING:
                d["receipt_early"] = True

    def stuck_sending(self, claimed_before: int, limit: int) -> list[dict[str, Any]]:
        return [_copy(d) for d in self.rows.values()
                if d["status"] == m.SENDING and d.get("claimed_at", 0) < claimed_before][:limit]

    def has_sid(self, twilio_sid: str) -> bool:
        return any(d.get("twilio_sid") == twilio_sid for d in self.rows.values())

    def keep_receipt(self, twilio_sid: str, fields: dict[str, Any]) -> None:
        if self.receipts.get(twilio_sid, {}).get("status_rank", -1) < fields["status_rank"]:
            self.receipts[twilio_sid] = dict(fields)

    def receipt(self, twilio_sid: str) -> dict[str, Any] | None:
        return self.receipts.get(twilio_sid)

    def advance(self, twilio_sid: str, fields: dict[str, Any]) -> bool:
        for d in self.rows.values():
            if d.get("twilio_sid") == twilio_sid and d["status_rank"] < fields["status_rank"]:
                d.update(fields)
                return True
        return False

    def unapplied_before(self, before: int) -> bool:
        return any(d["direction"] == m.IN and not d.get("processed") and d["created_at"] < before
                   for d in self.rows.values())

    def to(self, phone: str) -> list[dict[str, Any]]:
        """Texts queued for `phone`, oldest first (a test's view)."""
        return sorted((d for d in self.rows.values() if d["direction"] == m.OUT and d["phone"] == phone),
                      key=lambda d: d["created_at"])


class FakeHelpRequests:
    def __init__(self) -> None:
        self.rows: dict[str, HelpRequest] = {}

    def add(self, request: HelpRequest) -> bool:
        if self.open_for(request.phone):
            return False
        self.rows[request.id] = _copy(request)
        return True

    def get(self, request_id: str) -> HelpRequest | None:
        return _copy(self.rows.get(request_id))

    def open_for(self, phone: str) -> HelpRequest | None:
        return next((_copy(r) for r in self.rows.values() if r.phone == phone and r.status == hr.OPEN), None)

    def list(self, status: str | None, limit: int, offset: int) -> list[HelpRequest]:
        found = sorted((r for r in self.rows.values() if status in (None, r.status)), key=lambda r: -r.created_at)
        return [_copy(r) for r in found][offset:offset + limit]

    def resolve(self, request_id: str, by: str, note: str, at: int) -> HelpRequest | None:
        r = self.rows.get(request_id)
        if r is None or r.status != hr.OPEN:
            return None
        self.rows[request_id] = replace(r, status=hr.RESOLVED, resolved_by=by, resolved_at=at, note=note)
        return _copy(self.rows[request_id])


class FakeLinks:
    def __init__(self) -> None:
        self.rows: dict[str, Link] = {}

    def add(self, link: Link) -> Link:
        return _copy(self.rows.setdefault(link.key, _copy(link)))

    def for_key(self, key: str) -> Link | None:
        return _copy(self.rows.get(key))

    def by_hash(self, token_hash: str) -> Link | None:
        return next((_copy(link) for link in self.rows.values() if link.token_hash == token_hash), None)

    def replace(self, key: str, old_hash: str, link: Link) -> Link | None:
        current = self.rows.get(key)
        if current is None or current.token_hash != old_hash:
            return None
        self.rows[key] = replace(current, token_hash=link.token_hash, nonce=link.nonce)
        return _copy(self.rows[key])


@dataclass
class FakeRouter:
    """Drive times from a fixed speed over the straight line; `down` makes it fail as an outage would."""
    kmh: float = 12.0
    down: bool = False
    asked: list[tuple[Point, Point]] = field(default_factory=list)

    def drive_seconds(self, origin: Point, destination: Point) -> float:
        self.asked.append((origin, destination))
        if self.down:
            raise RoutingUnavailable("fake outage")
        return distance_km(origin, destination) / self.kmh * 3600


class FakeOptOuts:
    def __init__(self) -> None:
        self.out: set[str] = set()

    def is_opted_out(self, phone: str) -> bool:
        return phone in self.out

    def opt_out(self, phone: str, source: str) -> None:
        self.out.add(phone)

    def opt_in(self, phone: str, source: str) -> None:
        self.out.discard(phone)


class FakeLedger:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def add(self, entry: dict[str, Any]) -> bool:
        if entry["_id"] in self.rows or any(e.get("key") == entry.get("key") for e in self.rows.values()):
            return False
        self.rows[entry["_id"]] = _copy(entry)
        return True

    def get(self, entry_id: str) -> dict[str, Any] | None:
        return _copy(self.rows.get(entry_id))

    def update(self, entry_id: str, fields: dict[str, Any]) -> None:
        self.rows[entry_id].update(_copy(fields))

    def entries(self, rescue_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        found = [e for e in self.rows.values() if e["rescue_id"] == rescue_id and kind in (None, e["kind"])]
        return [_copy(e) for e in sorted(found, key=lambda e: e["created_at"])]

    def session_for_intent(self, payment_intent: str) -> dict[str, Any] | None:
        return next((_copy(e) for e in self.rows.values()
                     if e["kind"] == "session" and e.get("payment_intent") == payment_intent), None)

    def request_parts(self, request_key: str) -> list[dict[str, Any]]:
        return [_copy(e) for e in sorted((e for e in self.rows.values() if e.get("request") == request_key),
                                         key=lambda e: e["key"])]


class FakeStripeEvents:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def applied(self, event_id: str) -> bool:
        return self.rows.get(event_id, {}).get("status") == "applied"

    def mark_applied(self, event_id: str, fields: dict[str, Any]) -> None:
        self.rows[event_id] = {"_id": event_id, **fields, "status": "applied"}

    def for_rescue(self, rescue_id: str) -> list[dict[str, Any]]:
        return [e for e in self.rows.values() if e["rescue_id"] == rescue_id]


class FakeGeo:
    def __init__(self) -> None:
        self.points: dict[str, tuple[float, float]] = {}
        self.built = False

    def put(self, driver_id: str, lat: float, lng: float) -> None:
        self.points[driver_id] = (lat, lng)

    def remove(self, driver_id: str) -> None:
        self.points.pop(driver_id, None)

    def replace(self, positions: dict[str, tuple[float, float]]) -> None:
        self.points, self.built = dict(positions), True

    def is_built(self) -> bool:
        return self.built

    def nearby(self, lat: float, lng: float, radius_km: float) -> list[tuple[str, float]]:
        here = Point(lat, lng)
        found = sorted((distance_km(here, Point(*p)), i) for i, p in self.points.items())
        return [(i, km) for km, i in found if km <= radius_km][:CANDIDATES_PER_STEP]


class FakeGeocoder:
    """A geocoder that answers from dicts and records what it was asked."""

    def __init__(self, answers: dict[str, list[Point]] | None = None, fail: bool = False,
                 addresses: dict[tuple[float, float], str] | None = None) -> None:
        self.answers, self.addresses, self.fail = answers or {}, addresses or {}, fail
        self.asked: list[str] = []
        self.reversed: list[tuple[float, float]] = []

    def search(self, query: str) -> list[Point]:
        self.asked.append(query)
        if self.fail:
            raise GeocoderUnavailable("down")
        return self.answers.get(query, [])

    def reverse(self, point: Point) -> str | None:
        self.reversed.append((point.lat, point.lng))
        if self.fail:
            raise GeocoderUnavailable("down")
        return self.addresses.get((round(point.lat, 4), round(point.lng, 4)))


class FakeMapLinks:
    """Short map links and where each one redirects to."""

    def __init__(self, targets: dict[str, str] | None = None, fail: bool = False) -> None:
        self.targets, self.fail = targets or {}, fail
        self.asked: list[str] = []

    def resolve(self, url: str) -> str | None:
        self.asked.append(url)
        if self.fail:
            raise GeocoderUnavailable("timeout")
        return self.targets.get(url)


class FakeFeed:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, channel: str, payload: dict[str, Any]) -> None:
        self.published.append((channel, payload))


class FakeLocks:
    def __init__(self) -> None:
        self.held: set[str] = set()
        self.guard = threading.Lock()

    @contextmanager
    def hold(self, name: str, ttl_seconds: float, wait_seconds: float) -> Iterator[bool]:
        with self.guard:
            got = name not in self.held
            self.held.add(name)
        try:
            yield got
        finally:
            if got:
                self.held.discard(name)


@dataclass
class FakeScheduler:
    """Records what the rules asked to start; `run_dispatches` plays the dispatch jobs."""
    calls: list[tuple[str, str, float]] = field(default_factory=list)

    def dispatch(self, rescue_id: str, delay: float = 0) -> None:
        self.calls.append(("dispatch", rescue_id, delay))

    def expire_offer(self, offer_id: str, after_seconds: float, rearm: bool = False) -> None:
        self.calls.append(("expire_offer", offer_id, after_seconds))

    def cancel_expiry(self, offer_id: str) -> None:
        self.calls.append(("cancel_expiry", offer_id, 0))

    def payment_link(self, rescue_id: str) -> None:
        self.calls.append(("payment_link", rescue_id, 0))

    def send_text(self, message_id: str, delay: float = 0) -> None:
        self.calls.append(("send_text", message_id, delay))

    def retry_send(self, message_id: str) -> None:
        self.send_text(message_id, delay=1)

    def kick_outbox(self) -> None:
        self.calls.append(("kick_outbox", "", 0))

    def kick_inbound(self) -> None:
        self.calls.append(("kick_inbound", "", 0))

    def asked(self, kind: str, arg: str | None = None) -> list[tuple[str, str, float]]:
        return [c for c in self.calls if c[0] == kind and arg in (None, c[1])]


class FakeMetrics:
    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)

    def text_out(self, status: str, error_code: str) -> None:
        self.counts[f"out:{status}"] += 1

    def text_in(self, channel: str, outcome: str) -> None:
        self.counts[f"in:{channel}"] += 1

    def offer_outcome(self, event: Event) -> None:
        self.counts[f"offer:{event.type}"] += 1

    def time_to_assign(self, seconds: float) -> None:
        self.counts["assigned"] += 1


class FakeGateway:
    """Checkout sessions and refunds; `down` makes the next calls fail as an outage would."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []
        self.down = 0

    def _maybe_down(self) -> None:
        if self.down:
            self.down -= 1
            raise PaymentUnavailable("fake outage")

    def create_checkout(self, *, rescue_id: str, code: str, amount_cents: int, idempotency_key: str) -> dict[str, Any]:
        self._maybe_down()
        session_id = f"cs_{uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key).hex}"
        return self.sessions.setdefault(session_id, {
            "id": session_id, "url": f"https://pay.test/{session_id}", "amount_total": amount_cents,
            "expires_at": now_ms() // 1000 + 3600, "key": idempotency_key})

    def refund(self, *, payment_intent: str, amount_cents: int, idempotency_key: str) -> dict[str, Any]:
        self._maybe_down()
        done = next((r for r in self.refunds if r["key"] == idempotency_key), None)
        if done is None:
            done = {"id": f"re_{len(self.refunds)}", "amount": amount_cents, "status": "succeeded",
                    "key": idempotency_key, "payment_intent": payment_intent}
            self.refunds.append(done)
        return done


class FakeSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail: SendFailed | None = None

    def send(self, to: str, body: str, status_callback: str | None) -> str:
        if self.fail:
            raise self.fail
        self.sent.append((to, body))
        return f"SM{len(self.sent):032d}"

    def find_sent(self, to: str, body: str, since_ms: int) -> list[str]:
        return []


def core(settings: Settings | None = None, router: FakeRouter | None = None) -> Core:
    """The real business rules over fresh fakes."""
    return Core(settings or Settings(), rescues=FakeRescues(), riders=FakeRiders(), drivers=FakeDrivers(),
                offers=FakeOffers(), messages=FakeMessages(), optouts=FakeOptOuts(), ledger=FakeLedger(),
                stripe_events=FakeStripeEvents(), events=FakeEventStore(), geo=FakeGeo(), locks=FakeLocks(),
                scheduler=FakeScheduler(), metrics=FakeMetrics(), gateway=FakeGateway(), sender=FakeSender(),
                help_requests=FakeHelpRequests(), feed=FakeFeed(), links=FakeLinks(), router=router)
