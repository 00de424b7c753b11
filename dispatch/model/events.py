"""Domain events: one dataclass per thing that happened to a rescue.

Each change is appended to the rescue's timeline as one of these, and everything that
follows from a change (texts, jobs, metrics) is a handler of its event type in the one
table in `dispatch.bootstrap`. A payload's shape lives here, with its type, rather than
with whoever publishes it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from dispatch.model.clock import now_ms

BASE_FIELDS = ("rescue_id", "by", "id", "at", "redelivered")
EVENT_TYPES: dict[str, type[Event]] = {}


@dataclass(frozen=True, kw_only=True)
class Event:
    TYPE: ClassVar[str] = ""
    rescue_id: str | None
    by: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: int = field(default_factory=now_ms)
    # Handed out again by the sweeper: the world may have moved on since.
    redelivered: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.TYPE:
            EVENT_TYPES[cls.TYPE] = cls

    @property
    def type(self) -> str:
        return self.TYPE

    @property
    def data(self) -> dict[str, Any]:
        """The payload as stored on the timeline."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in BASE_FIELDS}

    @staticmethod
    def from_stored(kind: str, rescue_id: str | None, by: str, event_id: str, at: int,
                    data: dict[str, Any], redelivered: bool = False) -> Event:
        """Rebuild a stored event (fields a newer or older version wrote are left out)."""
        cls = EVENT_TYPES[kind]
        known = {f.name for f in fields(cls)} - set(BASE_FIELDS)
        return cls(rescue_id=rescue_id, by=by, id=event_id, at=at, redelivered=redelivered,
                   **{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, kw_only=True)
class StatusChanged(Event):
    """A lifecycle move; `status` is where it left the rescue."""
    status: str = ""


@dataclass(frozen=True, kw_only=True)
class RescueRequested(Event):
    TYPE = "rescue_requested"
    quote_cents: int
    problem: str


@dataclass(frozen=True, kw_only=True)
class OfferMade(Event):
    TYPE = "offer_made"
    offer_id: str
    driver_id: str
    distance_km: float


@dataclass(frozen=True, kw_only=True)
class OfferDeclined(Event):
    TYPE = "offer_declined"
    offer_id: str
    driver_id: str


@dataclass(frozen=True, kw_only=True)
class OfferExpired(Event):
    TYPE = "offer_expired"
    offer_id: str
    driver_id: str
    late_ms: int = 0
    # The driver let too many offers in a row run out and was taken offline with this one.
    taken_offline: bool = False


@dataclass(frozen=True, kw_only=True)
class OfferWithdrawn(Event):
    TYPE = "offer_withdrawn"
    offer_id: str
    driver_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class DriverAssigned(StatusChanged):
    TYPE = "driver_assigned"
    driver_id: str
    offer_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class DriverReassigned(StatusChanged):
    TYPE = "driver_reassigned"
    driver_id: str
    previous_driver_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class DriverDropped(StatusChanged):
    TYPE = "driver_dropped"
    driver_id: str


@dataclass(frozen=True, kw_only=True)
class DriverEnRoute(StatusChanged):
    TYPE = "driver_en_route"
    driver_id: str


@dataclass(frozen=True, kw_only=True)
class DriverArrived(StatusChanged):
    TYPE = "driver_arrived"
    driver_id: str


@dataclass(frozen=True, kw_only=True)
class RiderLoaded(StatusChanged):
    TYPE = "rider_loaded"
    driver_id: str


@dataclass(frozen=True, kw_only=True)
class RescueCompleted(StatusChanged):
    TYPE = "rescue_completed"
    driver_id: str


@dataclass(frozen=True, kw_only=True)
class RescueCancelled(StatusChanged):
    TYPE = "rescue_cancelled"
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RescueUnfulfilled(StatusChanged):
    TYPE = "rescue_unfulfilled"


@dataclass(frozen=True, kw_only=True)
class StillSearching(Event):
    TYPE = "still_searching"
    minutes: int


@dataclass(frozen=True, kw_only=True)
class PaymentLinkSent(Event):
    TYPE = "payment_link_sent"
    session_id: str
    url: str
    amount_cents: int


@dataclass(frozen=True, kw_only=True)
class PaymentLinkExpired(Event):
    TYPE = "payment_link_expired"
    session_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class PaymentPaid(Event):
    TYPE = "payment_paid"
    amount_cents: int


@dataclass(frozen=True, kw_only=True)
class PaymentFailed(Event):
    TYPE = "payment_failed"


@dataclass(frozen=True, kw_only=True)
class PaymentRefunded(Event):
    TYPE = "payment_refunded"
    amount_cents: int
    full: bool


@dataclass(frozen=True, kw_only=True)
class RescueRated(Event):
    TYPE = "rescue_rated"
    stars: int


@dataclass(frozen=True, kw_only=True)
class CallConnected(Event):
    TYPE = "call_connected"
    to: str
    dial_status: str
    duration: str = ""


@dataclass(frozen=True, kw_only=True)
class CallFailed(Event):
    TYPE = "call_failed"
    to: str
    dial_status: str
    duration: str = ""


@dataclass(frozen=True, kw_only=True)
class DriverLocationUpdated(Event):
    TYPE = "driver_location_updated"
    lat: float
    lng: float
    driver_id: str = ""
    # How far off the phone says the position may be; None for a texted place or pin.
    accuracy_m: float | None = None


@dataclass(frozen=True, kw_only=True)
class DriverArriving(Event):
    """The driver came within reach of the pickup (PRODUCT.md §9): once per rescue."""
    TYPE = "driver_arriving"
    driver_id: str
    metres: int


@dataclass(frozen=True, kw_only=True)
class HelpRequested(Event):
    TYPE = "help_requested"
    help_request_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class HelpResolved(Event):
    TYPE = "help_resolved"
    help_request_id: str


# Lifecycle actions a driver takes on the job, and the event each one is.
JOB_EVENTS: dict[str, type[StatusChanged]] = {
    "drive": DriverEnRoute, "arrive": DriverArrived, "load": RiderLoaded, "complete": RescueCompleted}
