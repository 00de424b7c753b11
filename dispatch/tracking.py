"""Where the driver is and when they get there (PRODUCT.md §9): the one ETA every surface shows,
the "your driver is arriving" moment, and what the rider's tracking page may show.

The ETA is worked out when something changes it (a driver takes the job, a position comes in)
and kept on the rescue as an arrival time, so the assigned text, a STATUS reply, the tracking
page and the status page all say the same thing, the minutes count down between positions,
and reading it never waits on a routing engine. A routing engine (an OSRM-compatible /route
API) gives the drive time by road when there is one; without it, or when it does not answer
in time, the drive time comes from the distance at an average city speed.
"""
from __future__ import annotations

import math
from typing import Any

import structlog

from dispatch.bus import EventBus
from dispatch.config import Settings
from dispatch.model import events as ev
from dispatch.model.clock import now_ms
from dispatch.model.driver import Driver, first_name
from dispatch.model.geo import Point, distance_km, eta_for_drive, eta_minutes
from dispatch.model.rescue import DRIVER_BOUND, Rescue
from dispatch.ports import DriverRepository, RescueRepository, Router, RoutingUnavailable

log = structlog.get_logger(__name__)

# PRODUCT.md §9: a driver this close to the pickup is arriving.
ARRIVING_METRES = 150
# A fix less sure than this (a phone on cell towers only) could put a driver streets away.
ARRIVING_MAX_ACCURACY_M = 100
# Between positions the ETA counts down to this, never to zero: the driver is not there yet.
ETA_FLOOR_MINUTES = 1
BY_ROAD, BY_DISTANCE = "route", "distance"


class Tracking:
    def __init__(self, settings: Settings, rescues: RescueRepository, drivers: DriverRepository, bus: EventBus,
                 router: Router | None = None) -> None:
        self.settings, self.rescues, self.drivers, self.bus, self.router = settings, rescues, drivers, bus, router

    # -- the ETA -------------------------------------------------------------------------------
    def estimate(self, driver_at: Point, pickup: Point) -> tuple[int, str]:
        """Minutes from `driver_at` to the pickup, and how they were found."""
        if self.router is not None:
            try:
                return eta_for_drive(self.router.drive_seconds(driver_at, pickup)), BY_ROAD
            except RoutingUnavailable as exc:
                log.info("routing_unavailable", error=str(exc)[:120])
        return eta_minutes(driver_at, pickup, self.settings.eta_speed_kmh), BY_DISTANCE

    def refresh(self, event: ev.Event) -> None:
        """A handler of the events that move the ETA: assigned, reassigned, a new position."""
        rescue = self.rescues.get(event.rescue_id)
        if rescue is None or rescue.status not in DRIVER_BOUND or not rescue.driver_id:
            return
        driver = self.drivers.get(rescue.driver_id)
        if driver is None or driver.point is None:
            return
        minutes, source = self.estimate(driver.point, Point.from_json(rescue.pickup))
        now = now_ms()
        self.rescues.set_fields(rescue.id, {"eta_due_at": now + minutes * 60_000, "eta_driver_id": driver.id,
                                            "eta_source": source})

    def eta_minutes(self, rescue: Rescue, driver: Driver | None, now: int | None = None) -> int | None:
        """The minutes to show: until the kept arrival time, or (nothing kept yet for this
        driver) estimated from the distance. None once the driver is there, or without one."""
        if rescue.status not in DRIVER_BOUND or driver is None or driver.id != rescue.driver_id:
            return None
        due = rescue.extra.get("eta_due_at")
        if due and rescue.extra.get("eta_driver_id") == driver.id:
            left = (int(due) - (now or now_ms())) / 60_000
            return max(ETA_FLOOR_MINUTES, math.ceil(left))
        if driver.point is None:
            return None
        return eta_minutes(driver.point, Point.from_json(rescue.pickup), self.settings.eta_speed_kmh)

    # -- arriving ------------------------------------------------------------------------------
    def check_arriving(self, event: ev.DriverLocationUpdated) -> None:
        """The first position within ARRIVING_METRES of the pickup makes the rescue's one
        DriverArriving. The claim names the position that made it, so if this handler is
        handed the same position again after a crash it finishes what it started."""
        rescue = self.rescues.get(event.rescue_id)
        if rescue is None or rescue.status not in DRIVER_BOUND or rescue.driver_id != event.driver_id:
            return
        if event.accuracy_m is not None and event.accuracy_m > ARRIVING_MAX_ACCURACY_M:
            return
        metres = distance_km(Point(event.lat, event.lng), Point.from_json(rescue.pickup)) * 1000
        if metres > ARRIVING_METRES:
            return
        claimed = self.rescues.claim_arriving(rescue.id, event.id, now_ms())
        if not claimed and not (event.redelivered and rescue.extra.get("arriving_event_id") == event.id):
            return
        self.bus.publish(ev.DriverArriving(rescue_id=rescue.id, by=event.by, driver_id=event.driver_id,
                                           metres=round(metres)))

    # -- the rider's tracking page ---------------------------------------------------------------
    def rider_view(self, rescue: Rescue, driver: Driver | None) -> dict[str, Any]:
        """Everything the tracking link shows (GET /t/<token>/state.json), and nothing more: no
        phone number, the driver's first name only, and no position once the rescue is closed
        or before a driver has one."""
        shown = None
        if rescue.is_open and driver is not None and rescue.driver_id == driver.id:
            point = driver.point
            shown = {"name": first_name(driver.name), "vehicle": driver.vehicle,
                     "lat": round(point.lat, 6) if point else None, "lng": round(point.lng, 6) if point else None}
        return {"status": rescue.status, "eta_minutes": self.eta_minutes(rescue, driver), "driver": shown}
