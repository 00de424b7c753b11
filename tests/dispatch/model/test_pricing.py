"""dispatch.model.pricing: surge and quotes (PRODUCT.md §5: integer cents, minimum 1 mi, cap 2.5x)."""
from __future__ import annotations

import pytest

from dispatch.config import Pricing
from dispatch.model.pricing import Quote, quote, surge_multiplier

CAP = 2.5


# -- surge_multiplier ----------------------------------------------------------------------

@pytest.mark.parametrize("open_rescues, online", [(0, 0), (0, 5), (1, 1), (3, 3), (2, 10), (1, 0)])
def test_no_surge_while_every_open_rescue_has_a_driver(open_rescues, online):
    # (1, 0): with nobody online the ratio is taken against one driver -> 1.0, not the cap.
    assert surge_multiplier(open_rescues, online, CAP) == 1.0


@pytest.mark.parametrize("open_rescues, online, expected", [
    (5, 4, 1.25),
    (3, 2, 1.5),
    (4, 2, 2.0),
    (7, 3, 2.33),     # rounded to two decimals
    (5, 2, 2.5),      # exactly the cap
    (2, 0, 2.0),      # zero drivers: ratio against one
])
def test_surge_is_the_demand_ratio(open_rescues, online, expected):
    assert surge_multiplier(open_rescues, online, CAP) == expected


@pytest.mark.parametrize("open_rescues, online", [(6, 2), (100, 1), (3, 0), (50, 0)])
def test_surge_is_capped(open_rescues, online):
    assert surge_multiplier(open_rescues, online, CAP) == CAP


def test_surge_cap_is_configurable():
    assert surge_multiplier(10, 1, 1.75) == 1.75
    assert surge_multiplier(10, 1, 4.0) == 4.0


def test_surge_rises_with_demand():
    values = [surge_multiplier(n, 4, CAP) for n in range(0, 15)]
    assert values == sorted(values)
    assert values[0] == 1.0 and values[-1] == CAP


# -- quote -----------------------------------------------------------------------------------

def test_quote_default_pricing():
    q = quote(Pricing(), 2.0, 1.0)
    assert q == Quote(cents=3100, miles=2.0, billable_miles=2.0, surge=1.0, base_cents=2500,
                      per_mile_cents=300)


@pytest.mark.parametrize("miles", [0.0, 0.3, 0.99, 1.0, -1.0])
def test_quote_minimum_distance(miles):
    q = quote(Pricing(), miles, 1.0)
    assert q.billable_miles == 1.0
    assert q.cents == 2500 + 300


def test_quote_keeps_real_miles_separately_from_billable():
    q = quote(Pricing(), 0.4, 1.0)
    assert q.miles == 0.4
    assert q.billable_miles == 1.0


@pytest.mark.parametrize("miles, billable, cents", [
    (3.27, 3.3, 3490),
    (3.24, 3.2, 3460),
    (1.05, 1.1, 2830),
    (9.81, 9.8, 5440),
])
def test_quote_rounds_distance_to_a_tenth(miles, billable, cents):
    q = quote(Pricing(), miles, 1.0)
    assert q.billable_miles == billable
    assert q.miles == billable
    assert q.cents == cents


@pytest.mark.parametrize("miles, surge, cents", [
    (2.0, 1.33, 4123),     # 3100 * 1.33 = 4123.0
    (2.0, 2.5, 7750),
    (1.0, 1.5, 4200),
    (4.1, 1.17, 4364),     # 3730 * 1.17 = 4364.1 -> 4364
    (4.2, 1.17, 4399),     # 3760 * 1.17 = 4399.2 -> 4399
    (5.0, 1.19, 4760),
])
def test_quote_applies_surge_in_integer_cents(miles, surge, cents):
    q = quote(Pricing(), miles, surge)
    assert q.cents == cents
    assert type(q.cents) is int
    assert q.surge == surge


def test_quote_cents_are_always_int():
    for miles in (0.0, 0.77, 1.234, 2.5, 7.77, 10.0):
        for surge in (1.0, 1.07, 1.33, 2.33, 2.5):
            q = quote(Pricing(), miles, surge)
            assert type(q.cents) is int
            exact = (2500 + 300 * q.billable_miles) * surge
            assert abs(q.cents - exact) <= 0.5 + 1e-9


def test_quote_with_custom_constants():
    pricing = Pricing(base_cents=1000, per_mile_cents=250, min_miles=2.0)
    q = quote(pricing, 1.0, 1.0)
    assert (q.billable_miles, q.cents, q.base_cents, q.per_mile_cents) == (2.0, 1500, 1000, 250)
    assert quote(pricing, 4.0, 2.0).cents == 4000


def test_longer_trips_cost_more():
    prices = [quote(Pricing(), m / 2, 1.0).cents for m in range(2, 21)]
    assert prices == sorted(prices)
    assert prices[0] < prices[-1]
