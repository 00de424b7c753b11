"""The rider's conversation: intake (PRODUCT.md §4 steps 1-6), the open rescue, and a person
brought in when asked for or when the service keeps not understanding (step 9).

One `transitions` machine for every rider, built at import; each step binds the
conversation to it, feeds it the message and returns the new state and the effects.
Nothing here touches a database or the network except through `FlowContext`.

What people really send (PRODUCT.md §4 "Understanding people") is read through
`flows.words`: one text may carry the pickup, the problem and the drop-off; a place that
means several gets the "did you mean" list wherever it appears, the first text included; the
place understood is said back in the next question and can be corrected ("no, I'm at ...",
"wrong place") until the booking; questions are answered and the question asked again; the
rider's language is taken from their words and kept with the conversation.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transitions import Machine

from dispatch.model.geo import Point, distance_miles, in_service_area
from dispatch.model.help_request import ASKED, NOT_UNDERSTOOD
from dispatch.model.rescue import PAYABLE, PROBLEMS, Rescue
from dispatch.ports import GeocoderUnavailable, MapLinkUnreadable
from flows import language, words
from flows.effects import (
    CancelRescue,
    CreateRescue,
    FlowContext,
    OpenHelpRequest,
    RateRescue,
    Relay,
    Reply,
    ResendPaymentLink,
    StepResult,
)
from flows.words import Intent

IDLE, ASK_LOCATION, PICK_LOCATION, CONFIRM_PICKUP = "idle", "ask_location", "pick_location", "confirm_pickup"
ASK_PROBLEM, ASK_DROPOFF, PICK_DROPOFF, CONFIRM, ACTIVE = (
    "ask_problem", "ask_dropoff", "pick_dropoff", "confirm", "active")
CONFIRM_CANCEL = "confirm_cancel"  # a casual "nvm" while a driver is on the way: asked to confirm
STATES = [IDLE, ASK_LOCATION, PICK_LOCATION, CONFIRM_PICKUP, ASK_PROBLEM, ASK_DROPOFF, PICK_DROPOFF, CONFIRM, ACTIVE,
          CONFIRM_CANCEL]
INTAKE = [ASK_LOCATION, PICK_LOCATION, CONFIRM_PICKUP, ASK_PROBLEM, ASK_DROPOFF, PICK_DROPOFF, CONFIRM]
WITH_RESCUE = (ACTIVE, CONFIRM_CANCEL)
PICKUP, DROPOFF = "pickup", "dropoff"
PROBLEM_NOTE_MAX = 280
PLACE_TEXT_MAX = 200
# Texts in a row the service cannot understand before a person is asked to step in.
MISSES_BEFORE_HELP = 3

TRANSITIONS = [
    # `advance` goes to the first thing intake still lacks; transitions tries these in order.
    {"trigger": "advance", "source": [IDLE, *INTAKE], "dest": ASK_LOCATION, "unless": "has_pickup"},
    {"trigger": "advance", "source": [IDLE, *INTAKE], "dest": ASK_PROBLEM,
     "conditions": "has_pickup", "unless": "has_problem"},
    {"trigger": "advance", "source": [IDLE, *INTAKE], "dest": ASK_DROPOFF,
     "conditions": ["has_pickup", "has_problem"], "unless": "dropoff_decided"},
    {"trigger": "advance", "source": [IDLE, *INTAKE], "dest": CONFIRM,
     "conditions": ["has_pickup", "has_problem", "dropoff_decided"]},
    {"trigger": "list_pickups", "source": [IDLE, *INTAKE], "dest": PICK_LOCATION},
    {"trigger": "list_dropoffs", "source": [IDLE, *INTAKE], "dest": PICK_DROPOFF},
    # Speech recognition guesses, so a spoken location is read back before it is used.
    {"trigger": "check_pickup", "source": [IDLE, *INTAKE], "dest": CONFIRM_PICKUP},
    {"trigger": "retry_location", "source": [IDLE, *INTAKE], "dest": ASK_LOCATION},
    {"trigger": "retry_dropoff", "source": [IDLE, *INTAKE], "dest": ASK_DROPOFF},
    {"trigger": "book", "source": CONFIRM, "dest": ACTIVE},
    {"trigger": "follow_rescue", "source": STATES, "dest": ACTIVE},
    {"trigger": "ask_cancel", "source": ACTIVE, "dest": CONFIRM_CANCEL},
    {"trigger": "keep_rescue", "source": CONFIRM_CANCEL, "dest": ACTIVE},
    {"trigger": "reset", "source": STATES, "dest": IDLE},
]

MACHINE = Machine(model=None, states=STATES, transitions=TRANSITIONS, initial=IDLE,
                  auto_transitions=False)

# A step's replies go out as one text (conversations.engine): at most one of these first - an
# answer, a notice - then one question. The question asked again after one of them is the short
# form of each state's (REASK), so that both fit two SMS segments; tools/check_sms_length.py
# renders every preface with every question.
PREFACES = ("welcome", "no_rescue_yet", "not_understood", "price_info", "eta_info", "coming_info", "language_set",
            "nothing_owed")
REASK = {ASK_LOCATION: "ask_location", PICK_LOCATION: "pick_again", CONFIRM_PICKUP: "confirm_pickup",
         ASK_PROBLEM: "ask_problem", ASK_DROPOFF: "ask_dropoff", PICK_DROPOFF: "pick_again",
         CONFIRM: "confirm_unclear"}
# What may follow a preface in the same text.
AFTER_PREFACE = (*sorted(set(REASK.values())), "place_not_found")
# A crash is answered with the 911 line first, whatever the text goes on to ask (after the
# welcome, only where-are-you questions); a list after it is cut to CHOICES_AFTER_SAFETY so that
# both fit.
SAFETY = "crash_safety"
AFTER_SAFETY = ("ask_location", "ask_dropoff", "quote", "pick_place", "outside_area", "place_not_found",
                "link_unreadable", "geocoder_unavailable", "trip_too_long")
AFTER_SAFETY_WELCOME = ("ask_location", "place_not_found")
CHOICES_AFTER_SAFETY = 3
# What each question intent is answered with before the booking (the quote answers the price).
INTAKE_ANSWERS = {Intent.STATUS: "no_rescue_yet", Intent.QUESTION_PRICE: "price_info",
                  Intent.QUESTION_TIME: "eta_info", Intent.QUESTION_COMING: "coming_info",
                  Intent.PAY: "nothing_owed"}
# A first text that is only a question: its answer instead of the welcome ("hello?" is greeted).
START_ANSWERS = {Intent.STATUS: "no_rescue_yet", Intent.QUESTION_PRICE: "price_info", Intent.QUESTION_TIME: "eta_info"}
RESCUE_ANSWERS = {Intent.STATUS: "rescue_status", Intent.QUESTION_TIME: "rescue_status",
                  Intent.QUESTION_COMING: "rescue_status", Intent.QUESTION_PRICE: "rescue_price",
                  Intent.PAY: "nothing_owed", Intent.HELP: "help"}
# The Spanish HELP: answered like the carrier keyword, wherever the rider is.
AYUDA = frozenset({"ayuda"})


class RiderTurn:
    """One message's worth of a rider conversation: the model bound to MACHINE."""

    state: str

    def __init__(self, data: dict[str, Any], ctx: FlowContext, text: str) -> None:
        self.data = dict(data)
        self.ctx = ctx
        self.text = text  # what the rider sent, for a help request a miss opens
        self.effects: list = []
        self.language = ctx.language or language.DEFAULT
        self.language_chosen = ctx.language_chosen
        self.missed = False  # this text was not understood
        self.hushed = False  # the question of the state entered is already said (a refusal asks it)

    def say(self, template: str, **context: Any) -> None:
        self.effects.append(Reply(template, context))

    # -- conditions -------------------------------------------------------------------
    def has_pickup(self) -> bool:
        return bool(self.data.get(PICKUP))

    def has_problem(self) -> bool:
        return bool(self.data.get("problem"))

    def dropoff_decided(self) -> bool:
        return DROPOFF in self.data

    # -- prompts on entering a state ----------------------------------------------------
    def _ask(self, template: str, **context: Any) -> None:
        if not self.hushed:
            self.say(template, **context)

    def on_enter_ask_location(self) -> None:
        self._ask("ask_location")

    def on_enter_pick_location(self) -> None:
        self._ask("pick_place", choices=self.data["choices"], purpose=PICKUP)

    def on_enter_confirm_pickup(self) -> None:
        self._ask("confirm_pickup", place=self._label(PICKUP))

    def on_enter_ask_problem(self) -> None:
        self._ask("ask_problem", pickup=self._label(PICKUP))

    def on_enter_ask_dropoff(self) -> None:
        self._ask("ask_dropoff", max_miles=self.ctx.max_trip_miles, pickup=self._label(PICKUP))

    def on_enter_pick_dropoff(self) -> None:
        self._ask("pick_place", choices=self.data["choices"], purpose=DROPOFF)

    def on_enter_confirm(self) -> None:
        quote = self.ctx.quote(self.data.get("trip_miles") or 0.0)
        self.data["quote"] = {"cents": quote.cents, "surge": quote.surge, "miles": quote.billable_miles}
        self._ask("quote", quote=quote, pickup=self._label(PICKUP), dropoff=self._label(DROPOFF),
                  problem=PROBLEMS[self.data["problem"]])

    def on_enter_active(self) -> None:
        if self.ctx.open_rescue is None:  # booked just now, not picked up from elsewhere
            d = self.data
            self.effects.append(CreateRescue(
                pickup=d[PICKUP], dropoff=d.get(DROPOFF), problem=d["problem"],
                problem_note=d.get("problem_note", ""), quote_cents=d["quote"]["cents"],
                trip_miles=d.get("trip_miles") or 0.0, surge=d["quote"]["surge"]))
            self.say("rescue_confirmed")
        self.data = {}

    def on_enter_idle(self) -> None:
        self.data = {}

    def reask(self) -> None:
        """The current question again, in its short form (after STATUS, an answer, a miss)."""
        choices = self.data.get("choices") or []
        if self.state in (PICK_LOCATION, PICK_DROPOFF) and choices:
            self.say("pick_again", count=len(choices), purpose=PICKUP if self.state == PICK_LOCATION else DROPOFF)
        elif self.state in (PICK_LOCATION, PICK_DROPOFF):  # nothing left to pick from: the open question
            self.retry_location() if self.state == PICK_LOCATION else self.retry_dropoff()
        elif self.state == CONFIRM:
            self.say("confirm_unclear", quote_cents=self.data["quote"]["cents"])
        elif self.state in INTAKE:
            getattr(self, f"on_enter_{self.state}")()

    # -- one text ----------------------------------------------------------------------
    def handle(self, text: str) -> None:
        if words.looks_automated(text):
            return  # answering an auto-reply starts a loop between two machines
        asked = words.intent(text)
        self._hear_language(text, asked)
        if asked in (Intent.SWITCH_EN, Intent.SWITCH_ES):
            self.say("language_set")
            self._carry_on()
        elif asked is Intent.HUMAN:
            self._bring_a_person(text, ASKED)
            self.say("human_requested")
        elif words.normalise(text) in AYUDA:
            self.say("help")
        elif self.ctx.open_rescue is not None:
            self._with_rescue(text, asked)
        elif self.state in (IDLE, *WITH_RESCUE):
            self.reset()
            if asked in (Intent.CANCEL, Intent.CASUAL_CANCEL):
                self.say("intake_cancelled")  # nothing to cancel: nothing starts either
            elif not self._aftercare(text, asked):
                self.start(text, asked)
        else:
            self._intake(text, asked)
        if not self.missed:
            self.data.pop("misses", None)

    def _hear_language(self, text: str, asked: Intent | None) -> None:
        if asked in (Intent.SWITCH_EN, Intent.SWITCH_ES):
            self.language = language.ENGLISH if asked is Intent.SWITCH_EN else language.SPANISH
            self.language_chosen = True
        elif not self.language_chosen:
            self.language = language.detect(text, self.ctx.language)

    def _carry_on(self) -> None:
        """After the language changed: the question in the new language (the first one if none yet)."""
        if self.ctx.open_rescue is not None:
            return
        if self.state in (IDLE, *WITH_RESCUE):
            self.reset()
            self.advance()
        else:
            self.reask()

    # -- the open rescue ------------------------------------------------------------------
    def _with_rescue(self, text: str, asked: Intent | None) -> None:
        rescue = self.ctx.open_rescue
        if self.state not in WITH_RESCUE:
            self.follow_rescue()
        if self.state == CONFIRM_CANCEL:
            said = words.answer(text)
            if said == "yes" or asked in (Intent.CANCEL, Intent.CASUAL_CANCEL):
                self._cancel(rescue)
                return
            self.keep_rescue()
            if said == "no" or words.keeps(text):
                self.say("cancel_kept", rescue=rescue)
                return
        if asked is Intent.CANCEL or (asked is Intent.CASUAL_CANCEL and not rescue.driver_id):
            self._cancel(rescue)
        elif asked is Intent.CASUAL_CANCEL:  # a driver is on the way: "nvm" may not mean that
            self.ask_cancel()
            self.say("confirm_cancel", rescue=rescue)
        elif asked in RESCUE_ANSWERS:
            self.say(RESCUE_ANSWERS[asked], rescue=rescue)
        elif rescue.driver_id and words.clean(text):
            self.effects.append(Relay(words.clean(text)))
        elif words.not_understandable(text):
            self._miss(lambda: self.say("rescue_waiting", rescue=rescue))
        else:
            self.say("rescue_waiting", rescue=rescue)

    def _cancel(self, rescue: Rescue) -> None:
        self.effects.append(CancelRescue(rescue.id, reason="cancelled by rider"))
        self.say("rescue_cancelled", rescue=rescue)
        self.reset()

    def _aftercare(self, text: str, asked: Intent | None) -> bool:
        """PAY for a fresh payment link (only when something is owed), or a 1-5 rating after the
        receipt; False if neither."""
        rescue = self.ctx.completed_rescue()
        if asked is Intent.PAY:
            if rescue is not None and rescue.payment_status in PAYABLE:
                self.effects.append(ResendPaymentLink(rescue.id))
                self.say("payment_link_coming", rescue=rescue)
            else:
                self.say("nothing_owed", rescue=None)
            return True
        rated = words.rating(text)
        awaiting = rescue is not None and rescue.extra.get("rating_requested_at") and rescue.extra.get("rating") is None
        if not (awaiting and rated):
            return False
        stars, comment = rated
        if 1 <= stars <= 5:
            self.effects.append(RateRescue(rescue.id, stars, comment))
            self.say("rating_thanks", rescue=rescue, stars=stars)
        else:
            self.say("rating_out_of_range", rescue=rescue)
        return True

    # -- intake ----------------------------------------------------------------------------
    def start(self, text: str, asked: Intent | None) -> None:
        """The first text of an intake: use whatever it already says."""
        self.data = {}
        if words.not_understandable(text):
            self._miss(lambda: (self.say("welcome"), self.advance()))
            return
        if self._take_in(text, first=True):
            return
        self.say(START_ANSWERS.get(asked, "welcome"), **self._answer_context(asked))
        self.advance()

    def _answer_context(self, asked: Intent | None) -> dict[str, Any]:
        return {"quote": self.ctx.quote(0.0)} if asked is Intent.QUESTION_PRICE else {}

    def _intake(self, text: str, asked: Intent | None) -> None:
        if self.state == CONFIRM and words.answer(text):
            self.handle_confirm(text)
        elif asked in (Intent.CANCEL, Intent.CASUAL_CANCEL):
            self.say("intake_cancelled")
            self.reset()
        elif asked in INTAKE_ANSWERS:
            if not (self.state == CONFIRM and asked is Intent.QUESTION_PRICE):  # the price is in the re-ask
                self.say(INTAKE_ANSWERS[asked], rescue=None, **self._answer_context(asked))
            self.reask()
        elif asked is Intent.HELP:
            self.say("help")
        elif asked is Intent.CORRECTION:
            self._correct(text)
        elif self.state in (ASK_DROPOFF, PICK_DROPOFF) and (
                asked is Intent.SKIP or (self.state == ASK_DROPOFF and words.answer(text) == "no")):
            self._skip_dropoff()
        elif words.not_understandable(text) and self.state not in (ASK_PROBLEM, CONFIRM):
            self._miss(lambda: (self.say("not_understood"), self.reask()))
        else:  # ask_problem and confirm have their own words for what they did not get
            getattr(self, f"handle_{self.state}")(text)

    def handle_ask_location(self, text: str) -> None:
        if not self._take_in(text, first=False):
            self._miss(lambda: self.say("place_not_found", purpose=PICKUP))

    def handle_pick_location(self, text: str) -> None:
        self._pick(text, PICKUP)

    def handle_confirm_pickup(self, text: str) -> None:
        said = words.answer(text)
        if said == "yes":
            self.data["pickup_confirmed"] = True
            self._next()
        elif said == "no":
            self.data.pop(PICKUP, None)
            self.retry_location()
        else:
            self._resolve_place(text, PICKUP)  # a better description instead of yes/no

    def handle_ask_problem(self, text: str) -> None:
        choice = words.menu_choice(text, len(words.PROBLEM_MENU))
        problem = words.PROBLEM_MENU[str(choice)] if choice else words.classify_problem(text)
        if problem:
            self._set_problem(problem, "" if choice else text)
            self._note_dropoff(text)
            self._next()
            return
        place = self._local_place(text)
        if place:  # a new place corrects the one said back
            self._place_found(place, PICKUP)
        elif len(words.normalise(text)) < 3 or words.not_understandable(text):
            self._miss(lambda: self.say("problem_unclear"))
        else:
            self._set_problem("other", text)
            self._next()

    def handle_ask_dropoff(self, text: str) -> None:
        self._resolve_place(text, DROPOFF)

    def handle_pick_dropoff(self, text: str) -> None:
        self._pick(text, DROPOFF)

    def handle_confirm(self, text: str) -> None:
        said = words.answer(text)
        if said == "yes":
            self.book()
        elif said == "no":
            self.say("quote_declined")
            self.reset()
        else:
            place = self._local_place(text)
            if place:  # a new place at the quote: the drop-off, priced again
                self._place_found(place, DROPOFF)
            else:
                self._miss(lambda: self.say("confirm_unclear", quote_cents=self.data["quote"]["cents"]))

    # -- what a text says -------------------------------------------------------------------
    def _take_in(self, text: str, first: bool) -> bool:
        """Use whatever `text` says about the rescue: the problem, where the rider is, where to.
        The first text of an intake is chatter as often as not ("hi can you help"), so there
        the geocoder only hears a place that words like "at" point at. Returns whether the
        text said anything of use (or got its own answer: a refusal, the "which one" list)."""
        problem = None if self.has_problem() else words.classify_problem(text)
        if problem:
            self._set_problem(problem, text)
        trip = words.split_trip(text)
        self._note_dropoff(text, trip)
        # The geocoder hears the place words point at, or, where a place was asked for, all of it
        # ("the corner bodega on 9th" is not "9th").
        ask_geocoder = trip.pickup if first or trip.dropoff else text
        try:
            found = self._pickups(text, trip.pickup, ask_geocoder if not first or words.marked_places(text) else None,
                                  whole=not trip.dropoff)
        except MapLinkUnreadable:
            self._quietly(self.retry_location, lambda: self.say("link_unreadable", purpose=PICKUP))
            return True
        except GeocoderUnavailable:
            self._quietly(self.retry_location, lambda: self.say("geocoder_unavailable", purpose=PICKUP))
            return True
        if found:
            self._place_found(found, PICKUP)
            return True
        if first and words.marked_places(text):  # words pointed at a place nobody knows
            self.say("welcome")
            self._quietly(self.retry_location, lambda: self.say("place_not_found", purpose=PICKUP))
            return True
        if not problem:
            return False
        if first:
            self.say("welcome")
        self.advance()
        return True

    def _pickups(self, text: str, place_text: str | None, ask_geocoder: str | None, whole: bool) -> list[Point]:
        """Where the rider is: what the text carries, then the city's own names for the place words
        (or, with `whole`, for all of a text that names no drop-off), then the geocoder about
        `ask_geocoder`, if anything."""
        locator = self.ctx.locator
        point = locator.pinpoint(text)  # coordinates and links, wherever they are in the text
        if point:
            return [point]
        candidates = dict.fromkeys((place_text, text if whole else None))
        readings = [locator.resolve(t[:PLACE_TEXT_MAX], geocode=False) for t in candidates if t]
        found = next((r for r in readings if len(r) == 1), None) or next((r for r in readings if r), None)
        if found:  # one place beats a list: "outside the met" is the Met, "met" is two places
            return found
        return locator.resolve(ask_geocoder[:PLACE_TEXT_MAX]) if ask_geocoder else []

    def _local_place(self, text: str) -> list[Point]:
        """A place in a text that was not asked for one: only what the city's own names and the
        text itself say (no geocoder guessing at "it makes a weird noise")."""
        place_text = words.split_trip(text).pickup
        try:
            point = self.ctx.locator.pinpoint(text)
            if point:
                return [point]
            return self.ctx.locator.resolve(place_text[:PLACE_TEXT_MAX], geocode=False) if place_text else []
        except GeocoderUnavailable:
            return []

    def _note_dropoff(self, text: str, trip: words.Trip | None = None) -> None:
        """A drop-off named along the way ("... going to penn station"), used once there is a pickup."""
        trip = trip or words.split_trip(text)
        if trip.dropoff and not self.dropoff_decided():
            self.data["dropoff_text"] = trip.dropoff[:PLACE_TEXT_MAX]

    def _resolve_place(self, text: str, purpose: str) -> None:
        """An answer to "where are you?" or "where to?"."""
        try:
            found = self.ctx.locator.resolve(words.clean(text)[:PLACE_TEXT_MAX])
        except MapLinkUnreadable:
            self.say("link_unreadable", purpose=purpose)
            return
        except GeocoderUnavailable:
            self.say("geocoder_unavailable", purpose=purpose)
            return
        if found:
            self._place_found(found, purpose)
        else:
            self._miss(lambda: self.say("place_not_found", purpose=purpose))

    def _place_found(self, found: list[Point], purpose: str) -> None:
        if len(found) > 1:
            if any(isinstance(e, Reply) and e.template == SAFETY for e in self.effects):
                found = found[:CHOICES_AFTER_SAFETY]
            self.data["choices"] = [p.to_json() for p in found]
            self.list_pickups() if purpose == PICKUP else self.list_dropoffs()
        elif self._accept_place(found[0], purpose):
            self._placed(purpose)

    def _pick(self, text: str, purpose: str) -> None:
        choices = self.data.get("choices") or []
        choice = words.menu_choice(text, len(choices))
        if choice is None:
            self._resolve_place(text, purpose)  # a new description instead of a number
        elif self._accept_place(Point.from_json(choices[choice - 1]), purpose):
            self._placed(purpose)

    def _placed(self, purpose: str) -> None:
        if purpose == PICKUP and self.ctx.channel == "voice":
            self.check_pickup()
        else:
            self._next()

    def _next(self) -> None:
        """On to the first thing intake still lacks, using a drop-off the rider already named."""
        ready = self.has_pickup() and self.has_problem() and not self.dropoff_decided()
        pending = self.data.pop("dropoff_text", None) if ready else None
        if pending:
            try:
                found = self.ctx.locator.resolve(pending)
            except GeocoderUnavailable:
                found = []
            if found:  # not found: "where to?" asks again
                self._place_found(found, DROPOFF)
                return
        self.advance()

    def _accept_place(self, point: Point, purpose: str) -> bool:
        """Check a place against the rules; on refusal say why, and the question stays open."""
        if purpose == PICKUP:
            if not in_service_area(point, self.ctx.area):
                self._quietly(self.retry_location if self.state == IDLE else None,
                              lambda: self.say("outside_area", place=point.label))
                return False
            self.data.pop("choices", None)
            self.data[PICKUP] = point.to_json()
            self.data["said_back"] = PICKUP
            self._measure_again()
            return True
        miles = distance_miles(Point.from_json(self.data[PICKUP]), point)
        if miles > self.ctx.max_trip_miles:
            if self.state not in (ASK_DROPOFF, PICK_DROPOFF):  # named earlier or at the quote
                for key in (DROPOFF, "trip_miles"):
                    self.data.pop(key, None)
            self._quietly(self.retry_dropoff if self.state not in (ASK_DROPOFF, PICK_DROPOFF) else None,
                          lambda: self.say("trip_too_long", miles=round(miles, 1), max_miles=self.ctx.max_trip_miles,
                                           place=point.label))
            return False
        self.data.pop("choices", None)
        self.data[DROPOFF] = point.to_json()
        self.data["trip_miles"] = round(miles, 2)
        self.data["said_back"] = DROPOFF
        return True

    def _measure_again(self) -> None:
        """A corrected pickup: the drop-off's distance changes, and one now too far is asked again."""
        dropoff = Point.from_json(self.data.get(DROPOFF))
        if dropoff is None:
            return
        miles = distance_miles(Point.from_json(self.data[PICKUP]), dropoff)
        if miles > self.ctx.max_trip_miles:
            for key in (DROPOFF, "trip_miles"):
                self.data.pop(key, None)
        else:
            self.data["trip_miles"] = round(miles, 2)

    def _skip_dropoff(self) -> None:
        self.data.pop("choices", None)
        self.data[DROPOFF] = None
        self.data["trip_miles"] = 0.0
        self.advance()

    def _correct(self, text: str) -> None:
        """ "no, I'm at ...", "wrong place": the place said back last (the pickup whenever the
        rider says where they are) is forgotten or replaced, and intake goes on from there."""
        place = words.correction(text) or ""
        target = PICKUP if words.about_the_rider(text) or not self.data.get(DROPOFF) else \
            self.data.get("said_back", PICKUP)
        if not place:
            if target == PICKUP:
                for key in (PICKUP, "choices", "pickup_confirmed"):
                    self.data.pop(key, None)
                self.retry_location()
            else:
                for key in (DROPOFF, "trip_miles", "choices"):
                    self.data.pop(key, None)
                self.retry_dropoff()
            return
        self._resolve_place(place, target)

    def _set_problem(self, problem: str, text: str) -> None:
        self.data["problem"] = problem
        self.data["problem_note"] = words.clean(text)[:PROBLEM_NOTE_MAX]
        if problem == "crash":  # first, in the same text: texts are not sure to arrive in order
            self.say(SAFETY)

    # -- nobody left looping ---------------------------------------------------------------
    def _miss(self, say_it: Callable[[], Any]) -> None:
        """A text not understood. The third in a row brings a person in, and the rider is told
        so; after that they are not answered with the same words again (an auto-reply on the
        other end would loop) until something is understood."""
        self.missed = True
        if self.ctx.channel != "sms":  # a call has its own retries, then goes on by text
            say_it()
            return
        misses = self.data.get("misses", 0) + 1
        if misses >= MISSES_BEFORE_HELP:
            self._bring_a_person(self.text, NOT_UNDERSTOOD)
            if misses == MISSES_BEFORE_HELP:
                self.say("help_coming")
        else:
            say_it()
        self.data["misses"] = misses

    def _bring_a_person(self, text: str, reason: str) -> None:
        rescue = self.ctx.open_rescue
        self.effects.append(OpenHelpRequest(reason, words.clean(text), rescue.id if rescue else None))

    # -- helpers -----------------------------------------------------------------------
    def _quietly(self, move: Callable[[], Any] | None, say_it: Callable[[], Any]) -> None:
        """Say a refusal that asks the question itself, then move (if at all) without asking it again."""
        say_it()
        if move is not None:
            self.hushed = True
            try:
                move()
            finally:
                self.hushed = False

    def _label(self, purpose: str) -> str | None:
        return (self.data.get(purpose) or {}).get("label")


def step(state: str, data: dict[str, Any], text: str, ctx: FlowContext) -> StepResult:
    """Apply one rider message. Pure apart from the lookups `ctx` offers."""
    turn = RiderTurn(data, ctx, text)
    MACHINE.add_model(turn, initial=state if state in STATES else IDLE)
    try:
        turn.handle(text)
        return StepResult(state=turn.state, data=turn.data, effects=turn.effects, language=turn.language,
                          language_chosen=turn.language_chosen)
    finally:
        MACHINE.remove_model(turn)
