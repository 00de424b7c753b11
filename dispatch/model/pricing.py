"""Price = (base + per-mile x trip miles, minimum distance) x surge; integer cents throughout."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pricing:
    base_cents: int = 2500
    per_mile_cents: int = 300
    min_miles: float = 1.0
    surge_cap: float = 2.5


@dataclass(frozen=True)
class Quote:
    cents: int
    miles: float
    billable_miles: float
    surge: float
    base_cents: int
    per_mile_cents: int


def surge_multiplier(open_rescues: int, online_drivers: int, cap: float) -> float:
    """1.0 while every open rescue has a driver to match; then the demand ratio, capped.

    With nobody online the ratio is taken against one driver, so a single stranded
    rider is not charged the cap just because it is 3 a.m.
    """
    if open_rescues <= online_drivers:
        return 1.0
    return round(min(cap, open_rescues / max(online_drivers, 1)), 2)


def quote(pricing: Pricing, trip_miles: float, surge: float) -> Quote:
    billable = round(max(pricing.min_miles, trip_miles), 1)
    # Half a cent rounds up (round() would go to even).
    cents = int((pricing.base_cents + pricing.per_mile_cents * billable) * surge + 0.5)
    return Quote(cents=cents, miles=round(trip_miles, 1), billable_miles=billable, surge=surge,
                 base_cents=pricing.base_cents, per_mile_cents=pricing.per_mile_cents)
