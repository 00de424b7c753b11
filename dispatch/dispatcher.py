"""Dispatch (PRODUCT.md §4 "Driver by SMS", §5): offers, acceptance, the job, overrides.

Every decision is a compare-and-set on the records, so it holds across any number of web
and worker processes: a driver is claimed `available -> offered` before an offer exists,
an offer is claimed `open -> accepting` before it can win, and only one acceptance can
move the rescue `searching -> assigned`. The geo index and the job queue only help.

Methods return what happened as a result type; the conversation side chooses the words.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from dispatch.bus import EventBus
from dispatch.config import Settings
from dispatch.lifecycle import ExpectationFailed, Lifecycle
from dispatch.links import Links
from dispatch.matching import Matcher
from dispatch.model import events as ev
from dispatch.model import offer as of
from dispatch.model.clock import now_ms
from dispatch.model.driver import AVAILABLE, OFFERED, OFFLINE, ON_JOB, SOURCES, Candidate, Driver
from dispatch.model.errors import Conflict, NotFound
from dispatch.model.geo import Point
from dispatch.model.offer import Offer
from dispatch.model.rescue import DRIVER_BOUND, SEARCHING, UNASSIGNED, IllegalTransition, Rescue
from dispatch.ports import DriverRepository, Locks, OfferRepository, RescueRepository, Scheduler

log = structlog.get_logger(__name__)

DISPATCH_LOCK_SECONDS = 10
# A freed driver can take one rescue: a couple of the longest-waiting ones get a look at once.
FREED_DRIVER_LOOKS = 2
WAITING_LOOKS = 50
# A driver who let an offer run out may have been busy, not unwilling: ask again after this
# many offer timeouts.
EXPIRED_COOL_OFF_TIMEOUTS = 2


# -- what happened, for the conversation side to put into words -------------------------------
@dataclass(frozen=True)
class Accepted:
    rescue: Rescue
    job_url: str  # the driver's job page (PRODUCT.md §9), for the job's details


@dataclass(frozen=True)
class Declined:
    code: str


@dataclass(frozen=True)
class OfferTaken:
    """The offer went to someone else (another driver, or a dispatcher's choice)."""
    code: str


@dataclass(frozen=True)
class OfferTooLate:
    code: str


@dataclass(frozen=True)
class NoOpenOffer:
    pass


@dataclass(frozen=True)
class OtherOfferOpen:
    """The driver answered about one rescue while their open offer is for another."""
    asked: str
    open: str


@dataclass(frozen=True)
class NoJob:
    pass


@dataclass(frozen=True)
class JobProgress:
    action: str
    rescue: Rescue
    repeat: bool


@dataclass(frozen=True)
class JobRefused:
    action: str
    rescue: Rescue | None


@dataclass(frozen=True)
class Dropped:
    rescue: Rescue


@dataclass(frozen=True)
class DriverBusy:
    """Asked to go online while holding an offer or a job: where they stand instead."""
    driver: Driver


@dataclass(frozen=True)
class Online:
    driver: Driver
    needs_location: bool


@dataclass(frozen=True)
class Offline:
    pass


@dataclass(frozen=True)
class OfflineRefused:
    pass


@dataclass(frozen=True)
class Located:
    driver: Driver
    place: str


DriverResult = (Accepted | Declined | OfferTaken | OfferTooLate | NoOpenOffer | OtherOfferOpen | NoJob | JobProgress
                | JobRefused | Dropped | DriverBusy | Online | Offline | OfflineRefused | Located)


class Dispatcher:
    def __init__(self, settings: Settings, lifecycle: Lifecycle, rescues: RescueRepository,
                 drivers: DriverRepository, offers: OfferRepository, matcher: Matcher, bus: EventBus,
                 scheduler: Scheduler, locks: Locks, links: Links) -> None:
        self.settings, self.lifecycle, self.rescues = settings, lifecycle, rescues
        self.drivers, self.offers, self.matcher = drivers, offers, matcher
        self.bus, self.scheduler, self.locks, self.links = bus, scheduler, locks, links
        # Told when a driver's presence or position changes outside any rescue's events (the
        # status page's change feed, wired in dispatch.bootstrap).
        self.changed: Callable[..., None] = lambda what, **fields: None

    # -- event handlers (dispatch.bootstrap) -------------------------------------------------
    def dispatch_soon(self, event: ev.Event) -> None:
        self.scheduler.dispatch(event.rescue_id)

    def schedule_expiry(self, event: ev.OfferMade) -> None:
        self.scheduler.expire_offer(event.offer_id, self.settings.offer_timeout_seconds)

    def release_everyone(self, event: ev.Event) -> None:
        """A closed rescue frees its offers and its driver."""
        self._withdraw_offers(event.rescue_id, reason=event.type)
        rescue = self.rescues.get(event.rescue_id)
        if rescue and rescue.driver_id:
            self._free_driver(rescue.driver_id, rescue.id)

    # -- searching -------------------------------------------------------------------------
    def dispatch(self, rescue_id: str) -> str:
        """Offer a searching rescue to the best free drivers, or give up after the window.

        Two dispatch jobs for one rescue would both see room for an offer: serialised."""
        with self.locks.hold(f"dispatch:{rescue_id}", DISPATCH_LOCK_SECONDS, DISPATCH_LOCK_SECONDS) as got:
            if not got:
                return "busy"
            rescue = self.rescues.get(rescue_id)
            if rescue is None or rescue.status != SEARCHING:
                return "not-searching"
            now = now_ms()
            if now - rescue.searching_since > self.settings.search_window_seconds * 1000:
                try:
                    self.lifecycle.apply(rescue_id, "give_up", by="dispatcher", event=ev.RescueUnfulfilled,
                                         expect={"status": SEARCHING})
                except (ExpectationFailed, IllegalTransition):
                    pass
                return "unfulfilled"
            offers = self.offers.for_rescue(rescue_id)  # one read: the live ones and who not to ask again
            live = sum(1 for o in offers if o.status in of.LIVE)
            made = 0
            if live < self.settings.offer_fanout:
                excluded = self._excluded_drivers(offers, now)
                pickup = rescue.pickup
                want = self.settings.offer_fanout - live
                for candidate in self.matcher.candidates(pickup["lat"], pickup["lng"], excluded, want=want):
                    if live + made >= self.settings.offer_fanout:
                        break
                    made += self._offer(rescue, candidate)
            if live + made == 0:
                self._retry_later(rescue_id, now)
            self._maybe_update_rider(rescue, now)
            return f"offers:{live + made}"

    def _excluded_drivers(self, offers: list[Offer], now: int) -> set[str]:
        """Who not to ask again: drivers who passed or handed the job back, and, for a while,
        those who let an offer run out."""
        cool_off = now - EXPIRED_COOL_OFF_TIMEOUTS * self.settings.offer_timeout_seconds * 1000
        return {o.driver_id for o in offers if o.status != of.EXPIRED or int(o.expired_at or now) > cool_off}

    def _retry_later(self, rescue_id: str, now: int) -> None:
        """One follow-up at a time per rescue, however many triggers ask for one."""
        due = now + self.settings.search_retry_seconds * 1000
        if self.rescues.claim_next_dispatch(rescue_id, now, due):
            self.scheduler.dispatch(rescue_id, delay=self.settings.search_retry_seconds)

    def _maybe_update_rider(self, rescue: Rescue, now: int) -> None:
        every = self.settings.rider_update_seconds * 1000
        last = rescue.extra.get("rider_updated_at")
        if now - int(last or rescue.created_at) < every:
            return
        if self.rescues.claim_rider_update(rescue.id, last, now):
            self.bus.publish(ev.StillSearching(rescue_id=rescue.id, by="dispatcher",
                                               minutes=round((now - rescue.searching_since) / 60000)))

    def _offer(self, rescue: Rescue, candidate: Candidate) -> int:
        offer_id = uuid.uuid4().hex
        claimed = self.drivers.move(candidate.driver_id, SOURCES["offer"], status=OFFERED, offer_id=offer_id)
        self.matcher.geo.remove(candidate.driver_id)
        if claimed is None:
            return 0
        now = now_ms()
        distance = round(candidate.distance_km, 2)
        self.offers.add(Offer(id=offer_id, rescue_id=rescue.id, rescue_code=rescue.code,
                              driver_id=candidate.driver_id, status=of.OPEN, created_at=now,
                              expires_at=now + self.settings.offer_timeout_seconds * 1000, distance_km=distance))
        self.bus.publish(ev.OfferMade(rescue_id=rescue.id, by="dispatcher", offer_id=offer_id,
                                      driver_id=candidate.driver_id, distance_km=distance),
                         rescue=rescue)  # as read under the dispatch lock; an offer changes nothing on it
        log.info("offer_made", rescue_id=rescue.id, offer_id=offer_id, driver_id=candidate.driver_id)
        return 1

    # -- answers to an offer -----------------------------------------------------------------
    def _open_offer(self, driver: Driver) -> Offer | None:
        if not driver.offer_id:
            return None
        offer = self.offers.get(driver.offer_id)
        return offer if offer and offer.status == of.OPEN else None

    def _late_answer(self, driver: Driver, code: str | None) -> DriverResult:
        """No open offer: say honestly whether it was taken, expired, or never there."""
        last = self.offers.latest_for_driver(driver.id, f"R{code}" if code else None)
        if last and last.status in of.LOST:
            return OfferTaken(last.rescue_code)
        if last and last.status in (of.EXPIRED, of.OPEN):
            return OfferTooLate(last.rescue_code)
        return NoOpenOffer()

    def accept(self, driver: Driver, code: str | None = None) -> DriverResult:
        offer = self._open_offer(driver)
        if offer is not None and code and offer.rescue_code != f"R{code}":
            return OtherOfferOpen(asked=f"R{code}", open=offer.rescue_code)
        if offer is None:
            return self._late_answer(driver, code)
        now = now_ms()
        if self.offers.claim_unexpired(offer.id, now) is None:
            self.expire(offer.id, force=True)
            return self._late_answer(driver, code)
        try:
            rescue, _ = self.lifecycle.apply(
                offer.rescue_id, "assign", by=f"driver:{driver.id}", event=ev.DriverAssigned,
                changes={"driver_id": driver.id, "assigned_at": now}, expect={"status": SEARCHING},
                driver_id=driver.id, offer_id=offer.id)
        except (ExpectationFailed, IllegalTransition):
            self.offers.move(offer.id, None, status=of.TAKEN)
            self._release_offered(driver.id, offer.id)
            return OfferTaken(offer.rescue_code)
        self.offers.move(offer.id, None, status=of.ACCEPTED)
        self.drivers.move(driver.id, None, status=ON_JOB, rescue_id=rescue.id, offer_id=None)
        self._withdraw_offers(rescue.id, reason="taken", keep=offer.id)
        self.scheduler.cancel_expiry(offer.id)
        log.info("offer_accepted", rescue_id=rescue.id, offer_id=offer.id, driver_id=driver.id)
        return Accepted(rescue, self.links.job_url(rescue, driver.id))

    def resolve_stuck_acceptance(self, offer: Offer) -> None:
        """A process died between claiming an offer and assigning the rescue: finish either way."""
        rescue = self.rescues.get(offer.rescue_id)
        if rescue and rescue.driver_id == offer.driver_id:
            self.offers.move(offer.id, (of.ACCEPTING,), status=of.ACCEPTED)
            self.drivers.move(offer.driver_id, None, holding_offer=offer.id, status=ON_JOB, rescue_id=rescue.id,
                              offer_id=None)
            return
        self.offers.move(offer.id, (of.ACCEPTING,), status=of.TAKEN)
        self._release_offered(offer.driver_id, offer.id)
        self.scheduler.dispatch(offer.rescue_id)

    def free_stranded_drivers(self, changed_before: int) -> int:
        """Drivers left `offered` or `on_job` by a process that died between two writes."""
        freed = 0
        for driver in self.drivers.unchanged_since(OFFERED, changed_before):
            offer = self.offers.get(driver.offer_id) if driver.offer_id else None
            if offer is None or offer.status not in of.LIVE:
                self._release_offered(driver.id, driver.offer_id)
                freed += 1
        for driver in self.drivers.unchanged_since(ON_JOB, changed_before):
            rescue = self.rescues.get(driver.rescue_id or "")
            if rescue is None or not rescue.is_open or rescue.driver_id != driver.id:
                self.drivers.move(driver.id, (ON_JOB,), on_rescue=driver.rescue_id, status=AVAILABLE,
                                  rescue_id=None, idle_since=now_ms())
                freed += 1
        return freed

    def decline(self, driver: Driver) -> DriverResult:
        offer = self._open_offer(driver)
        if offer is None or self.offers.move(offer.id, (of.OPEN,), status=of.DECLINED, answered_at=now_ms()) is None:
            return self._late_answer(driver, None)
        self._release_offered(driver.id, offer.id)
        self.scheduler.cancel_expiry(offer.id)
        self.bus.publish(ev.OfferDeclined(rescue_id=offer.rescue_id, by=f"driver:{driver.id}", offer_id=offer.id,
                                          driver_id=driver.id))
        return Declined(offer.rescue_code)

    def expire(self, offer_id: str, force: bool = False) -> str:
        """The offer timer. Keyed by offer id, so a stale timer never touches a newer offer."""
        offer = self.offers.get(offer_id)
        if offer is None or offer.status != of.OPEN:
            return "not-open"
        remaining = offer.expires_at - now_ms()
        if remaining > 0 and not force:  # the scheduler can run up to 1 s early: never expire early
            self.scheduler.expire_offer(offer_id, remaining / 1000 + 0.05, rearm=True)
            return "early"
        if self.offers.move(offer_id, (of.OPEN,), status=of.EXPIRED, expired_at=now_ms()) is None:
            return "not-open"
        offline = self._offline_after_missing(offer)
        if not offline:
            self._release_offered(offer.driver_id, offer_id)
        self.bus.publish(ev.OfferExpired(rescue_id=offer.rescue_id, by="timer", offer_id=offer_id,
                                         driver_id=offer.driver_id, late_ms=max(0, -remaining), taken_offline=offline))
        return "expired"

    def _offline_after_missing(self, offer: Offer) -> bool:
        """Take offline a driver whose last offers since they came free all ran out, rather than
        ask them again and again; True if this expiry did it."""
        driver = self.drivers.get(offer.driver_id)
        if driver is None:
            return False
        recent = self.offers.recent_for_driver(driver.id, int(driver.idle_since or 0), 2 * of.MISSED_IN_A_ROW_OFFLINE)
        if of.missed_in_a_row(recent) < of.MISSED_IN_A_ROW_OFFLINE:
            return False
        moved = self.drivers.move(driver.id, (OFFERED,), holding_offer=offer.id, status=OFFLINE, offer_id=None)
        self.matcher.geo.remove(driver.id)
        if moved:
            log.info("driver_offline_missed_offers", driver_id=driver.id)
        return moved is not None

    def _release_offered(self, driver_id: str, offer_id: str | None) -> None:
        """Back to available, but only if the driver is still holding this very offer."""
        driver = self.drivers.move(driver_id, (OFFERED,), holding_offer=offer_id, status=AVAILABLE, offer_id=None)
        self._back_in_service(driver, FREED_DRIVER_LOOKS)

    def _withdraw_offers(self, rescue_id: str, reason: str, keep: str | None = None) -> None:
        for offer in self.offers.for_rescue(rescue_id, of.OPEN):
            if offer.id == keep:
                continue
            if self.offers.move(offer.id, (of.OPEN,), status=of.TAKEN if reason == "taken" else of.WITHDRAWN):
                self._release_offered(offer.driver_id, offer.id)
                self.bus.publish(ev.OfferWithdrawn(rescue_id=rescue_id, by="dispatcher", offer_id=offer.id,
                                                   driver_id=offer.driver_id, reason=reason))

    def _free_driver(self, driver_id: str, rescue_id: str, idle_from_now: bool = True) -> None:
        fields = {"status": AVAILABLE, "rescue_id": None, **({"idle_since": now_ms()} if idle_from_now else {})}
        self._back_in_service(self.drivers.move(driver_id, None, on_rescue=rescue_id, **fields), FREED_DRIVER_LOOKS)

    def _back_in_service(self, driver: Driver | None, looks: int) -> None:
        """A driver became free: index them, and rescues that found nobody and wait on their
        retry timer get another look now, oldest first, instead of up to
        SEARCH_RETRY_SECONDS later."""
        if driver is None or not (driver.status == AVAILABLE and driver.location_is_fresh()):
            return
        self.matcher.index(driver)
        for rescue_id in self.rescues.waiting_for_retry(now_ms(), looks):
            self.scheduler.dispatch(rescue_id)

    # -- on the job --------------------------------------------------------------------------
    def job_action(self, driver: Driver, action: str) -> DriverResult:
        if not driver.rescue_id:
            return NoJob()
        try:
            rescue, changed = self.lifecycle.apply(driver.rescue_id, action, by=f"driver:{driver.id}",
                                                   event=ev.JOB_EVENTS[action], expect={"driver_id": driver.id},
                                                   driver_id=driver.id)
        except (IllegalTransition, ExpectationFailed):
            return JobRefused(action, self.rescues.get(driver.rescue_id))
        if action == "complete":
            self._free_driver(driver.id, rescue.id)
        return JobProgress(action, rescue, repeat=not changed)

    def drop(self, driver: Driver) -> DriverResult:
        rescue_id = driver.rescue_id
        if not rescue_id:
            return NoJob()
        try:
            rescue, _ = self.lifecycle.apply(rescue_id, "requeue", by=f"driver:{driver.id}", event=ev.DriverDropped,
                                             expect={"driver_id": driver.id},
                                             changes={"driver_id": None, "next_dispatch_at": 0}, driver_id=driver.id)
        except (IllegalTransition, ExpectationFailed):
            return JobRefused("drop", self.rescues.get(rescue_id))
        self.offers.drop_accepted(rescue_id, driver.id)
        self._free_driver(driver.id, rescue_id)
        return Dropped(rescue)

    # -- driver presence ---------------------------------------------------------------------
    def go_online(self, driver: Driver) -> DriverResult:
        if driver.status in (OFFERED, ON_JOB):
            return DriverBusy(driver)
        now = now_ms()
        updated = (self.drivers.move(driver.id, (OFFLINE,), status=AVAILABLE, idle_since=now)
                   or self.drivers.get(driver.id))
        self.changed("driver", driver_id=driver.id)
        if updated.location_is_fresh():
            self._back_in_service(updated, WAITING_LOOKS)
            return Online(updated, needs_location=False)
        return Online(updated, needs_location=True)

    def go_offline(self, driver: Driver) -> DriverResult:
        if driver.status == ON_JOB:
            return OfflineRefused()
        if driver.status == OFFERED:
            self.decline(driver)
        self.drivers.move(driver.id, SOURCES["go_offline"], status=OFFLINE, offer_id=None)
        self.matcher.geo.remove(driver.id)
        self.changed("driver", driver_id=driver.id)
        return Offline()

    def update_location(self, driver: Driver, point: Point, accuracy_m: float | None = None) -> DriverResult:
        """A new position (texted, or from the job page with the phone's accuracy): the record,
        the geo index once the driver is free, and for a driver on a job an event (the ETA, the
        arriving text and open pages follow from it)."""
        updated = self.drivers.set_location(driver.id, point.to_json(), now_ms())
        self._back_in_service(updated, WAITING_LOOKS)
        self.changed("driver", driver_id=driver.id)
        if updated.rescue_id:
            self.bus.publish(ev.DriverLocationUpdated(rescue_id=updated.rescue_id, by=f"driver:{driver.id}",
                                                      lat=point.lat, lng=point.lng, driver_id=driver.id,
                                                      accuracy_m=accuracy_m))
        return Located(updated, point.label)

    # -- dispatcher overrides ----------------------------------------------------------------
    def assign(self, rescue_id: str, driver_id: str, by: str = "dispatcher") -> Rescue:
        driver = self.drivers.get(driver_id)
        if driver is None:
            raise NotFound("no such driver")
        if not driver.active:
            raise Conflict("driver is not active")
        rescue = self.rescues.get(rescue_id)
        if rescue is None:
            raise NotFound("no such rescue")
        if rescue.status not in (*UNASSIGNED, *DRIVER_BOUND):
            raise Conflict(f"cannot assign a rescue that is {rescue.status}")
        if rescue.driver_id == driver_id:
            return rescue
        if driver.status == ON_JOB:
            raise Conflict("driver is on another job")
        if driver.status == OFFERED and driver.offer_id:
            self._take_up_offer(driver, rescue_id)
        if self.drivers.move(driver_id, SOURCES["assign"], status=ON_JOB, rescue_id=rescue_id, offer_id=None) is None:
            raise Conflict("driver was just taken by another job")
        self.matcher.geo.remove(driver_id)
        previous = rescue.driver_id
        searching = rescue.status in UNASSIGNED  # an unfulfilled rescue is reopened by assigning it
        try:
            if searching:
                rescue, _ = self.lifecycle.apply(rescue_id, "assign", by=by, event=ev.DriverAssigned,
                                                 changes={"driver_id": driver_id, "assigned_at": now_ms()},
                                                 expect={"status": rescue.status}, driver_id=driver_id)
            else:
                rescue, _ = self.lifecycle.apply(rescue_id, "reassign", by=by, event=ev.DriverReassigned,
                                                 changes={"driver_id": driver_id},
                                                 expect={"driver_id": previous, "version": rescue.version},
                                                 driver_id=driver_id, previous_driver_id=previous)
        except (ExpectationFailed, IllegalTransition):
            self._free_driver(driver_id, rescue_id, idle_from_now=False)
            raise Conflict("rescue changed while assigning; try again") from None
        if searching:
            self._withdraw_offers(rescue_id, reason="taken")
        elif previous:
            self._free_driver(previous, rescue_id)
        return rescue

    def _take_up_offer(self, driver: Driver, rescue_id: str) -> None:
        """The driver's own offer for this rescue is simply taken up; one for another is withdrawn."""
        held = self.offers.get(driver.offer_id)
        mine = held is not None and held.rescue_id == rescue_id
        offer = self.offers.move(driver.offer_id, (of.OPEN,), status=of.ACCEPTED if mine else of.WITHDRAWN)
        if offer and not mine:
            self.bus.publish(ev.OfferWithdrawn(rescue_id=offer.rescue_id, by="dispatcher", offer_id=offer.id,
                                               driver_id=driver.id, reason="reassigned"))
            self.scheduler.dispatch(offer.rescue_id)

    def cancel(self, rescue_id: str, reason: str, by: str) -> Rescue:
        try:
            rescue, _ = self.lifecycle.apply(rescue_id, "cancel", by=by, event=ev.RescueCancelled,
                                             changes={"cancel_reason": reason, "cancelled_by": by}, reason=reason)
        except KeyError:
            raise NotFound("no such rescue") from None
        except IllegalTransition as exc:
            raise Conflict(str(exc)) from exc
        return rescue

