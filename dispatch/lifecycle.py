"""The rescue lifecycle: creating a rescue once per request, and every status change as a
compare-and-set on the rescue's version, each published as a domain event.

Returning the rescue and whether anything changed lets callers treat a repeated command
as the no-op it is; an illegal change raises IllegalTransition, a rescue not in the shape
the caller expected raises ExpectationFailed, and a lost race is retried.
"""
from __future__ import annotations

import uuid
from typing import Any

from dispatch.bus import EventBus
from dispatch.model import events as ev
from dispatch.model.clock import now_ms
from dispatch.model.rescue import PAY_NONE, SEARCHING, IllegalTransition, Rescue, next_status
from dispatch.ports import RescueRepository, RiderRepository

CAS_ATTEMPTS = 5

__all__ = ["Lifecycle", "ExpectationFailed", "IllegalTransition"]


class ExpectationFailed(ValueError):
    """The rescue is not in the shape the caller expected (e.g. another driver holds it)."""


class Lifecycle:
    def __init__(self, rescues: RescueRepository, riders: RiderRepository, bus: EventBus) -> None:
        self.rescues, self.riders, self.bus = rescues, riders, bus

    def create(self, *, request_key: str, rider_phone: str, pickup: dict, dropoff: dict | None,
               problem: str, problem_note: str, quote_cents: int, trip_miles: float, surge: float,
               channel: str, driver_pay_cents: int = 0, language: str = "en") -> Rescue:
        """Create once per request: a retried webhook gets the rescue its first delivery made.
        The unique request key decides (no read first: a retry, which is rare, costs a code
        number instead of every request costing a round trip)."""
        now = now_ms()
        seq = self.rescues.next_seq()
        rescue = Rescue(
            id=uuid.uuid4().hex, code=f"R{seq}", status=SEARCHING, rider_phone=rider_phone, pickup=pickup,
            dropoff=dropoff, problem=problem, problem_note=problem_note, quote_cents=int(quote_cents),
            driver_pay_cents=int(driver_pay_cents), trip_miles=trip_miles, surge=surge, channel=channel,
            payment_status=PAY_NONE, language=language, created_at=now, updated_at=now, searching_since=now,
            extra={"request_key": request_key, "seq": seq, "next_dispatch_at": 0})
        if not self.rescues.add(rescue):
            return self.rescues.by_request_key(request_key)
        self.riders.count_rescue(rider_phone, now)
        self.bus.publish(ev.RescueRequested(rescue_id=rescue.id, by=f"rider:{channel}",
                                            quote_cents=rescue.quote_cents, problem=problem))
        return rescue

    def apply(self, rescue_id: str, action: str, *, by: str, event: type[ev.StatusChanged],
              changes: dict[str, Any] | None = None, expect: dict[str, Any] | None = None,
              **event_data: Any) -> tuple[Rescue, bool]:
        """Move a rescue through its lifecycle (see the module doc)."""
        for _ in range(CAS_ATTEMPTS):
            rescue = self.rescues.get(rescue_id)
            if rescue is None:
                raise KeyError(rescue_id)
            current = rescue.to_doc()
            if expect and any(current.get(k) != v for k, v in expect.items()):
                raise ExpectationFailed(rescue_id)
            target = next_status(rescue.status, action)
            if target is None:
                return rescue, False
            happened = event(rescue_id=rescue_id, by=by, status=target, **event_data)  # a bad payload writes nothing
            now = now_ms()
            fields = {"status": target, "updated_at": now, "version": rescue.version + 1,
                      **({"searching_since": now} if target == SEARCHING else {}),
                      **(changes or {})}
            after = self.rescues.compare_and_set(rescue_id, rescue.version, rescue.status, fields)
            if after is not None:
                self.bus.publish(happened, rescue=after)
                return after, True
        raise RuntimeError(f"rescue {rescue_id} kept changing; giving up")
