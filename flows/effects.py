"""What a flow step asks the engine to do. Flows compute these; the engine applies each one
with the handler its type has (conversations.engine), and refuses a type it has none for."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dispatch.model.geo import ServiceArea
from dispatch.model.pricing import Quote
from dispatch.model.rescue import Rescue
from dispatch.places import Locator


# -- words -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    """The answer to the person who wrote, in their channel (templates/sms/<template>.txt by
    SMS; a call speaks its own words)."""
    template: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendText:
    """A text to the person in the conversation whatever the channel (a call hands over to SMS)."""
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # what makes it one text however often the step runs; the step's own key if empty
    rescue_id: str | None = None


@dataclass(frozen=True)
class TextParty:
    """A text to the other party of a rescue (`to` is "rider" or "driver")."""
    rescue_id: str
    to: str
    template: str
    key: str


@dataclass(frozen=True)
class Relay:
    """Pass the text to the other party of the sender's open rescue, through the rescue number."""
    text: str


# -- the rider's rescue ------------------------------------------------------------------------
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


@dataclass(frozen=True)
class OpenHelpRequest:
    """Bring a person in (PRODUCT.md §4 rider step 9): `reason` is "asked" or "not_understood";
    the help desk keeps one open request per phone and alerts the on-call dispatcher once."""
    reason: str
    text: str
    rescue_id: str | None = None


@dataclass(frozen=True)
class RecordCall:
    """A masked call's outcome, for the rescue's timeline."""
    rescue_id: str
    to: str
    dial_status: str
    duration: str
    by: str


# -- the driver's commands (each one answered with the dispatcher's result) ------------------------
@dataclass(frozen=True)
class GoOnline:
    pass


@dataclass(frozen=True)
class GoOffline:
    pass


@dataclass(frozen=True)
class Accept:
    code: str | None = None


@dataclass(frozen=True)
class Decline:
    pass


@dataclass(frozen=True)
class JobStep:
    """`drive`, `arrive`, `load` or `complete`."""
    action: str


@dataclass(frozen=True)
class Drop:
    pass


@dataclass(frozen=True)
class Locate:
    place: dict[str, Any]


DriverCommand = GoOnline | GoOffline | Accept | Decline | JobStep | Drop | Locate
Effect = (Reply | SendText | TextParty | Relay | CreateRescue | CancelRescue | RateRescue | ResendPaymentLink
          | OpenHelpRequest | RecordCall | DriverCommand)


@dataclass
class FlowContext:
    """What a flow may consult. Anything with I/O sits behind these."""
    locator: Locator
    area: ServiceArea
    max_trip_miles: float
    quote: Callable[[float], Quote]
    open_rescue: Rescue | None = None
    # The latest completed rescue while its payment or rating is still open; or how to find it,
    # asked only by the one step that needs it (a text that would start an intake), so the
    # texts of an intake under way cost no lookup.
    aftercare: Rescue | None = None
    find_aftercare: Callable[[], Rescue | None] | None = None
    channel: str = "sms"
    # The conversation's language, None before its first words; chosen: the rider said which
    # (ENGLISH / ESPAÑOL), so no guess changes it any more.
    language: str | None = None
    language_chosen: bool = False


    def completed_rescue(self) -> Rescue | None:
        if self.aftercare is None and self.find_aftercare is not None:
            self.aftercare, self.find_aftercare = self.find_aftercare(), None
        return self.aftercare

@dataclass
class StepResult:
    """One step: the conversation's new state and what to do; once applied, the rescue it made."""
    state: str
    data: dict[str, Any]
    effects: list[Effect] = field(default_factory=list)
    rescue: Rescue | None = None
    language: str = "en"
    language_chosen: bool = False

    @property
    def replies(self) -> list[Reply]:
        return [e for e in self.effects if isinstance(e, Reply)]

    def said(self, template: str) -> dict[str, Any] | None:
        """The context of the reply with this template, if the step gave one."""
        return next((r.context for r in self.replies if r.template == template), None)

    def then(self, later: StepResult) -> StepResult:
        """This step followed by `later`, as one."""
        return replace(later, effects=self.effects + later.effects, rescue=later.rescue or self.rescue)

    @property
    def templates(self) -> list[str]:
        return [r.template for r in self.replies]


# -- a dispatcher's commands by text --------------------------------------------------------------
@dataclass(frozen=True)
class DeskCommand:
    """LIST, STATUS, ASSIGN or CANCEL from an active dispatcher's phone (flows.dispatcher)."""
    verb: str
    code: str = ""
    rest: str = ""
