"""What the status page shows: open rescues with their flags, drivers, today's figures."""
from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import Any

from dispatch.config import Settings
from dispatch.model import events as ev
from dispatch.model.clock import iso, now_ms
from dispatch.model.driver import Driver
from dispatch.model.phones import mask
from dispatch.model.rescue import CRASH, SEARCHING, UNFULFILLED, Rescue
from dispatch.ports import DriverRepository, EventStore, RescueRepository
from dispatch.tracking import Tracking

LONG_SEARCH_MS = 5 * 60 * 1000
RECENT_MS = 24 * 3600 * 1000
BOARD_RESCUES = 200


def _flags(rescue: Rescue, now: int) -> list[str]:
    flags = []
    if rescue.status == UNFULFILLED:
        flags.append("unfulfilled")
    if rescue.status == SEARCHING and now - rescue.searching_since > LONG_SEARCH_MS:
        flags.append("long search")
    if rescue.problem == CRASH and rescue.is_open:
        flags.append("crash")
    return flags


class Board:
    def __init__(self, settings: Settings, rescues: RescueRepository, drivers: DriverRepository,
                 events: EventStore, tracking: Tracking) -> None:
        self.settings, self.rescues, self.drivers, self.events = settings, rescues, drivers, events
        self.tracking = tracking

    def board(self) -> dict[str, Any]:
        now = now_ms()
        drivers = {d.id: d for d in self.drivers.all()}
        rescues = [self._row(r, drivers.get(r.driver_id) if r.driver_id else None, now)
                   for r in self.rescues.on_board(now - RECENT_MS, BOARD_RESCUES)]
        rescues.sort(key=lambda x: (not x["flags"], -x["age_s"]))
        jobs = {r["driver_id"]: r["code"] for r in rescues if r["driver_id"]}
        area = self.settings.service_area
        return {"rescues": rescues, "drivers": [self._driver_row(d, jobs, now)
                                                for d in sorted(drivers.values(), key=lambda d: d.name)],
                "stats": self.stats(), "now": iso(now),
                "area": {"lat": area.lat, "lng": area.lng, "radius_km": area.radius_km}}

    def _row(self, r: Rescue, driver: Driver | None, now: int) -> dict[str, Any]:
        eta = self.tracking.eta_minutes(r, driver)
        return {"id": r.id, "code": r.code, "status": r.status, "age_s": (now - r.created_at) // 1000,
                "problem": r.problem_label, "pickup": r.pickup, "rider": mask(r.rider_phone),
                "driver": driver.name if driver else None, "driver_id": r.driver_id, "eta_min": eta,
                "payment_status": r.payment_status, "quote_cents": r.quote_cents, "flags": _flags(r, now)}

    @staticmethod
    def _driver_row(d: Driver, jobs: dict[str, str], now: int) -> dict[str, Any]:
        return {"id": d.id, "name": d.name, "vehicle": d.vehicle, "status": d.status, "active": d.active,
                "location": d.location,
                "location_age_s": (now - int(d.location_updated_at)) // 1000 if d.location_updated_at else None,
                "job": jobs.get(d.id), "rating": d.rating}

    def stats(self) -> dict[str, Any]:
        """Counts by status, today's median minutes to assign and to complete, drivers online."""
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        today = int(start.timestamp() * 1000)
        created = self.rescues.created_since(today)
        to_assign, to_complete = [], []
        for e in self.events.of_types_since((ev.DriverAssigned.TYPE, ev.RescueCompleted.TYPE), today):
            if e.rescue_id in created:
                minutes = (e.at - created[e.rescue_id]) / 60000
                (to_assign if isinstance(e, ev.DriverAssigned) else to_complete).append(minutes)
        return {
            "by_status": self.rescues.count_by_status(),
            "median_minutes_to_assign_today": round(statistics.median(to_assign), 1) if to_assign else None,
            "median_minutes_to_complete_today": round(statistics.median(to_complete), 1) if to_complete else None,
            "drivers_online": self.drivers.count_online(active_only=False),
            "rescues_today": len(created),
        }
