"""dispatch.matching: ranking, the widening candidate search over the Redis GEO index, and
the index's rebuild from MongoDB.

Real Redis and the real MongoDB-wire server. The GEO index key is shared with every other
test (and with a live service that may be running), so each test works in its own patch
of ground far from Manhattan and from every other test here (0.6 degrees of latitude, about
67 km, apart: more than twice the 20 km widest radius), and takes its drivers offline
again afterwards. The `Services` used here has its own RQ queue that no worker serves, so
jobs started by these tests (dispatch_rescue after a driver goes online) never run.
"""
from __future__ import annotations

import dataclasses
import uuid

import pytest

from dispatch.bootstrap import Services
from dispatch.config import ServiceArea
from dispatch.matching import RADIUS_STEPS_KM
from dispatch.model.clock import now_ms
from dispatch.model.driver import LOCATION_FRESH_MS, TIE_KM, Candidate, rank
from tests.dispatch.ground import BASE_LAT, Area, purge_queue

BASE_LNG = -100.0  # south Texas; other test modules use other longitudes




@pytest.fixture(scope="module")
def svc(services, settings):
    """Services on the same stores, with a queue nobody works and a service area out here."""
    own = Services(dataclasses.replace(settings, queue_name=f"q_matching_{uuid.uuid4().hex[:8]}",
                                       service_area=ServiceArea(BASE_LAT + 10, BASE_LNG, 1500.0)),
                   services.db, services.redis)
    yield own
    for queue in own.scheduler.queues:
        purge_queue(queue)




@pytest.fixture
def area(svc):
    a = Area(svc, BASE_LNG)
    yield a
    a.cleanup()


def ids(candidates: list[Candidate]) -> list[str]:
    return [c.driver_id for c in candidates]


# --- rank -----------------------------------------------------------------------------------

def test_rank_puts_the_nearest_first():
    ranked = rank([Candidate("far", 3.0, 0), Candidate("near", 0.5, 9_000), Candidate("mid", 1.7, 5)])
    assert ids(ranked) == ["near", "mid", "far"]


def test_rank_breaks_a_tie_by_longest_idle():
    # 40 m apart is a tie; the driver idle since earlier (smaller idle_since) goes first.
    ranked = rank([Candidate("recent", 1.00, 5_000), Candidate("idle-longest", 1.04, 1_000)])
    assert ids(ranked) == ["idle-longest", "recent"]


def test_rank_beyond_the_tie_distance_nearest_still_wins():
    ranked = rank([Candidate("idle-longest", 1.00 + 2.5 * TIE_KM, 1_000), Candidate("near", 1.00, 5_000)])
    assert ids(ranked) == ["near", "idle-longest"]


def test_rank_tie_straddling_a_rounding_boundary():
    """Two drivers 2 metres apart are a tie wherever they happen to be."""
    a, b = Candidate("recent", 1.049, 5_000), Candidate("idle-longest", 1.051, 1_000)
    assert abs(a.distance_km - b.distance_km) < TIE_KM
    assert ids(rank([a, b])) == ["idle-longest", "recent"], (
        "APP BUG: dispatch/matching.py rank() buckets distances with round(d / TIE_KM), so 1.049 km "
        "and 1.051 km (2 m apart, well within TIE_KM=0.1) land in buckets 10 and 11 and are not a "
        "tie: the more recently idle driver wins on distance instead of the driver idle longest")


# --- candidates: the widening radius ----------------------------------------------------------

def test_a_driver_8_km_away_is_found_when_nobody_is_nearer(area):
    far = area.driver(north_km=8.0)
    found = area.candidates()
    assert ids(found) == [far.id]
    assert found[0].distance_km == pytest.approx(8.0, abs=0.05)
    assert found[0].idle_since == far.idle_since


def test_the_search_stops_at_the_first_radius_with_someone(area):
    near = area.driver(north_km=1.0)
    area.driver(north_km=8.0)
    assert ids(area.candidates()) == [near.id], "an 8 km driver is not a candidate when one is 1 km away"


@pytest.mark.parametrize("step", range(len(RADIUS_STEPS_KM) - 1))
def test_each_radius_step_is_a_boundary(area, step):
    radius = RADIUS_STEPS_KM[step]
    inside = area.driver(north_km=radius - 0.1)
    area.driver(east_km=radius + 0.2)
    assert ids(area.candidates()) == [inside.id]


def test_drivers_in_the_same_step_come_ranked(area):
    b = area.driver(north_km=4.5)
    a = area.driver(east_km=3.0)
    found = area.candidates()
    assert ids(found) == [a.id, b.id]
    assert found[0].distance_km == pytest.approx(3.0, abs=0.05)


def test_nobody_beyond_the_widest_radius(area):
    area.driver(north_km=RADIUS_STEPS_KM[-1] + 1.0)
    assert area.candidates() == []


def test_equal_distance_goes_to_the_driver_idle_longest(area):
    first = area.driver(north_km=1.0)
    second = area.driver(east_km=1.0)
    area.svc.db.drivers.update_one({"_id": first.id}, {"$set": {"idle_since": now_ms() - 1_000}})
    area.svc.db.drivers.update_one({"_id": second.id}, {"$set": {"idle_since": now_ms() - 600_000}})
    assert ids(area.candidates()) == [second.id, first.id]


# --- candidates: who is skipped -----------------------------------------------------------------

