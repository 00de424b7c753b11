"""The rider's SMS conversation: intake (PRODUCT.md §4 steps 1-6) and the open rescue.

One `transitions` machine for every rider, built at import; each step binds the
conversation to it, feeds it the message and returns the new state and the effects.
Nothing here touches a database or the network except through `FlowContext`.
"""
from __future__ import annotations

from typing import Any

from transitions import Machine

from dispatch.model.geo import Point, distance_miles, in_service_area
from dispatch.model.rescue import PROBLEMS
from dispatch.ports import GeocoderUnavailable
from flows import words
from flows.effects import (
    CancelRescue,
    CreateRescue,
    FlowContext,
    RateRescue,
    Relay,
    Reply,
    ResendPaymentLink,
    StepResult,
)

IDLE, ASK_LOCATION, PICK_LOCATION, CONFIRM_PICKUP = "idle", "ask_location", "pick_location", "confirm_pickup"
ASK_PROBLEM, ASK_DROPOFF, PICK_DROPOFF, CONFIRM, ACTIVE = (
    "ask_problem", "ask_dropoff", "pick_dropoff", "confirm", "active")
STATES = [IDLE, ASK_LOCATION, PICK_LOCATION, CONFIRM_PICKUP, ASK_PROBLEM, ASK_DROPOFF, PICK_DROPOFF, CONFIRM, ACTIVE]
INTAKE = [ASK_LOCATION, PICK_LOCATION, CONFIRM_PICKUP, ASK_PROBLEM, ASK_DROPOFF, PICK_DROPOFF, CONFIRM]
PROBLEM_NOTE_MAX = 280

TRANSITIONS = [
    # `advance` goes to the first thing intake still lacks; transitions tries these in order.
    {"trigger": "advance", "source": [IDLE, *INTAKE], "dest": ASK_LOCATION, "unless": "has_pickup"},
    {"trigger": "advance", "source": [IDLE, *INTAKE], "dest": ASK_PROBLEM,
     "conditions": "has_pickup", "unless": "has_problem"},
    {"trigger": "advance", "source": [IDLE, *INTAKE], "dest": ASK_DROPOFF,
     "conditions": ["has_pickup", "has_problem"], "unless": "dropoff_decided"},
    {"trigger": "advance", "source": [IDLE, *INTAKE], "dest": CONFIRM,
     "conditions": ["has_pickup", "has_problem", "dropoff_decided"]},
    {"trigger": "offer_places", "source": [ASK_LOCATION, PICK_LOCATION, CONFIRM_PICKUP], "dest": PICK_LOCATION},
    # Speech recognition guesses, so a spoken location is read back before it is used.
    {"trigger": "check_pickup", "source": [ASK_LOCATION, PICK_LOCATION, CONFIRM_PICKUP], "dest": CONFIRM_PICKUP},
    {"trigger": "retry_location", "source": CONFIRM_PICKUP, "dest": ASK_LOCATION},
    {"trigger": "offer_places", "source": [ASK_DROPOFF, PICK_DROPOFF], "dest": PICK_DROPOFF},
    {"trigger": "book", "source": CONFIRM, "dest": ACTIVE},
    {"trigger": "follow_rescue", "source": STATES, "dest": ACTIVE},
    {"trigger": "reset", "source": STATES, "dest": IDLE},
]

MACHINE = Machine(model=None, states=STATES, transitions=TRANSITIONS, initial=IDLE,
                  auto_transitions=False)


