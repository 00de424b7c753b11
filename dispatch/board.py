"""What the status page shows: open rescues with their flags, drivers, today's figures."""
from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import Any

from dispatch.config import Settings
from dispatch.model import events as ev
from dispatch.model.clock import iso, now_ms
from dispatch.model.driver import OFFERED, Driver
from dispatch.model.phones import mask
from dispatch.model.rescue import CRASH, SEARCHING, UNFULFILLED, Rescue
from dispatch.ports import DriverRepository, EventStore, MessageStore, OfferRepository, RescueRepository
from dispatch.tracking import Tracking

LONG_SEARCH_MS = 5 * 60 * 1000
RECENT_MS = 24 * 3600 * 1000
BOARD_RESCUES = 200
# The conversation that led to a rescue starts before it; an hour covers any intake. Texts
# a little after it closed (a rating, "thanks") still belong to it.
INTAKE_LOOKBACK_MS = 3600 * 1000
AFTER_CLOSE_MS = 3600 * 1000
PAGE_MESSAGES = 300
# The service's own moves, as the timeline shows them (people are named by name_of).
SYSTEM_NAMES = {"dispatcher": "the service", "timer": "the offer timer"}


def _start_of_today() -> int:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(start.timestamp() * 1000)


def _hour(ms: int) -> int:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).hour


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
                 events: EventStore, tracking: Tracking, messages: MessageStore, offers: OfferRepository) -> None:
        self.settings, self.rescues, self.drivers, self.events = settings, rescues, drivers, events
        self.tracking, self.messages, self.offers = tracking, messages, offers

    def rescue_page(self, rescue: Rescue) -> dict[str, Any]:
        """A rescue with its timeline and every text of both parties, newest first, each naming
        who sent it to whom; people by name (drivers) or username (dispatchers), not ids."""
        driver_ids = {o.driver_id for o in self.offers.for_rescue(rescue.id)} | (
            {rescue.driver_id} if rescue.driver_id else set())
        drivers = {i: d for i in driver_ids if (d := self.drivers.get(i))}
        party = {rescue.rider_phone: "rider", **{d.phone: d.name for d in drivers.values()}}
        until = rescue.updated_at + AFTER_CLOSE_MS if not rescue.is_open else now_ms()
        texts = self.messages.for_rescue(rescue.id, list(party), rescue.created_at - INTAKE_LOOKBACK_MS, until,
                                         PAGE_MESSAGES)
        messages = []
        for m in texts:
            who = party.get(m["phone"], "someone else")
            sender = "dispatch" if m.get("kind") == "dispatcher" else "service"
            outgoing = m["direction"] == "out"
            messages.append({"id": m["_id"], "direction": m["direction"], "body": m["body"],
                             "status": m["status"], "kind": m.get("kind"), "created_at": iso(m["created_at"]),
                             "from": sender if outgoing else who, "to": who if outgoing else "service",
                             "party": "rider" if who == "rider" else "driver"})
        timeline = [{**e, "at": iso(e["at"]), "by_name": self.name_of(e.get("by") or "", drivers)}
                    for e in self.events.timeline(rescue.id)]
        names = {i: d.name for i, d in drivers.items()}
        return {**rescue.to_json(), "driver_name": names.get(rescue.driver_id or ""), "rider": mask(rescue.rider_phone),
                "timeline": timeline, "messages": messages}

    def name_of(self, by: str, known: dict[str, Driver]) -> str:
        """The person behind a timeline's `by` (`driver:<id>`, `dispatcher:<username>`, `rider`, `timer`)."""
        kind, _, rest = by.partition(":")
        if kind == "driver" and rest:
            driver = known.get(rest) or self.drivers.get(rest)
            return driver.name if driver else "a removed driver"
        if kind == "dispatcher" and rest:
            return rest
        return SYSTEM_NAMES.get(by, by)

    def board(self) -> dict[str, Any]:
        now = now_ms()
        drivers = {d.id: d for d in self.drivers.all()}
        rescues = [self._row(r, drivers.get(r.driver_id) if r.driver_id else None, now)
                   for r in self.rescues.on_board(now - RECENT_MS, BOARD_RESCUES)]
        rescues.sort(key=lambda x: (not x["flags"], -x["age_s"]))
        jobs = {r["driver_id"]: r["code"] for r in rescues if r["driver_id"]}
        offered = {d.id: offer.rescue_id for d in drivers.values()
                   if d.status == OFFERED and d.offer_id and (offer := self.offers.get(d.offer_id))}
        area = self.settings.service_area
        return {"rescues": rescues, "drivers": [{**self._driver_row(d, jobs, now), "offer_rescue_id": offered.get(d.id)}
                                                for d in sorted(drivers.values(), key=lambda d: d.name)],
                "stats": self.stats(), "now": iso(now),
                "area": {"lat": area.lat, "lng": area.lng, "radius_km": area.radius_km}}

    def _row(self, r: Rescue, driver: Driver | None, now: int) -> dict[str, Any]:
        eta = self.tracking.eta_minutes(r, driver)
        return {"id": r.id, "code": r.code, "status": r.status, "age_s": (now - r.created_at) // 1000,
                "problem": r.problem_label, "problem_code": r.problem, "pickup": r.pickup, "rider": mask(r.rider_phone),
                "driver": driver.name if driver else None, "driver_id": r.driver_id, "eta_min": eta,
                "payment_status": r.payment_status, "quote_cents": r.quote_cents, "flags": _flags(r, now)}

    @staticmethod
    def _driver_row(d: Driver, jobs: dict[str, str], now: int) -> dict[str, Any]:
        return {"id": d.id, "name": d.name, "vehicle": d.vehicle, "status": d.status, "active": d.active,
                "location": d.location,
                "location_age_s": (now - int(d.location_updated_at)) // 1000 if d.location_updated_at else None,
                "job": jobs.get(d.id), "rating": d.rating}

    def figures(self) -> dict[str, Any]:
        """Today's figures by UTC hour: rescues requested, the median minutes until a driver was
        assigned (None for an hour without one), and the share that found nobody."""
        today = _start_of_today()
        created = self.rescues.created_since(today)
        per_hour = [0] * 24
        for at in created.values():
            per_hour[_hour(at)] += 1
        waits: list[list[float]] = [[] for _ in range(24)]
        unfulfilled = 0
        for e in self.events.of_types_since((ev.DriverAssigned.TYPE, ev.RescueUnfulfilled.TYPE), today):
            if e.rescue_id not in created:
                continue
            if isinstance(e, ev.DriverAssigned):
                waits[_hour(created[e.rescue_id])].append((e.at - created[e.rescue_id]) / 60000)
            else:
                unfulfilled += 1
        return {"hours": [f"{h:02d}:00" for h in range(24)], "rescues_per_hour": per_hour,
                "median_wait_minutes": [round(statistics.median(w), 1) if w else None for w in waits],
                "rescues_today": len(created), "unfulfilled_today": unfulfilled,
                "unfulfilled_share": round(unfulfilled / len(created), 3) if created else None}

    def stats(self) -> dict[str, Any]:
        """Counts by status, today's median minutes to assign and to complete, drivers online."""
        today = _start_of_today()
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
