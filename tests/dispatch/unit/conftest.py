"""The business rules over in-memory fakes (tests/dispatch/fakes.py): no MongoDB, no Redis."""
from __future__ import annotations

import uuid

import pytest

from dispatch.bootstrap import Core
from dispatch.model.driver import Driver
from dispatch.model.geo import Point
from dispatch.model.rescue import Rescue
from tests.conftest import new_number
from tests.dispatch.fakes import core

UNION_SQ = (40.7359, -73.9911)
KM_PER_DEG_LAT = 111.2


def north(km: float, of: tuple[float, float] = UNION_SQ) -> tuple[float, float]:
    return of[0] + km / KM_PER_DEG_LAT, of[1]


@pytest.fixture
def c() -> Core:
    return core()


def add_driver(c: Core, at: tuple[float, float] = UNION_SQ, online: bool = True, name: str = "Ann Lee") -> Driver:
    driver = Driver.new(new_number(), name, "Ford Transit")
    c.drivers.add(driver)
    c.dispatcher.update_location(driver, Point(*at, "spot"))
    if online:
        c.dispatcher.go_online(c.drivers.get(driver.id))
    return c.drivers.get(driver.id)


def add_rescue(c: Core, at: tuple[float, float] = UNION_SQ, quote_cents: int = 2800) -> Rescue:
    return c.lifecycle.create(request_key=f"unit-{uuid.uuid4().hex}", rider_phone=new_number(),
                              pickup={"lat": at[0], "lng": at[1], "label": "Union Square"}, dropoff=None,
                              problem="flat_tire", problem_note="", quote_cents=quote_cents, trip_miles=1.0,
                              surge=1.0, channel="sms", driver_pay_cents=2100)


def texts_to(c: Core, phone: str) -> list[str]:
    """The kinds of text queued for a phone, oldest first."""
    return [m["kind"] for m in c.messages.to(phone)]
