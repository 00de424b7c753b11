"""The Router port on an OSRM-compatible engine: the real httpx client against a local fake."""
from __future__ import annotations

import dataclasses
import time

import pytest

from dispatch.adapters.osrm import OsrmRouter
from dispatch.config import Settings
from dispatch.model.geo import Point
from dispatch.ports import RoutingUnavailable
from tests.fakes.osrm import FakeOsrm

UNION_SQ, BRYANT_PARK = Point(40.7359, -73.9911), Point(40.7536, -73.9832)


@pytest.fixture
def osrm():
    fake = FakeOsrm().start()
    yield fake
    fake.stop()


def router_for(fake: FakeOsrm, timeout: float = 1.0) -> OsrmRouter:
    return OsrmRouter(dataclasses.replace(Settings(), routing_url=fake.url, routing_timeout_seconds=timeout))


def test_the_drive_time_is_the_engines_duration_for_lng_lat_pairs(osrm):
    seconds = router_for(osrm).drive_seconds(UNION_SQ, BRYANT_PARK)
    assert seconds == pytest.approx(osrm.seconds(UNION_SQ.lat, UNION_SQ.lng, BRYANT_PARK.lat, BRYANT_PARK.lng), abs=0.1)
    assert osrm.queries == [(UNION_SQ.lat, UNION_SQ.lng, BRYANT_PARK.lat, BRYANT_PARK.lng)]


def test_a_slow_engine_costs_one_short_timeout_then_is_left_alone(osrm):
    router = router_for(osrm, timeout=0.3)
    osrm.delay = 2.0
    started = time.monotonic()
    with pytest.raises(RoutingUnavailable):
        router.drive_seconds(UNION_SQ, BRYANT_PARK)
    assert time.monotonic() - started < 1.0
    osrm.delay = 0
    started = time.monotonic()
    with pytest.raises(RoutingUnavailable):
        router.drive_seconds(UNION_SQ, BRYANT_PARK)
    assert time.monotonic() - started < 0.05 and len(osrm.queries) == 1, "resting: not asked again at once"


def test_an_engine_error_is_unavailable(osrm):
    osrm.fail = 1
    with pytest.raises(RoutingUnavailable):
        router_for(osrm).drive_seconds(UNION_SQ, BRYANT_PARK)


def test_no_route_for_one_pair_leaves_the_engine_in_use(osrm):
    router = router_for(osrm)
    osrm.no_route = True
    with pytest.raises(RoutingUnavailable):
        router.drive_seconds(UNION_SQ, BRYANT_PARK)
    osrm.no_route = False
    assert router.drive_seconds(UNION_SQ, BRYANT_PARK) > 0


def test_nobody_listening_is_unavailable():
    fake = FakeOsrm().start()
    fake.stop()
    with pytest.raises(RoutingUnavailable):
        router_for(fake).drive_seconds(UNION_SQ, BRYANT_PARK)
