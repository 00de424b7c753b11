"""The rescue: its statuses, the lifecycle that connects them, and its JSON shape.

No I/O here. `dispatch.lifecycle` stores every change with a compare-and-set that asks
`next_status` whether the change is legal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transitions import Machine, MachineError

from dispatch.model.clock import iso

SEARCHING, ASSIGNED, EN_ROUTE, ARRIVED, IN_TRANSIT = "searching", "assigned", "en_route", "arrived", "in_transit"
COMPLETED, CANCELLED, UNFULFILLED = "completed", "cancelled", "unfulfilled"
STATUSES = (SEARCHING, ASSIGNED, EN_ROUTE, ARRIVED, IN_TRANSIT, COMPLETED, CANCELLED, UNFULFILLED)
OPEN_STATUSES = (SEARCHING, ASSIGNED, EN_ROUTE, ARRIVED, IN_TRANSIT)
CLOSED_STATUSES = (COMPLETED, CANCELLED, UNFULFILLED)
# A driver is bound to the rescue and on the way (the dispatcher may still move it to another).
DRIVER_BOUND = (ASSIGNED, EN_ROUTE)
# No driver yet; a dispatcher may still assign one (PRODUCT.md §5: an unfulfilled one reopens).
UNASSIGNED = (SEARCHING, UNFULFILLED)

# payment_status: none -> link_sent -> paid (-> refunded), or failed.
PAY_NONE, PAY_LINK_SENT, PAY_PAID, PAY_FAILED, PAY_REFUNDED = "none", "link_sent", "paid", "failed", "refunded"
PAYMENT_STATUSES = (PAY_NONE, PAY_LINK_SENT, PAY_PAID, PAY_FAILED, PAY_REFUNDED)
PAYABLE = (PAY_NONE, PAY_LINK_SENT, PAY_FAILED)
SETTLED = (PAY_PAID, PAY_REFUNDED)

PROBLEMS = {
    "flat_tire": "flat tire",
    "dead_battery": "dead battery",
    "mechanical": "mechanical problem",
    "crash": "crash",
    "other": "other problem",
}
CRASH = "crash"

# (action, from, to) — the only ways a rescue's status may change. `to` None is a change
# that keeps the status (another driver takes over the job).
LIFECYCLE = [
    ("assign", list(UNASSIGNED), ASSIGNED),
    ("reassign", list(DRIVER_BOUND), None),
    ("drive", ASSIGNED, EN_ROUTE),
    ("arrive", [ASSIGNED, EN_ROUTE], ARRIVED),
    ("load", ARRIVED, IN_TRANSIT),
    ("complete", [ARRIVED, IN_TRANSIT], COMPLETED),
    ("requeue", [ASSIGNED, EN_ROUTE, ARRIVED], SEARCHING),
    ("cancel", list(OPEN_STATUSES), CANCELLED),
    ("give_up", SEARCHING, UNFULFILLED),
]
ACTION_TARGET = {action: target for action, _, target in LIFECYCLE}


@dataclass(frozen=True)
class SearchTerms:
    """A search of every rescue (PRODUCT.md §3); times are epoch ms, `until` exclusive."""
    code: str | None = None
    phone_digits: str | None = None
    status: str | None = None
    since: int | None = None
    until: int | None = None

    @classmethod
    def of(cls, q: str, **rest: Any) -> SearchTerms:
        """`q` is a code (`R1004`, `1004`) or the last 4+ digits of the rider's phone; a bare
        number may be either. Anything else finds nothing (a code that cannot exist)."""
        text = "".join(q.split()).upper().lstrip("#")
        digits = "".join(c for c in text if c.isdigit())
        if not text:
            return cls(**rest)
        if text.startswith("R") and text[1:].isdigit():
            return cls(code=text, **rest)
        if len(digits) >= 4 and all(c.isdigit() or c in "+-()." for c in text):
            return cls(code=f"R{digits}", phone_digits=digits, **rest)
        return cls(code="R?", **rest)


class IllegalTransition(ValueError):
    def __init__(self, status: str, action: str) -> None:
        super().__init__(f"cannot {action} a rescue that is {status}")
        self.status, self.action = status, action


class _Status:
    """The throwaway model the shared machine is bound to for one question."""

    def __init__(self) -> None:
        self.state = SEARCHING


_MACHINE = Machine(model=None, states=list(STATUSES), transitions=[list(t) for t in LIFECYCLE],
                   auto_transitions=False, initial=None)


def next_status(current: str, action: str) -> str | None:
    """The status `action` leads to from `current`; None when it is already there (a no-op).

    A change that keeps the status (`reassign`) returns the current status. Raises
    IllegalTransition for anything the lifecycle does not allow.
    """
    if action not in ACTION_TARGET or current not in STATUSES:
        raise IllegalTransition(current, action)
    if ACTION_TARGET[action] == current:
        return None
    model = _Status()
    _MACHINE.add_model(model, initial=current)
    try:
        getattr(model, action)()
        return model.state
    except MachineError as exc:
        raise IllegalTransition(current, action) from exc
    finally:
        _MACHINE.remove_model(model)


@dataclass
class Rescue:
    id: str
    code: str
    status: str
    rider_phone: str
    pickup: dict[str, Any]
    dropoff: dict[str, Any] | None
    problem: str
    problem_note: str
    quote_cents: int
    trip_miles: float
    surge: float
    created_at: int  # epoch ms, see dispatch.model.clock
    updated_at: int
    channel: str = "sms"
    driver_id: str | None = None
    driver_pay_cents: int = 0
    searching_since: int = 0
    payment_status: str = PAY_NONE
    cancel_reason: str | None = None
    cancelled_by: str | None = None
    language: str = "en"  # the rider's: every text to them is in it
    version: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def problem_label(self) -> str:
        return PROBLEMS.get(self.problem, self.problem)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Rescue:
        known = {f for f in cls.__dataclass_fields__ if f not in ("id", "extra")}
        values = {k: v for k, v in doc.items() if k in known}
        extra = {k: v for k, v in doc.items() if k not in known and k != "_id"}
        return cls(id=doc["_id"], extra=extra, **values)

    def to_doc(self) -> dict[str, Any]:
        doc = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("id", "extra")}
        return {"_id": self.id, **doc, **self.extra}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "code": self.code, "status": self.status, "rider_phone": self.rider_phone,
            "pickup": self.pickup, "dropoff": self.dropoff, "problem": self.problem,
            "problem_note": self.problem_note, "driver_id": self.driver_id,
            "quote_cents": self.quote_cents, "driver_pay_cents": self.driver_pay_cents,
            "trip_miles": self.trip_miles, "surge": self.surge,
            "payment_status": self.payment_status, "cancel_reason": self.cancel_reason,
            "cancelled_by": self.cancelled_by, "channel": self.channel, "language": self.language,
            "paid_cents": int(self.extra.get("paid_cents") or 0),
            "refunded_cents": int(self.extra.get("refunded_cents") or 0),
            "payment_url": self.extra.get("payment_url"),
            "rating": self.extra.get("rating"), "rating_comment": self.extra.get("rating_comment"),
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
        }
