"""Dispatch (PRODUCT.md §4 "Driver by SMS", §5): offers, acceptance, the job, overrides.

Every decision is a compare-and-set in MongoDB, so it holds across any number of web and
worker processes: a driver is claimed `available -> offered` before an offer exists, an
offer is claimed `open -> accepting` before it can win, and only one acceptance can move
the rescue `searching -> assigned`. Redis holds only the geo index and the job queue.
"""
from __future__ import annotations

import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import structlog
from pymongo import DESCENDING, ReturnDocument
from pymongo.database import Database
from redis import Redis
from redis.exceptions import LockError

from dispatch import events as ev
from dispatch.clock import now_ms
from dispatch.config import Settings
from dispatch.drivers import AVAILABLE, OFFERED, OFFLINE, ON_JOB
from dispatch.events import Event, EventLog
from dispatch.geo import Point, distance_km
from dispatch.jobs import Jobs
from dispatch.matching import Candidate, GeoIndex, location_is_fresh
from dispatch.rescue_store import ExpectationFailed, RescueStore
from dispatch.rescues import ASSIGNED, EN_ROUTE, SEARCHING, IllegalTransition, Rescue

log = structlog.get_logger(__name__)

OPEN, ACCEPTING, ACCEPTED, DECLINED, EXPIRED, TAKEN, WITHDRAWN, DROPPED = (
    "open", "accepting", "accepted", "declined", "expired", "taken", "withdrawn", "dropped")
LIVE_OFFER = [OPEN, ACCEPTING]
JOB_EVENTS = {"drive": ev.DRIVER_EN_ROUTE, "arrive": ev.DRIVER_ARRIVED, "load": ev.RIDER_LOADED,
              "complete": ev.RESCUE_COMPLETED}
DISPATCH_LOCK_SECONDS = 10
# A freed driver can take one rescue: a couple of the longest-waiting ones get a look at once.
FREED_DRIVER_LOOKS = 2


@dataclass
class Outcome:
    """What to tell the person who acted (a template under templates/sms/)."""
    template: str
    context: dict[str, Any] = field(default_factory=dict)


