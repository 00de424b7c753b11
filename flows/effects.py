"""What a flow step asks the engine to do. Flows compute these; the engine applies them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from dispatch.config import ServiceArea
from dispatch.geocoding import Locator
from dispatch.pricing import Quote
from dispatch.rescues import Rescue


@dataclass(frozen=True)
class Reply:
    """A text to the person who wrote (rendered from templates/sms/<template>.txt)."""
    template: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CreateRescue:
    pickup: dict[str, Any]
    dropoff: dict[str, Any] | None
    problem: str
    problem_note: str
    quote_cents: int
    trip_miles: float
    surge: float


@dataclass(frozen=True)
class CancelRescue:
    rescue_id: str
    reason: str




@dataclass(frozen=True)
class RateRescue:
    rescue_id: str
    stars: int
    comment: str


@dataclass(frozen=True)
class ResendPaymentLink:
    rescue_id: str


@dataclass
class FlowContext:
    """What a flow may consult. Anything with I/O sits behind these callables."""
    locator: Locator
    area: ServiceArea
    max_trip_miles: float
    quote: Callable[[float], Quote]
    open_rescue: Rescue | None = None
    # The latest completed rescue while its payment or rating is still open.
    aftercare: Rescue | None = None
    channel: str = "sms"


@dataclass
class StepResult:
    state: str
    data: dict[str, Any]
    effects: list[Effect]


@dataclass(frozen=True)
class DriverCommand:
    """A driver's command for the dispatcher (`go_online`, `accept`, `arrive`, ...)."""
    name: str
    code: str | None = None
    place: dict[str, Any] | None = None


@dataclass(frozen=True)
class Relay:
    """Pass the text to the other party of the sender's open rescue, through the rescue number."""
    text: str


Effect = Reply | CreateRescue | CancelRescue | DriverCommand | Relay | RateRescue | ResendPaymentLink