class RiderTurn:
    """One message's worth of a rider conversation: the model bound to MACHINE."""

    state: str

    def __init__(self, data: dict[str, Any], ctx: FlowContext) -> None:
        self.data = dict(data)
        self.ctx = ctx
        self.effects: list = []

    def say(self, template: str, **context: Any) -> None:
        self.effects.append(Reply(template, context))

    # -- conditions -------------------------------------------------------------------
    def has_pickup(self) -> bool:
        return bool(self.data.get("pickup"))

    def has_problem(self) -> bool:
        return bool(self.data.get("problem"))

    def dropoff_decided(self) -> bool:
        return "dropoff" in self.data

    # -- prompts on entering a state ----------------------------------------------------
    def on_enter_ask_location(self) -> None:
        self.say("ask_location")

    def on_enter_pick_location(self) -> None:
        self.say("pick_place", choices=self.data["choices"], purpose="pickup")

    def on_enter_confirm_pickup(self) -> None:
        self.say("confirm_pickup", place=self.data["pickup"]["label"])

    def on_enter_ask_problem(self) -> None:
        self.say("ask_problem", pickup=self.data["pickup"]["label"])

    def on_enter_ask_dropoff(self) -> None:
        self.say("ask_dropoff", max_miles=self.ctx.max_trip_miles)

    def on_enter_pick_dropoff(self) -> None:
        self.say("pick_place", choices=self.data["choices"], purpose="dropoff")

    def on_enter_confirm(self) -> None:
        quote = self.ctx.quote(self.data.get("trip_miles") or 0.0)
        self.data["quote"] = {"cents": quote.cents, "surge": quote.surge, "miles": quote.billable_miles}
        self.say("quote", quote=quote, pickup=self.data["pickup"]["label"],
                 dropoff=(self.data.get("dropoff") or {}).get("label"),
                 problem=PROBLEMS[self.data["problem"]])

    def on_enter_active(self) -> None:
        if self.ctx.open_rescue is None:  # booked just now, not picked up from elsewhere
            d = self.data
            self.effects.append(CreateRescue(
                pickup=d["pickup"], dropoff=d.get("dropoff"), problem=d["problem"],
                problem_note=d.get("problem_note", ""), quote_cents=d["quote"]["cents"],
                trip_miles=d.get("trip_miles") or 0.0, surge=d["quote"]["surge"]))
            self.say("rescue_confirmed")
        self.data = {}

    def on_enter_idle(self) -> None:
        self.data = {}

    # -- input, by state ---------------------------------------------------------------
    def start(self, text: str) -> None:
        """The first message of an intake: use whatever it already says."""
        self.data = {}
        try:
            spotted = self.ctx.locator.spot_in_message(text)
        except GeocoderUnavailable:
            spotted = None
        problem = words.classify_problem(text)
        if problem:
            self._set_problem(problem, text)
        if spotted and not self._accept_place(spotted, "pickup"):
            self.data = {}
            return
        if not spotted:
            self.say("welcome")
        self.advance()

    def handle_ask_location(self, text: str) -> None:
        problem = None if self.has_problem() else words.classify_problem(text)
        if problem:
            self._set_problem(problem, text)
        self._resolve_place(text, "pickup")

    def handle_pick_location(self, text: str) -> None:
        self._pick(text, "pickup")

    def handle_confirm_pickup(self, text: str) -> None:
        if words.is_yes(text):
            self.data["pickup_confirmed"] = True
            self.advance()
        elif words.is_no(text):
            self.data.pop("pickup", None)
            self.retry_location()
        else:
            self._resolve_place(text, "pickup")  # a better description instead of yes/no

    def handle_ask_problem(self, text: str) -> None:
        choice = words.menu_choice(text, len(words.PROBLEM_MENU))
        problem = words.PROBLEM_MENU[str(choice)] if choice else words.classify_problem(text)
        if problem is None and len(words.normalise(text)) < 3:
            self.say("problem_unclear")
            return
        self._set_problem(problem or "other", "" if choice else text)
        self.advance()

    def handle_ask_dropoff(self, text: str) -> None:
        if words.normalise(text) in words.SKIP:
            self.data.pop("choices", None)
            self.data["dropoff"] = None
            self.data["trip_miles"] = 0.0
            self.advance()
            return
        self._resolve_place(text, "dropoff")

    def handle_pick_dropoff(self, text: str) -> None:
        if words.normalise(text) in words.SKIP:
            self.handle_ask_dropoff(text)
            return
        self._pick(text, "dropoff")

    def handle_confirm(self, text: str) -> None:
        if words.is_yes(text):
            self.book()
        elif words.is_no(text):
            self.say("quote_declined")
            self.reset()
        else:
            self.say("confirm_unclear", quote_cents=self.data["quote"]["cents"])

    def handle_active(self, text: str) -> None:
        rescue = self.ctx.open_rescue
        normal = words.normalise(text)
        if normal in words.CANCEL_RESCUE:
            self.effects.append(CancelRescue(rescue.id, reason="cancelled by rider"))
            self.say("rescue_cancelled", rescue=rescue)
            self.reset()
        elif normal in words.STATUS:
            self.say("rescue_status", rescue=rescue)
        elif rescue.driver_id and normal:
            self.effects.append(Relay(words.clean(text)))
        else:
            self.say("rescue_waiting", rescue=rescue)

    def handle_aftercare(self, text: str) -> bool:
        """PAY for a fresh payment link, or a 1-5 rating after the receipt; False if neither."""
        rescue = self.ctx.aftercare
        if rescue is None:
            return False
        if words.normalise(text) == "pay" and rescue.payment_status in ("none", "link_sent", "failed"):
            self.effects.append(ResendPaymentLink(rescue.id))
            self.say("payment_link_coming", rescue=rescue)
            return True
        rated = words.rating(text)
        awaiting = rescue.extra.get("rating_requested_at") and rescue.extra.get("rating") is None
        if not (awaiting and rated):
            return False
        stars, comment = rated
        if 1 <= stars <= 5:
            self.effects.append(RateRescue(rescue.id, stars, comment))
            self.say("rating_thanks", rescue=rescue, stars=stars)
        else:
            self.say("rating_out_of_range", rescue=rescue)
        return True

    # -- helpers -----------------------------------------------------------------------
    def _set_problem(self, problem: str, text: str) -> None:
        self.data["problem"] = problem
        self.data["problem_note"] = words.clean(text)[:PROBLEM_NOTE_MAX]
        if problem == "crash":
            self.say("crash_safety")

    def _resolve_place(self, text: str, purpose: str) -> None:
        if not words.normalise(text):
            self.say("place_not_found", purpose=purpose)
            return
        try:
            found = self.ctx.locator.resolve(words.clean(text)[:200])
            if not found:  # "flat tire at union square" holds a place without being one
                spotted = self.ctx.locator.spot_in_message(text)
                found = [spotted] if spotted else []
        except GeocoderUnavailable:
            self.say("geocoder_unavailable", purpose=purpose)
            return
        if not found:
            self.say("place_not_found", purpose=purpose)
        elif len(found) == 1:
            if self._accept_place(found[0], purpose):
                self._placed(purpose)
        else:
            self.data["choices"] = [p.to_json() for p in found]
            self.offer_places()

    def _pick(self, text: str, purpose: str) -> None:
        choices = self.data.get("choices") or []
        choice = words.menu_choice(text, len(choices))
        if choice is None:
            self._resolve_place(text, purpose)  # a new description instead of a number
            return
        if self._accept_place(Point.from_json(choices[choice - 1]), purpose):
            self._placed(purpose)

    def _placed(self, purpose: str) -> None:
        if purpose == "pickup" and self.ctx.channel == "voice":
            self.check_pickup()
        else:
            self.advance()

    def _accept_place(self, point: Point, purpose: str) -> bool:
        """Check a place against the rules; on refusal say why and keep the question open."""
        if purpose == "pickup":
            if not in_service_area(point, self.ctx.area):
                self.say("outside_area", place=point.label)
                return False
            self.data.pop("choices", None)
            self.data["pickup"] = point.to_json()
            return True
        pickup = Point.from_json(self.data["pickup"])
        miles = distance_miles(pickup, point)
        if miles > self.ctx.max_trip_miles:
            self.say("trip_too_long", miles=round(miles, 1), max_miles=self.ctx.max_trip_miles,
                     place=point.label)
            return False
        self.data.pop("choices", None)
        self.data["dropoff"] = point.to_json()
        self.data["trip_miles"] = round(miles, 2)
        return True

    def reprompt(self) -> None:
        """Say the current question again (STATUS or HELP in the middle of intake)."""
        getattr(self, f"on_enter_{self.state}")()


def step(state: str, data: dict[str, Any], text: str, ctx: FlowContext) -> StepResult:
    """Apply one rider message. Pure apart from the lookups `ctx` offers."""
    turn = RiderTurn(data, ctx)
    MACHINE.add_model(turn, initial=state if state in STATES else IDLE)
    try:
        normal = words.normalise(text)
        if ctx.open_rescue is not None:
            if turn.state != ACTIVE:
                turn.follow_rescue()
            turn.handle_active(text)
        elif turn.state == ACTIVE or turn.state == IDLE:
            turn.reset()
            if not turn.handle_aftercare(text):
                turn.start(text)
        elif normal in words.CANCEL_RESCUE:
            turn.say("intake_cancelled")
            turn.reset()
        elif normal in words.STATUS:
            turn.say("no_rescue_yet")
            turn.reprompt()
        else:
            getattr(turn, f"handle_{turn.state}")(text)
        return StepResult(state=turn.state, data=turn.data, effects=turn.effects)
    finally:
        MACHINE.remove_model(turn)

