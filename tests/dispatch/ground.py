"""A patch of ground of a test's own, far from Manhattan and from every other test.

The Redis GEO index is shared with every test (and with a live service that may be
running), so in-process dispatch tests each put their drivers and pickups on their own
ground: 0.6 degrees of latitude (about 67 km, more than twice the widest 20 km search
radius) from the previous one, along a longitude each module picks. Drivers go offline
and rescues are cancelled afterwards.
"""
from __future__ import annotations

import itertools
import math
import uuid

import rq

from dispatch.bootstrap import Services
from dispatch.model.clock import now_ms
from dispatch.model.driver import Candidate, Driver
from dispatch.model.errors import DomainError as DispatchError
from dispatch.model.geo import Point
from dispatch.model.rescue import Rescue
from tests.conftest import new_number

BASE_LAT = 30.0
KM_PER_DEG_LAT = 6371.009 * math.pi / 180  # great-circle km per degree along a meridian
_grounds = itertools.count()


def purge_queue(queue: rq.Queue) -> None:
    """Drop a test module's private queue with everything scheduled on it."""
    for registry in (queue.scheduled_job_registry, queue.deferred_job_registry):
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)
    queue.delete(delete_jobs=True)


class Area:
    def __init__(self, svc: Services, base_lng: float) -> None:
        self.svc, self.db = svc, svc.db
        self.lat, self.lng = BASE_LAT + 0.6 * next(_grounds), base_lng
        self.driver_ids: list[str] = []
        self.rescue_ids: list[str] = []
        self.phones: list[str] = []

    def at(self, north_km: float = 0.0, east_km: float = 0.0) -> tuple[float, float]:
        return (self.lat + north_km / KM_PER_DEG_LAT,
                self.lng + east_km / (KM_PER_DEG_LAT * math.cos(math.radians(self.lat))))

    def driver(self, north_km: float = 0.0, east_km: float = 0.0, online: bool = True) -> Driver:
        driver = Driver.new(new_number(), f"Test {uuid.uuid4().hex[:4]}", "Cargo van")
        self.svc.drivers.add(driver)
        self.driver_ids.append(driver.id)
        self.phones.append(driver.phone)
        self.svc.dispatcher.update_location(driver, Point(*self.at(north_km, east_km), "test spot"))
        if online:
            self.svc.dispatcher.go_online(self.svc.drivers.get(driver.id))
        return self.svc.drivers.get(driver.id)

    def rescue(self, north_km: float = 0.0, east_km: float = 0.0) -> Rescue:
        lat, lng = self.at(north_km, east_km)
        rider = new_number()
        self.phones.append(rider)
        rescue = self.svc.lifecycle.create(
            request_key=f"test-ground-{uuid.uuid4().hex}", rider_phone=rider,
            pickup={"lat": lat, "lng": lng, "label": "Test pickup"}, dropoff=None, problem="flat_tire",
            problem_note="flat", quote_cents=2800, trip_miles=1.0, surge=1.0, channel="sms")
        self.rescue_ids.append(rescue.id)
        return rescue

    def candidates(self, excluded: set[str] | None = None) -> list[Candidate]:
        return self.svc.matcher.candidates(self.lat, self.lng, excluded or set())

    def indexed(self, driver_id: str) -> bool:
        return self.svc.redis.zscore(self.svc.geo.key, driver_id) is not None

    def cleanup(self) -> None:
        for rescue_id in self.rescue_ids:
            try:
                self.svc.dispatcher.cancel(rescue_id, "test", by="test")
            except DispatchError:
                pass  # already closed
        for driver_id in self.driver_ids:
            self.db.drivers.update_one({"_id": driver_id}, {"$set": {
                "status": "offline", "offer_id": None, "rescue_id": None, "updated_at": now_ms()}})
            self.svc.geo.remove(driver_id)
        # Send what the notifier queued for this test's people now, through the real send
        # job, rather than leave it pending in a queue nobody serves for a live service's
        # sweeper to send in the middle of some later test.
        for msg in self.db.messages.find({"phone": {"$in": self.phones}, "status": "pending"}, {"_id": 1}):
            try:
                self.svc.delivery.deliver(msg["_id"])
            except Exception:  # noqa: BLE001 - a transient send failure is not this test's concern
                pass