def test_stale_location_is_skipped(area):
    stale = area.driver(north_km=0.5)
    fresh = area.driver(north_km=1.5)
    area.svc.db.drivers.update_one({"_id": stale.id}, {"$set": {
        "location_updated_at": now_ms() - LOCATION_FRESH_MS - 60_000}})
    assert ids(area.candidates()) == [fresh.id]


def test_stale_alone_means_no_candidate(area):
    stale = area.driver(north_km=0.5)
    area.svc.db.drivers.update_one({"_id": stale.id}, {"$set": {
        "location_updated_at": now_ms() - LOCATION_FRESH_MS - 1_000}})
    assert area.candidates() == []


@pytest.mark.parametrize("status", ["offline", "offered", "on_job"])
def test_unavailable_driver_is_skipped_and_dropped_from_the_index(area, status):
    gone = area.driver(north_km=0.5)
    other = area.driver(north_km=1.5)
    assert area.indexed(gone.id)
    # MongoDB changed behind the index's back (as by another process).
    area.svc.db.drivers.update_one({"_id": gone.id}, {"$set": {"status": status}})
    assert ids(area.candidates()) == [other.id]
    assert not area.indexed(gone.id), "the index entry of a driver who is not available is removed"
    assert area.indexed(other.id)


def test_inactive_driver_is_skipped(area):
    inactive = area.driver(north_km=0.5)
    other = area.driver(north_km=1.5)
    area.svc.db.drivers.update_one({"_id": inactive.id}, {"$set": {"active": False}})
    assert ids(area.candidates()) == [other.id]


def test_index_entry_without_a_driver_is_removed(area):
    ghost = f"ghost-{uuid.uuid4().hex}"
    lat, lng = area.at(north_km=0.3)
    area.svc.geo.put(ghost, lat, lng)
    real = area.driver(north_km=1.0)
    assert ids(area.candidates()) == [real.id]
    assert not area.indexed(ghost)


def test_excluded_driver_is_skipped(area):
    passed = area.driver(north_km=0.5)
    other = area.driver(north_km=8.0)
    assert ids(area.candidates({passed.id})) == [other.id]


def test_excluded_alone_means_no_candidate(area):
    passed = area.driver(north_km=0.5)
    assert area.candidates({passed.id}) == []
    assert ids(area.candidates()) == [passed.id], "excluded for one rescue, still there for the next"


@pytest.mark.parametrize("other_km", [1.5, 8.0], ids=["same-step", "wider-step"])
def test_excluded_driver_keeps_its_index_entry(area, other_km):
    """Excluding a driver (they passed on *this* rescue) must not forget them for others."""
    passed = area.driver(north_km=0.5)
    other = area.driver(north_km=other_km)
    assert ids(area.candidates({passed.id})) == [other.id]
    assert area.indexed(passed.id), (
        "APP BUG: dispatch/matching.py GeoIndex.candidates() fetches docs only for non-excluded ids, "
        "then treats the excluded driver's missing doc as 'not in MongoDB' and calls self.remove() "
        "on it: an available driver who passed on one rescue vanishes from the GEO index (and is "
        "never offered another rescue until they move or go online again)")
    assert ids(area.candidates())[0] == passed.id  # nearest first again for the next rescue


def test_only_available_drivers_are_indexed_on_the_way_in(area):
    offline = area.driver(north_km=0.5, online=False)
    assert not area.indexed(offline.id)
    assert area.candidates() == []


# --- ensure / rebuild ---------------------------------------------------------------------------

def test_candidates_rebuild_a_lost_index(area):
    a = area.driver(north_km=0.5)
    b = area.driver(north_km=1.0)
    area.svc.redis.delete(area.svc.geo.key, area.svc.geo.built_key)  # Redis flushed or restarted
    assert ids(area.candidates()) == [a.id, b.id]
    assert area.svc.redis.exists(area.svc.geo.built_key)


def test_ensure_rebuilds_only_available_fresh_drivers(area):
    ok = area.driver(north_km=0.5)
    stale = area.driver(north_km=1.0)
    offline = area.driver(north_km=1.5, online=False)
    area.svc.db.drivers.update_one({"_id": stale.id}, {"$set": {
        "location_updated_at": now_ms() - LOCATION_FRESH_MS - 60_000}})
    area.svc.redis.delete(area.svc.geo.key, area.svc.geo.built_key)
    area.svc.matcher.ensure()
    assert area.svc.redis.exists(area.svc.geo.built_key)
    assert area.indexed(ok.id)
    assert not area.indexed(stale.id) and not area.indexed(offline.id)
    lng, lat = area.svc.redis.geopos(area.svc.geo.key, ok.id)[0]
    assert (lat, lng) == pytest.approx(area.at(north_km=0.5), abs=1e-4)


def test_ensure_leaves_a_built_index_alone(area):
    driver = area.driver(north_km=0.5)
    area.svc.geo.remove(driver.id)
    assert area.svc.redis.exists(area.svc.geo.built_key)
    area.svc.matcher.ensure()
    assert not area.indexed(driver.id), "with the marker present ensure() does not reload"


def test_rebuild_counts_and_replaces_the_index(area):
    ok = area.driver(north_km=0.5)
    offline = area.driver(north_km=1.0)
    area.svc.db.drivers.update_one({"_id": offline.id}, {"$set": {"status": "offline"}})
    ghost = f"ghost-{uuid.uuid4().hex}"
    area.svc.geo.put(ghost, *area.at(north_km=0.2))
    count = area.svc.matcher.rebuild()
    assert count >= 1  # this test's one available driver at least (other tests' too)
    assert area.indexed(ok.id)
    assert not area.indexed(offline.id) and not area.indexed(ghost)
