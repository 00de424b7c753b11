"""Finding the driver for a rescue (PRODUCT.md §5).

Candidates come from the geo index of available drivers, which is only an index: the
driver records are the truth, every candidate is re-checked against them, and the index
is rebuilt from them whenever it has been lost (a flushed or restarted Redis).
"""
from __future__ import annotations

from dispatch.model.clock import now_ms
from dispatch.model.driver import AVAILABLE, Candidate, Driver, rank
from dispatch.ports import DriverRepository, GeoIndex

RADIUS_STEPS_KM = (2.0, 5.0, 10.0, 20.0)


class Matcher:
    def __init__(self, geo: GeoIndex, drivers: DriverRepository) -> None:
        self.geo, self.drivers = geo, drivers

    def index(self, driver: Driver) -> None:
        """Put a driver who is free and located recently into the index."""
        if driver.status == AVAILABLE and driver.location_is_fresh():
            self.geo.put(driver.id, driver.location["lat"], driver.location["lng"])

    def rebuild(self) -> int:
        """Reload the index from the driver records; returns how many drivers it holds."""
        now = now_ms()
        located = [d for d in self.drivers.available() if d.can_be_offered(set(), now)]
        self.geo.replace({d.id: (d.location["lat"], d.location["lng"]) for d in located})
        return len(located)

    def ensure(self) -> None:
        if not self.geo.is_built():
            self.rebuild()

    def candidates(self, lat: float, lng: float, excluded: set[str], want: int = 1) -> list[Candidate]:
        """Widen the radius step by step until `want` eligible drivers turn up (or the last step)."""
        self.ensure()
        now = now_ms()
        found: list[Candidate] = []
        for radius in RADIUS_STEPS_KM:
            hits = [(driver_id, dist) for driver_id, dist in self.geo.nearby(lat, lng, radius)
                    if driver_id not in excluded]
            if not hits:
                continue
            docs = self.drivers.many([h[0] for h in hits])
            found = []
            for driver_id, dist in hits:
                driver = docs.get(driver_id)
                if driver is None or driver.status != AVAILABLE:
                    self.geo.remove(driver_id)  # the index was behind the records
                elif driver.can_be_offered(excluded, now):
                    found.append(Candidate(driver_id, dist, int(driver.idle_since or 0)))
            if len(found) >= want:
                break
        return rank(found)