class DispatchError(ValueError):
    """A dispatcher override that cannot be done; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class Dispatcher:
    def __init__(self, settings: Settings, db: Database, redis: Redis, rescues: RescueStore,
                 geo: GeoIndex, events: EventLog, jobs: Jobs) -> None:
        self.settings, self.db, self.redis = settings, db, redis
        self.rescues, self.geo, self.events, self.jobs = rescues, geo, events, jobs

    def subscribe(self) -> None:
        """The follow-up work each event starts."""
        self.events.subscribe(ev.RESCUE_REQUESTED, self._dispatch_soon)
        self.events.subscribe(ev.OFFER_DECLINED, self._dispatch_soon)
        self.events.subscribe(ev.OFFER_EXPIRED, self._dispatch_soon)
        self.events.subscribe(ev.DRIVER_DROPPED, self._dispatch_soon)
        self.events.subscribe(ev.OFFER_MADE, self._schedule_expiry)
        self.events.subscribe(ev.RESCUE_CANCELLED, self._release_everyone)
        self.events.subscribe(ev.RESCUE_UNFULFILLED, self._release_everyone)

    def _dispatch_soon(self, event: Event) -> None:
        self.jobs.now("dispatch_rescue", event.rescue_id)

    def _schedule_expiry(self, event: Event) -> None:
        self.jobs.later(self.settings.offer_timeout_seconds, "expire_offer", event.data["offer_id"])

    # -- searching -------------------------------------------------------------------------
    @contextmanager
    def _rescue_lock(self, rescue_id: str) -> Iterator[bool]:
        """Two dispatch jobs for one rescue would both see room for an offer: serialise them."""
        lock = self.redis.lock(f"lock:dispatch:{rescue_id}", timeout=DISPATCH_LOCK_SECONDS,
                               blocking_timeout=DISPATCH_LOCK_SECONDS)
        got = lock.acquire()
        try:
            yield got
        finally:
            if got:
                try:
                    lock.release()
                except LockError:
                    pass

    def dispatch(self, rescue_id: str) -> str:
        """Offer a searching rescue to the best free drivers, or give up after the window."""
        with self._rescue_lock(rescue_id) as got:
            if not got:
                return "busy"
            rescue = self.rescues.get(rescue_id)
            if rescue is None or rescue.status != SEARCHING:
                return "not-searching"
            now = now_ms()
            if now - rescue.searching_since > self.settings.search_window_seconds * 1000:
                try:
                    self.rescues.apply(rescue_id, "give_up", by="dispatcher", event=ev.RESCUE_UNFULFILLED,
                                       expect={"status": SEARCHING})
                except (ExpectationFailed, IllegalTransition):
                    pass
                return "unfulfilled"
            live = self.db.offers.count_documents({"rescue_id": rescue_id, "status": {"$in": LIVE_OFFER}})
            made = 0
            if live < self.settings.offer_fanout:
                excluded = self._excluded_drivers(rescue_id, now)
                pickup = rescue.pickup
                want = self.settings.offer_fanout - live
                for candidate in self.geo.candidates(pickup["lat"], pickup["lng"], excluded, want=want):
                    if live + made >= self.settings.offer_fanout:
                        break
                    made += self._offer(rescue, candidate)
            if live + made == 0:
                self._retry_later(rescue_id, now)
            self._maybe_update_rider(rescue, now)
            return f"offers:{live + made}"

    def _excluded_drivers(self, rescue_id: str, now: int) -> set[str]:
        """Who not to ask again: drivers who passed or handed the job back, and, for a while,
        those who let an offer run out (they may have been busy, not unwilling)."""
        cool_off = now - 2 * self.settings.offer_timeout_seconds * 1000
        excluded = set()
        for offer in self.db.offers.find({"rescue_id": rescue_id}):
            if offer["status"] != EXPIRED or int(offer.get("expired_at") or now) > cool_off:
                excluded.add(offer["driver_id"])
        return excluded

    def _retry_later(self, rescue_id: str, now: int) -> None:
        """One follow-up at a time per rescue, however many triggers ask for one."""
        due = now + self.settings.search_retry_seconds * 1000
        claimed = self.db.rescues.update_one({"_id": rescue_id, "next_dispatch_at": {"$lt": now}},
                                             {"$set": {"next_dispatch_at": due}})
        if claimed.modified_count:
            self.jobs.later(self.settings.search_retry_seconds, "dispatch_rescue", rescue_id)

    def _maybe_update_rider(self, rescue: Rescue, now: int) -> None:
        every = self.settings.rider_update_seconds * 1000
        last = int(rescue.extra.get("rider_updated_at") or rescue.created_at)
        if now - last < every:
            return
        claimed = self.db.rescues.update_one({"_id": rescue.id, "rider_updated_at": rescue.extra.get("rider_updated_at")},
                                             {"$set": {"rider_updated_at": now}})
        if claimed.modified_count:
            self.events.publish(ev.STILL_SEARCHING, rescue.id, by="dispatcher",
                                minutes=round((now - rescue.searching_since) / 60000))

    def _offer(self, rescue: Rescue, candidate: Candidate) -> int:
        offer_id = uuid.uuid4().hex
        driver = self.db.drivers.find_one_and_update(
            {"_id": candidate.driver_id, "status": AVAILABLE},
            {"$set": {"status": OFFERED, "offer_id": offer_id, "updated_at": now_ms()}})
        self.geo.remove(candidate.driver_id)
        if driver is None:
            return 0
        now = now_ms()
        self.db.offers.insert_one({
            "_id": offer_id, "rescue_id": rescue.id, "rescue_code": rescue.code,
            "driver_id": candidate.driver_id, "status": OPEN, "created_at": now,
            "expires_at": now + self.settings.offer_timeout_seconds * 1000,
            "distance_km": round(candidate.distance_km, 2)})
        self.events.publish(ev.OFFER_MADE, rescue.id, by="dispatcher", offer_id=offer_id,
                            driver_id=candidate.driver_id, distance_km=round(candidate.distance_km, 2))
        log.info("offer_made", rescue_id=rescue.id, offer_id=offer_id, driver_id=candidate.driver_id)
        return 1

    # -- answers to an offer -----------------------------------------------------------------
    def _open_offer(self, driver: dict[str, Any]) -> dict[str, Any] | None:
        if not driver.get("offer_id"):
            return None
        return self.db.offers.find_one({"_id": driver["offer_id"], "status": OPEN})

    def _late_answer(self, driver: dict[str, Any], code: str | None) -> Outcome:
        """No open offer: say honestly whether it was taken, expired, or never there."""
        query: dict[str, Any] = {"driver_id": driver["_id"]}
        if code:
            query["rescue_code"] = f"R{code}"
        last = list(self.db.offers.find(query).sort("created_at", DESCENDING).limit(1))
        if last and last[0]["status"] in (TAKEN, WITHDRAWN):
            return Outcome("offer_taken", {"code": last[0]["rescue_code"]})
        if last and last[0]["status"] in (EXPIRED, OPEN):
            return Outcome("offer_too_late", {"code": last[0]["rescue_code"]})
        return Outcome("no_open_offer")

    def accept(self, driver: dict[str, Any], code: str | None = None) -> Outcome:
        offer = self._open_offer(driver)
        if offer is None or (code and offer["rescue_code"] != f"R{code}"):
            return self._late_answer(driver, code)
        now = now_ms()
        claimed = self.db.offers.find_one_and_update(
            {"_id": offer["_id"], "status": OPEN, "expires_at": {"$gt": now}},
            {"$set": {"status": ACCEPTING, "answered_at": now}})
        if claimed is None:
            self.expire(offer["_id"], force=True)
            return self._late_answer(driver, code)
        try:
            rescue, _ = self.rescues.apply(
                offer["rescue_id"], "assign", by=f"driver:{driver['_id']}", event=ev.DRIVER_ASSIGNED,
                changes={"driver_id": driver["_id"], "assigned_at": now}, expect={"status": SEARCHING},
                driver_id=driver["_id"], offer_id=offer["_id"])
        except (ExpectationFailed, IllegalTransition):
            self.db.offers.update_one({"_id": offer["_id"]}, {"$set": {"status": TAKEN}})
            self._release_offered(driver["_id"], offer["_id"])
            return Outcome("offer_taken", {"code": offer["rescue_code"]})
        self.db.offers.update_one({"_id": offer["_id"]}, {"$set": {"status": ACCEPTED}})
        self.db.drivers.update_one({"_id": driver["_id"]}, {"$set": {
            "status": ON_JOB, "rescue_id": rescue.id, "offer_id": None, "updated_at": now}})
        self._withdraw_offers(rescue.id, reason="taken", keep=offer["_id"])
        log.info("offer_accepted", rescue_id=rescue.id, offer_id=offer["_id"], driver_id=driver["_id"])
        return Outcome("job_details", {"rescue": rescue})

    def resolve_stuck_acceptance(self, offer: dict[str, Any]) -> None:
        """A process died between claiming an offer and assigning the rescue: finish either way."""
        rescue = self.rescues.get(offer["rescue_id"])
        if rescue and rescue.driver_id == offer["driver_id"]:
            self.db.offers.update_one({"_id": offer["_id"], "status": ACCEPTING}, {"$set": {"status": ACCEPTED}})
            self.db.drivers.update_one({"_id": offer["driver_id"], "offer_id": offer["_id"]},
                                       {"$set": {"status": ON_JOB, "rescue_id": rescue.id, "offer_id": None}})
            return
        self.db.offers.update_one({"_id": offer["_id"], "status": ACCEPTING}, {"$set": {"status": TAKEN}})
        self._release_offered(offer["driver_id"], offer["_id"])
        self.jobs.now("dispatch_rescue", offer["rescue_id"])

    def free_stranded_drivers(self, changed_before: int) -> int:
        """Drivers left `offered` or `on_job` by a process that died between two writes."""
        freed = 0
        for driver in self.db.drivers.find({"status": OFFERED, "updated_at": {"$lt": changed_before}}):
            if not self.db.offers.find_one({"_id": driver.get("offer_id"), "status": {"$in": LIVE_OFFER}}):
                self._release_offered(driver["_id"], driver.get("offer_id"))
                freed += 1
        for driver in self.db.drivers.find({"status": ON_JOB, "updated_at": {"$lt": changed_before}}):
            rescue = self.rescues.get(driver.get("rescue_id") or "")
            if rescue is None or not rescue.is_open or rescue.driver_id != driver["_id"]:
                self.db.drivers.update_one({"_id": driver["_id"], "status": ON_JOB, "rescue_id": driver.get("rescue_id")},
                                           {"$set": {"status": AVAILABLE, "rescue_id": None, "idle_since": now_ms(),
                                                     "updated_at": now_ms()}})
                freed += 1
        return freed

    def decline(self, driver: dict[str, Any]) -> Outcome:
        offer = self._open_offer(driver)
        if offer is None:
            return self._late_answer(driver, None)
        closed = self.db.offers.find_one_and_update({"_id": offer["_id"], "status": OPEN},
                                                    {"$set": {"status": DECLINED, "answered_at": now_ms()}})
        if closed is None:
            return self._late_answer(driver, None)
        self._release_offered(driver["_id"], offer["_id"])
        self.events.publish(ev.OFFER_DECLINED, offer["rescue_id"], by=f"driver:{driver['_id']}",
                            offer_id=offer["_id"], driver_id=driver["_id"])
        return Outcome("offer_declined", {"code": offer["rescue_code"]})

    def expire(self, offer_id: str, force: bool = False) -> str:
        """The offer timer. Keyed by offer id, so a stale timer never touches a newer offer."""
        offer = self.db.offers.find_one({"_id": offer_id})
        if offer is None or offer["status"] != OPEN:
            return "not-open"
        remaining = offer["expires_at"] - now_ms()
        if remaining > 0 and not force:  # the scheduler can run up to 1 s early: never expire early
            self.jobs.later(remaining / 1000 + 0.05, "expire_offer", offer_id)
            return "early"
        closed = self.db.offers.find_one_and_update({"_id": offer_id, "status": OPEN},
                                                    {"$set": {"status": EXPIRED, "expired_at": now_ms()}})
        if closed is None:
            return "not-open"
        self._release_offered(offer["driver_id"], offer_id)
        self.events.publish(ev.OFFER_EXPIRED, offer["rescue_id"], by="timer", offer_id=offer_id,
                            driver_id=offer["driver_id"], late_ms=max(0, -remaining))
        return "expired"

    def _release_offered(self, driver_id: str, offer_id: str) -> None:
        """Back to available, but only if the driver is still holding this very offer."""
        driver = self.db.drivers.find_one_and_update(
            {"_id": driver_id, "status": OFFERED, "offer_id": offer_id},
            {"$set": {"status": AVAILABLE, "offer_id": None, "updated_at": now_ms()}},
            return_document=ReturnDocument.AFTER)
        if driver and location_is_fresh(driver):
            self.geo.put(driver_id, driver["location"]["lat"], driver["location"]["lng"])
            self._dispatch_waiting(limit=FREED_DRIVER_LOOKS)

    def _withdraw_offers(self, rescue_id: str, reason: str, keep: str | None = None) -> None:
        for offer in self.db.offers.find({"rescue_id": rescue_id, "status": OPEN}):
            if offer["_id"] == keep:
                continue
            closed = self.db.offers.find_one_and_update({"_id": offer["_id"], "status": OPEN},
                                                        {"$set": {"status": TAKEN if reason == "taken" else WITHDRAWN}})
            if closed:
                self._release_offered(offer["driver_id"], offer["_id"])
                self.events.publish(ev.OFFER_WITHDRAWN, rescue_id, by="dispatcher", offer_id=offer["_id"],
                                    driver_id=offer["driver_id"], reason=reason)

    def _release_everyone(self, event: Event) -> None:
        """A closed rescue frees its offers and its driver."""
        self._withdraw_offers(event.rescue_id, reason=event.type)
        rescue = self.rescues.get(event.rescue_id)
        if rescue and rescue.driver_id:
            self._free_driver(rescue.driver_id, rescue.id)

    def _free_driver(self, driver_id: str, rescue_id: str, idle_from_now: bool = True) -> None:
        fields: dict[str, Any] = {"status": AVAILABLE, "rescue_id": None, "updated_at": now_ms()}
        if idle_from_now:
            fields["idle_since"] = now_ms()
        driver = self.db.drivers.find_one_and_update({"_id": driver_id, "rescue_id": rescue_id},
                                                     {"$set": fields}, return_document=ReturnDocument.AFTER)
        if driver and location_is_fresh(driver):
            self.geo.put(driver_id, driver["location"]["lat"], driver["location"]["lng"])
            self._dispatch_waiting(limit=FREED_DRIVER_LOOKS)

    # -- on the job --------------------------------------------------------------------------
    def job_action(self, driver: dict[str, Any], action: str) -> Outcome:
        rescue_id = driver.get("rescue_id")
        if not rescue_id:
            return Outcome("no_job")
        try:
            rescue, changed = self.rescues.apply(rescue_id, action, by=f"driver:{driver['_id']}",
                                                 event=JOB_EVENTS[action], expect={"driver_id": driver["_id"]},
                                                 driver_id=driver["_id"])
        except (IllegalTransition, ExpectationFailed):
            current = self.rescues.get(rescue_id)
            return Outcome("job_action_refused", {"action": action, "rescue": current})
        if action == "complete":
            self._free_driver(driver["_id"], rescue_id)
        return Outcome(f"job_{action}", {"rescue": rescue, "repeat": not changed})

    def drop(self, driver: dict[str, Any]) -> Outcome:
        rescue_id = driver.get("rescue_id")
        if not rescue_id:
            return Outcome("no_job")
        try:
            rescue, _ = self.rescues.apply(rescue_id, "requeue", by=f"driver:{driver['_id']}",
                                           event=ev.DRIVER_DROPPED, expect={"driver_id": driver["_id"]},
                                           changes={"driver_id": None, "next_dispatch_at": 0},
                                           driver_id=driver["_id"])
        except (IllegalTransition, ExpectationFailed):
            return Outcome("job_action_refused", {"action": "drop", "rescue": self.rescues.get(rescue_id)})
        self.db.offers.update_many({"rescue_id": rescue_id, "driver_id": driver["_id"], "status": ACCEPTED},
                                   {"$set": {"status": DROPPED}})
        self._free_driver(driver["_id"], rescue_id)
        return Outcome("job_dropped", {"rescue": rescue})

    # -- driver presence ---------------------------------------------------------------------
    def go_online(self, driver: dict[str, Any]) -> Outcome:
        if driver["status"] in (OFFERED, ON_JOB):
            return Outcome("driver_status", {"driver": driver})
        now = now_ms()
        updated = self.db.drivers.find_one_and_update(
            {"_id": driver["_id"], "status": OFFLINE},
            {"$set": {"status": AVAILABLE, "idle_since": now, "updated_at": now}},
            return_document=ReturnDocument.AFTER) or self.db.drivers.find_one({"_id": driver["_id"]})
        if location_is_fresh(updated):
            self.geo.put(updated["_id"], updated["location"]["lat"], updated["location"]["lng"])
            self._dispatch_waiting()
            return Outcome("driver_online", {"driver": updated})
        return Outcome("driver_online_need_location", {"driver": updated})

    def go_offline(self, driver: dict[str, Any]) -> Outcome:
        if driver["status"] == ON_JOB:
            return Outcome("driver_offline_refused")
        if driver["status"] == OFFERED:
            self.decline(driver)
        self.db.drivers.update_one({"_id": driver["_id"], "status": {"$in": [AVAILABLE, OFFERED]}},
                                   {"$set": {"status": OFFLINE, "offer_id": None, "updated_at": now_ms()}})
        self.geo.remove(driver["_id"])
        return Outcome("driver_offline")

    def update_location(self, driver: dict[str, Any], point: Point) -> Outcome:
        now = now_ms()
        updated = self.db.drivers.find_one_and_update(
            {"_id": driver["_id"]}, {"$set": {"location": point.to_json(), "location_updated_at": now,
                                              "updated_at": now}}, return_document=ReturnDocument.AFTER)
        if updated["status"] == AVAILABLE:
            self.geo.put(updated["_id"], point.lat, point.lng)
            self._dispatch_waiting()
        if updated.get("rescue_id"):
            self.events.publish(ev.DRIVER_LOCATION_UPDATED, updated["rescue_id"], by=f"driver:{driver['_id']}",
                                lat=point.lat, lng=point.lng)
        return Outcome("driver_location", {"driver": updated, "place": point.label})

    def _dispatch_waiting(self, limit: int = 50) -> None:
        """A driver became free: rescues that found nobody and wait on their retry timer get
        another look now, oldest first, instead of up to SEARCH_RETRY_SECONDS later."""
        waiting = self.db.rescues.find({"status": SEARCHING, "next_dispatch_at": {"$gt": now_ms()}},
                                       {"_id": 1}).sort("created_at", 1).limit(limit)
        for doc in waiting:
            self.jobs.now("dispatch_rescue", doc["_id"])

    # -- dispatcher overrides ----------------------------------------------------------------
    def assign(self, rescue_id: str, driver_id: str) -> Rescue:
        driver = self.db.drivers.find_one({"_id": driver_id})
        if driver is None:
            raise DispatchError("no such driver", 404)
        if not bool(driver.get("active", True)):
            raise DispatchError("driver is not active")
        rescue = self.rescues.get(rescue_id)
        if rescue is None:
            raise DispatchError("no such rescue", 404)
        if rescue.status not in (SEARCHING, ASSIGNED, EN_ROUTE):
            raise DispatchError(f"cannot assign a rescue that is {rescue.status}")
        if rescue.driver_id == driver_id:
            return rescue
        if driver["status"] == ON_JOB:
            raise DispatchError("driver is on another job")
        if driver["status"] == OFFERED and driver.get("offer_id"):
            # The driver's own offer for this rescue is simply taken up; one for another is withdrawn.
            same = self.db.offers.find_one({"_id": driver["offer_id"]}) or {}
            mine = same.get("rescue_id") == rescue_id
            offer = self.db.offers.find_one_and_update({"_id": driver["offer_id"], "status": OPEN},
                                                       {"$set": {"status": ACCEPTED if mine else WITHDRAWN}})
            if offer and not mine:
                self.events.publish(ev.OFFER_WITHDRAWN, offer["rescue_id"], by="dispatcher",
                                    offer_id=offer["_id"], driver_id=driver_id, reason="reassigned")
                self.jobs.now("dispatch_rescue", offer["rescue_id"])
        claimed = self.db.drivers.find_one_and_update(
            {"_id": driver_id, "status": {"$in": [AVAILABLE, OFFLINE, OFFERED]}},
            {"$set": {"status": ON_JOB, "rescue_id": rescue_id, "offer_id": None, "updated_at": now_ms()}})
        if claimed is None:
            raise DispatchError("driver was just taken by another job")
        self.geo.remove(driver_id)
        if rescue.status == SEARCHING:
            try:
                rescue, _ = self.rescues.apply(rescue_id, "assign", by="dispatcher", event=ev.DRIVER_ASSIGNED,
                                               changes={"driver_id": driver_id, "assigned_at": now_ms()},
                                               expect={"status": SEARCHING}, driver_id=driver_id)
            except (ExpectationFailed, IllegalTransition):
                self._free_driver(driver_id, rescue_id, idle_from_now=False)
                raise DispatchError("rescue changed while assigning; try again")
            self._withdraw_offers(rescue_id, reason="taken")
            return rescue
        previous = rescue.driver_id
        moved = self.db.rescues.find_one_and_update(
            {"_id": rescue_id, "version": rescue.version, "driver_id": previous},
            {"$set": {"driver_id": driver_id, "version": rescue.version + 1, "updated_at": now_ms()}},
            return_document=ReturnDocument.AFTER)
        if moved is None:
            self._free_driver(driver_id, rescue_id, idle_from_now=False)
            raise DispatchError("rescue changed while assigning; try again")
        if previous:
            self._free_driver(previous, rescue_id)
        self.events.publish(ev.DRIVER_REASSIGNED, rescue_id, by="dispatcher", driver_id=driver_id,
                            previous_driver_id=previous)
        return Rescue.from_doc(moved)

    def cancel(self, rescue_id: str, reason: str, by: str) -> Rescue:
        try:
            rescue, _ = self.rescues.apply(rescue_id, "cancel", by=by, event=ev.RESCUE_CANCELLED,
                                           changes={"cancel_reason": reason, "cancelled_by": by},
                                           reason=reason)
        except KeyError:
            raise DispatchError("no such rescue", 404)
        except IllegalTransition as exc:
            raise DispatchError(str(exc))
        return rescue


def eta_minutes(driver: dict[str, Any] | None, rescue: Rescue, speed_kmh: float) -> int | None:
    if not driver or not driver.get("location"):
        return None
    km = distance_km(Point.from_json(driver["location"]), Point.from_json(rescue.pickup))
    return max(3, round(km / speed_kmh * 60) + 2)
