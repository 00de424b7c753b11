"""Drivers: their dispatch statuses, the commands that move them, and who may be offered a job.

The driver's status is the dispatcher's record (offline, available, offered, on_job). The
lifecycle below is the one table of which command is legal in which status: the dispatcher
guards its compare-and-set updates with it, and the driver's SMS flow lists the commands a
driver can use from it.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dispatch.model.clock import iso, now_ms
from dispatch.model.geo import Point

OFFLINE, AVAILABLE, OFFERED, ON_JOB = "offline", "available", "offered", "on_job"
STATUSES = (OFFLINE, AVAILABLE, OFFERED, ON_JOB)
ONLINE_STATUSES = (AVAILABLE, OFFERED, ON_JOB)
NAME_MAX, VEHICLE_MAX = 80, 80
LANGUAGES = ("en", "es")
LOCATION_FRESH_MS = 30 * 60 * 1000
# Distances this close are a tie; then the driver idle longest goes first.
TIE_KM = 0.1

# (command, from, to): a driver's commands and the dispatcher's own moves. `to` None keeps
# the status (job progress, a new position).
LIFECYCLE = [
    ("go_online", [OFFLINE, AVAILABLE], AVAILABLE),
    ("go_offline", [OFFLINE, AVAILABLE, OFFERED], OFFLINE),
    ("offer", [AVAILABLE], OFFERED),
    ("accept", [OFFERED], ON_JOB),
    ("decline", [OFFERED], AVAILABLE),
    ("drive", [ON_JOB], None),
    ("arrive", [ON_JOB], None),
    ("load", [ON_JOB], None),
    ("complete", [ON_JOB], AVAILABLE),
    ("drop", [ON_JOB], AVAILABLE),
    # A dispatcher may hand a job to any driver who is not on another one.
    ("assign", [OFFLINE, AVAILABLE, OFFERED], ON_JOB),
    ("locate", list(STATUSES), None),
    ("status", list(STATUSES), None),
]
SOURCES = {command: tuple(sources) for command, sources, _ in LIFECYCLE}


def commands_in(status: str) -> list[str]:
    """The commands legal for a driver in `status`, in the lifecycle's order."""
    return [command for command, sources, _ in LIFECYCLE if status in sources]


def first_name(name: str | None) -> str:
    """What riders see of a driver's name."""
    return (name or "").strip().split(" ")[0]


class DuplicateDriver(ValueError):
    """A driver with this phone number is already registered."""


@dataclass
class Driver:
    id: str
    phone: str
    name: str
    vehicle: str
    status: str = OFFLINE
    active: bool = True
    location: dict[str, Any] | None = None
    location_updated_at: int | None = None
    offer_id: str | None = None
    rescue_id: str | None = None
    idle_since: int = 0
    rating_sum: int = 0
    rating_count: int = 0
    language: str = "en"
    created_at: int = field(default_factory=now_ms)
    updated_at: int = field(default_factory=now_ms)

    @classmethod
    def new(cls, phone: str, name: str, vehicle: str) -> Driver:
        """A newly registered driver: offline until they text ON."""
        return cls(id=uuid.uuid4().hex, phone=phone, name=name, vehicle=vehicle)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Driver:
        values = {k: doc[k] for k in cls.__dataclass_fields__ if k != "id" and doc.get(k) is not None}
        driver = cls(id=doc["_id"], **values)
        driver.active = bool(driver.active)  # the embedded store returns booleans as 1/0
        return driver

    def to_doc(self) -> dict[str, Any]:
        return {"_id": self.id, **{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "id"}}

    @property
    def point(self) -> Point | None:
        return Point.from_json(self.location)

    @property
    def rating(self) -> float | None:
        return round(self.rating_sum / self.rating_count, 2) if self.rating_count else None

    def location_is_fresh(self, now: int | None = None) -> bool:
        return bool(self.location) and self.location_updated_at is not None and \
            (now or now_ms()) - int(self.location_updated_at) <= LOCATION_FRESH_MS

    def can_be_offered(self, excluded: set[str], now: int) -> bool:
        """Online, not on a job, not holding an offer, active, located recently, not excluded."""
        return (self.status == AVAILABLE and self.active and self.id not in excluded
                and self.location_is_fresh(now))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "phone": self.phone, "name": self.name, "vehicle": self.vehicle,
            "status": self.status, "active": self.active, "location": self.location,
            "location_updated_at": iso(self.location_updated_at), "rescue_id": self.rescue_id,
            "rating": self.rating, "rating_count": self.rating_count, "language": self.language,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class Candidate:
    driver_id: str
    distance_km: float
    idle_since: int


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Nearest first; among those within TIE_KM of the nearest left, the one idle longest."""
    remaining = sorted(candidates, key=lambda c: c.distance_km)
    ranked: list[Candidate] = []
    while remaining:
        nearest = remaining[0].distance_km
        tied = [c for c in remaining if c.distance_km - nearest <= TIE_KM]
        pick = min(tied, key=lambda c: (c.idle_since, c.distance_km))
        ranked.append(pick)
        remaining.remove(pick)
    return ranked
