"""flows.rider.step: the rider's SMS intake and open-rescue conversation (PRODUCT.md §4).

A real FlowContext: the built-in gazetteer behind a Locator, the demo service area, a 10 mi
trip limit and real pricing. Every Reply produced is rendered with its template.
"""
from __future__ import annotations

import json

import pytest

from dispatch.config import Pricing, ServiceArea
from dispatch.model.geo import Point
from dispatch.model.pricing import Quote, quote
from dispatch.model.rescue import Rescue
from dispatch.model.street_grid import StreetGrid
from dispatch.places import Gazetteer, GeocoderUnavailable, Locator
from dispatch.texts import say
from flows.effects import (
    CancelRescue,
    CreateRescue,
    FlowContext,
    OpenHelpRequest,
    Relay,
    Reply,
    ResendPaymentLink,
    StepResult,
)
from flows.rider import STATES, step
from flows.text import clean as words_clean
from tests.dispatch.fakes import FakeGeocoder

AREA = ServiceArea(40.7580, -73.9855, 15.0)
GAZETTEER = Gazetteer.builtin()
STREETS = StreetGrid.builtin()


def make_rescue(**overrides) -> Rescue:
    doc = {"_id": "rescue-1", "code": "R4821", "status": "searching", "rider_phone": "+12125550123",
           "pickup": {"lat": 40.7359, "lng": -73.9911, "label": "Union Square"}, "dropoff": None,
           "problem": "flat_tire", "problem_note": "flat", "quote_cents": 2800, "trip_miles": 0.0,
           "surge": 1.0, "created_at": 1_700_000_000_000, "updated_at": 1_700_000_000_000}
    doc.update(overrides)
    return Rescue.from_doc(doc)


def make_ctx(open_rescue: Rescue | None = None, surge: float = 1.0, geocoder=None, channel: str = "sms",
             **more) -> FlowContext:
    quoted: list[float] = []

    def quote_for(miles: float) -> Quote:
        quoted.append(miles)
        return quote(Pricing(), miles, surge)

    ctx = FlowContext(locator=Locator(GAZETTEER, streets=STREETS, geocoder=geocoder, near=(AREA.lat, AREA.lng)),
                      area=AREA, max_trip_miles=10,
                      quote=quote_for, open_rescue=open_rescue, channel=channel, **more)
    ctx.quoted = quoted  # what the flow asked to price
    return ctx


def render(reply: Reply, rescue: Rescue | None = None, lang: str = "en") -> str:
    """As the engine does: the rescue just created (or given) is in every template's context."""
    text = say(reply.template, lang=lang, **{"rescue": rescue or make_rescue(), **reply.context})
    assert text.strip(), reply.template
    return text


class Rider:
    """One rider's conversation: the state and data the engine would store between messages."""

    def __init__(self, ctx: FlowContext | None = None, state: str = "idle", data: dict | None = None):
        self.ctx = ctx or make_ctx()
        self.state = state
        self.data = data or {}
        self.last: StepResult | None = None

    def text(self, body: str) -> StepResult:
        result = step(self.state, self.data, body, self.ctx)
        assert result.state in STATES
        json.dumps(result.data)  # stored as a document: must stay plain JSON
        for effect in result.effects:
            if isinstance(effect, Reply):
                render(effect, lang=result.language)
        self.state, self.data, self.last = result.state, result.data, result
        # As the engine keeps it with the conversation:
        self.ctx.language, self.ctx.language_chosen = result.language, result.language_chosen
        return result

    def texts(self, *bodies: str) -> StepResult:
        for body in bodies:
            result = self.text(body)
        return result


def templates(result: StepResult) -> list[str]:
    return [e.template for e in result.effects if isinstance(e, Reply)]


def reply(result: StepResult, template: str) -> Reply:
    (found,) = [e for e in result.effects if isinstance(e, Reply) and e.template == template]
    return found


def creates(result: StepResult) -> list[CreateRescue]:
    return [e for e in result.effects if isinstance(e, CreateRescue)]


def at_confirm(rider: Rider | None = None) -> Rider:
    rider = rider or Rider()
    result = rider.texts("flat tire at union square", "SKIP")
    assert result.state == "confirm"
    return rider


# -- first message ---------------------------------------------------------------------------

def test_first_message_with_location_and_problem_skips_both_questions():
    rider = Rider()
    result = rider.text("Flat tire at Union Square, help")
    assert result.state == "ask_dropoff"
    assert templates(result) == ["ask_dropoff"]
    assert rider.data["pickup"] == {"lat": 40.7359, "lng": -73.9911, "label": "Union Square"}
    assert rider.data["problem"] == "flat_tire"
    assert rider.data["problem_note"] == "Flat tire at Union Square, help"
    assert "up to 10 mi" in render(reply(result, "ask_dropoff"))


def test_first_message_with_coordinates_and_problem():
    result = Rider().text("battery died at 40.7536,-73.9832 pls")
    assert result.state == "ask_dropoff"
    assert templates(result) == ["ask_dropoff"]


def test_first_message_with_only_a_location_asks_the_problem():
    rider = Rider()
    result = rider.text("hi im at bryant park")
    assert result.state == "ask_problem"
    assert templates(result) == ["ask_problem"]
    assert render(reply(result, "ask_problem")).startswith("Got it: Bryant Park.")


def test_first_message_with_nothing_useful_welcomes_and_asks_where():
    result = Rider().text("hello?")
    assert result.state == "ask_location"
    assert templates(result) == ["welcome", "ask_location"]
    assert "SupportCarr" in render(reply(result, "welcome"))


def test_first_message_with_only_the_problem_skips_that_question_later():
    rider = Rider()
    result = rider.text("my chain broke")
    assert (result.state, templates(result)) == ("ask_location", ["welcome", "ask_location"])
    assert rider.data["problem"] == "mechanical"
    result = rider.text("union sq")
    assert result.state == "ask_dropoff"
    assert templates(result) == ["ask_dropoff"]


# -- where are you? ---------------------------------------------------------------------------

def test_several_matches_give_a_numbered_list_and_a_number_picks_one():
    rider = Rider()
    rider.text("hello")
    result = rider.text("park")
    assert result.state == "pick_location"
    choice_reply = reply(result, "pick_place")
    assert choice_reply.context["purpose"] == "pickup"
    assert len(choice_reply.context["choices"]) == 5
    text = render(choice_reply)
    assert "1) Washington Square Park" in text and "3) Bryant Park" in text and "5) " in text
    result = rider.text("3")
    assert result.state == "ask_problem"
    assert rider.data["pickup"]["label"] == "Bryant Park"
    assert "choices" not in rider.data


@pytest.mark.parametrize("answer", ["#2", "2.", "option 2", "2)"])
def test_number_variants_pick_from_the_list(answer):
    rider = Rider()
    rider.texts("hello", "park")
    result = rider.text(answer)
    assert result.state == "ask_problem"
    assert rider.data["pickup"]["label"] == "Madison Square Park"


def test_redescribing_instead_of_a_number():
    rider = Rider()
    rider.texts("hello", "park")
    result = rider.text("union square")
    assert result.state == "ask_problem"
    assert rider.data["pickup"]["label"] == "Union Square"


def test_redescribing_with_another_ambiguous_name_gives_a_new_list():
    rider = Rider()
    rider.texts("hello", "park")
    result = rider.text("central park")
    assert result.state == "pick_location"
    assert [c["label"] for c in rider.data["choices"]] == [
        "Central Park South", "Central Park Bethesda Terrace", "Central Park North"]
    rider.text("3")
    assert rider.data["pickup"]["label"] == "Central Park North"


def test_out_of_range_number_is_not_found_and_the_list_stays():
    rider = Rider()
    rider.texts("hello", "park")
    result = rider.text("9")
    assert result.state == "pick_location"
    assert templates(result) == ["place_not_found"]
    result = rider.text("1")
    assert result.state == "ask_problem"
    assert rider.data["pickup"]["label"] == "Washington Square Park"


def test_unknown_place_keeps_asking():
    rider = Rider()
    rider.text("hello")
    result = rider.text("the blue mailbox by xyzzy")
    assert result.state == "ask_location"
    assert templates(result) == ["place_not_found"]
    assert "pickup" not in rider.data
    assert "SKIP" not in render(reply(result, "place_not_found"))


def test_coordinates_and_map_links_as_the_answer():
    rider = Rider()
    rider.text("hello")
    result = rider.text("https://maps.apple.com/?ll=40.7308,-73.9973&q=Dropped%20Pin")
    assert result.state == "ask_problem"
    assert rider.data["pickup"]["lat"] == 40.7308


def test_pickup_outside_the_service_area_is_refused():
    rider = Rider()
    rider.text("hello")
    result = rider.text("coney island")
    assert result.state == "ask_location"
    assert templates(result) == ["outside_area"]
    assert "pickup" not in rider.data
    assert "Coney Island Boardwalk is outside the area" in render(reply(result, "outside_area"))
    # No rescue can come of it, and a place inside the area is then accepted.
    result = rider.text("inwood hill park")
    assert result.state == "ask_problem"
    assert not creates(result)


def test_first_message_from_outside_the_area_is_refused():
    rider = Rider()
    result = rider.text("flat tire on the coney island boardwalk")
    assert templates(result) == ["outside_area"]
    assert "pickup" not in rider.data
    assert not creates(result)
    result = rider.text("40.6413,-73.7781")   # JFK as coordinates
    assert templates(result) == ["outside_area"]
    assert "pickup" not in rider.data


def test_geocoder_down_asks_for_a_pin():
    class DownGeocoder:
        def search(self, query: str) -> list[Point]:
            raise GeocoderUnavailable("timeout")

    rider = Rider(make_ctx(geocoder=DownGeocoder()))
    result = rider.text("hello")   # a first message never waits on the geocoder
    assert result.state == "ask_location"
    result = rider.text("the corner bodega on 9th")
    assert result.state == "ask_location"
    assert templates(result) == ["geocoder_unavailable"]
    assert "map pin" in render(reply(result, "geocoder_unavailable"))
    assert rider.text("union square").state == "ask_problem"


# -- what's wrong? ------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, problem", [
    ("1", "flat_tire"), ("2", "dead_battery"), ("#3", "mechanical"), ("5", "other"),
    ("the battery is dead", "dead_battery"), ("it makes a weird grinding noise", "other"),
])
def test_problem_by_menu_or_words(answer, problem):
    rider = Rider()
    rider.text("at union square")
    result = rider.text(answer)
    assert result.state == "ask_dropoff"
    assert rider.data["problem"] == problem


def test_unclear_problem_asks_again():
    rider = Rider()
    rider.text("at union square")
    result = rider.text("??")
    assert result.state == "ask_problem"
    assert templates(result) == ["problem_unclear"]
    assert "problem" not in rider.data


@pytest.mark.parametrize("answer", ["4", "I crashed into a car door"])
def test_crash_gets_the_safety_message_first(answer):
    rider = Rider()
    rider.text("at union square")
    result = rider.text(answer)
    # First in the same text: two texts are not sure to arrive in the order they were sent.
    assert templates(result) == ["crash_safety", "ask_dropoff"]
    assert "911" in render(reply(result, "crash_safety"))
    assert rider.data["problem"] == "crash"


def test_crash_in_the_first_message_gets_the_safety_message_first():
    result = Rider().text("I crashed at times square, my wrist hurts")
    assert templates(result) == ["crash_safety", "ask_dropoff"]
    result = Rider().text("I crashed")
    assert templates(result) == ["crash_safety", "welcome", "ask_location"]


def test_a_list_after_the_crash_line_is_cut_to_fit_one_text():
    rider = Rider()
    rider.text("hi")
    result = rider.text("crashed at park")   # "park": five places
    assert templates(result) == ["crash_safety", "pick_place"]
    assert len(rider.data["choices"]) == 3


# -- where to? ------------------------------------------------------------------------------------

def test_dropoff_within_range_goes_to_the_quote():
    rider = Rider()
    rider.text("flat tire at union square")
    result = rider.text("bryant park")
    assert result.state == "confirm"
    assert rider.data["dropoff"]["label"] == "Bryant Park"
    assert 1.0 < rider.data["trip_miles"] < 1.6
    assert templates(result) == ["quote"]
    q = reply(result, "quote").context["quote"]
    assert q.billable_miles == round(rider.data["trip_miles"], 1)
    assert q.cents == round(2500 + 300 * q.billable_miles)
    text = render(reply(result, "quote"))
    assert f"${q.cents / 100:,.2f}" in text and "to Bryant Park" in text and "flat tire" in text


def test_too_long_dropoff_is_refused_and_skip_is_accepted():
    rider = Rider()
    rider.text("flat tire at inwood hill park")
    assert rider.state == "ask_dropoff"
    result = rider.text("battery park")
    assert result.state == "ask_dropoff"
    assert templates(result) == ["trip_too_long"]
    refusal = reply(result, "trip_too_long")
    assert refusal.context["miles"] > 10
    assert refusal.context["place"] == "Battery Park"
    assert "up to 10 mi" in render(refusal)
    assert "dropoff" not in rider.data
    result = rider.text("SKIP")
    assert result.state == "confirm"
    assert rider.data["dropoff"] is None and rider.data["trip_miles"] == 0.0
    assert rider.ctx.quoted[-1] == 0.0
    text = render(reply(result, "quote"))
    assert "$28.00" in text and "drop-off within 1.0 mi" in text


def test_several_dropoff_matches_then_a_number():
    rider = Rider()
    rider.text("flat tire at union square")
    result = rider.text("central park")
    assert result.state == "pick_dropoff"
    assert reply(result, "pick_place").context["purpose"] == "dropoff"
    assert render(reply(result, "pick_place")).startswith("Which drop-off did you mean?")
    result = rider.text("2")
    assert result.state == "confirm"
    assert rider.data["dropoff"]["label"] == "Central Park Bethesda Terrace"


def test_skip_while_choosing_a_dropoff():
    rider = Rider()
    rider.texts("flat tire at union square", "central park")
    result = rider.text("skip")
    assert result.state == "confirm"
    assert rider.data["dropoff"] is None


# -- quote and confirmation ------------------------------------------------------------------

@pytest.mark.parametrize("yes", ["Y", "yes", "ok", "Yes please"])
def test_confirm_creates_exactly_one_rescue_with_the_quoted_price(yes):
    rider = Rider()
    rider.texts("flat tire at union square", "bryant park")
    quoted = rider.data["quote"]
    result = rider.text(yes)
    assert result.state == "active"
    (created,) = creates(result)
    assert [type(e) for e in result.effects] == [CreateRescue, Reply]
    assert created.quote_cents == quoted["cents"]
    assert created.quote_cents == quote(Pricing(), created.trip_miles, 1.0).cents
    assert isinstance(created.quote_cents, int)
    assert created.surge == 1.0
    assert created.pickup["label"] == "Union Square"
    assert created.dropoff["label"] == "Bryant Park"
    assert created.problem == "flat_tire"
    assert created.problem_note == "flat tire at union square"
    assert templates(result) == ["rescue_confirmed"]
    rescue = make_rescue(code="R1234")
    assert "Rescue R1234" in render(reply(result, "rescue_confirmed"), rescue)
    assert rider.data == {}


def test_confirm_uses_the_surge_in_the_quote():
    rider = Rider(make_ctx(surge=1.5))
    rider.texts("flat tire at union square", "skip")
    assert rider.data["quote"] == {"cents": 4200, "surge": 1.5, "miles": 1.0}
    assert "1.5x busy-time rate" in render(reply(rider.last, "quote"))
    (created,) = creates(rider.text("y"))
    assert (created.quote_cents, created.surge, created.dropoff) == (4200, 1.5, None)


@pytest.mark.parametrize("no", ["N", "no", "nope", "no thanks"])
def test_declining_resets_without_a_rescue(no):
    rider = at_confirm()
    result = rider.text(no)
    assert result.state == "idle"
    assert rider.data == {}
    assert not creates(result)
    assert templates(result) == ["quote_declined"]


def test_unclear_confirmation_asks_again_with_the_price():
    rider = at_confirm()
    result = rider.text("what does that mean")
    assert result.state == "confirm"
    assert templates(result) == ["confirm_unclear"]
    assert not creates(result)
    assert "$28.00" in render(reply(result, "confirm_unclear"))
    result = rider.text("y")
    assert len(creates(result)) == 1


def test_a_booked_conversation_only_creates_once():
    rider = at_confirm()
    first = rider.text("Y")
    assert len(creates(first)) == 1
    # The engine now has the rescue open: another Y is about that rescue, not a new booking.
    rider.ctx.open_rescue = make_rescue()
    second = rider.text("Y")
    assert not creates(second)
    assert templates(second) == ["rescue_waiting"]


# -- keywords during intake -----------------------------------------------------------------------

def _rider_in(state_name: str) -> Rider:
    rider = Rider()
    script = {
        "ask_location": ["hello"],
        "pick_location": ["hello", "park"],
        "ask_problem": ["at union square"],
        "ask_dropoff": ["flat at union square"],
        "pick_dropoff": ["flat at union square", "central park"],
        "confirm": ["flat at union square", "skip"],
    }[state_name]
    rider.texts(*script)
    assert rider.state == state_name
    return rider


INTAKE_PROMPTS = {"ask_location": "ask_location", "pick_location": "pick_again",
                  "ask_problem": "ask_problem", "ask_dropoff": "ask_dropoff",
                  "pick_dropoff": "pick_again", "confirm": "confirm_unclear"}


@pytest.mark.parametrize("state_name", list(INTAKE_PROMPTS))
@pytest.mark.parametrize("words", ["CANCEL RESCUE", "nevermind", "Never mind."])
def test_cancel_rescue_during_intake_resets(state_name, words):
    rider = _rider_in(state_name)
    result = rider.text(words)
    assert result.state == "idle"
    assert rider.data == {}
    assert templates(result) == ["intake_cancelled"]
    assert not creates(result) and not any(isinstance(e, CancelRescue) for e in result.effects)


@pytest.mark.parametrize("state_name", list(INTAKE_PROMPTS))
def test_status_during_intake_asks_the_question_again(state_name):
    rider = _rider_in(state_name)
    before = dict(rider.data)
    result = rider.text("STATUS")
    assert result.state == state_name
    assert templates(result) == ["no_rescue_yet", INTAKE_PROMPTS[state_name]]
    assert {k: v for k, v in rider.data.items() if k != "quote"} == {
        k: v for k, v in before.items() if k != "quote"}
    assert render(reply(result, "no_rescue_yet")) == "No rescue booked yet."


def test_status_after_a_refused_choice_does_not_crash():
    # "island" lists Battery Park, Long Island City and Coney Island; 3 is outside the area.
    rider = Rider()
    rider.texts("hello", "island")
    result = rider.text("3")
    assert (result.state, templates(result)) == ("pick_location", ["outside_area"])
    try:
        result = rider.text("status")
    except KeyError as exc:
        pytest.fail(
            "APP BUG flows/rider.py:209 (_accept_place pops data['choices']) + rider.py:228 "
            "(reprompt) + rider.py:74 (on_enter_pick_location reads data['choices']): after a "
            "listed place is refused the state stays pick_location without choices, so STATUS "
            f"(reprompt, rider.py:249) raises KeyError {exc}; same for pick_dropoff after "
            "trip_too_long (rider.py:83)")
    assert "no_rescue_yet" in templates(result)


def test_status_after_a_refused_dropoff_choice_does_not_crash():
    rider = Rider()
    rider.texts("flat at union square", "island")
    result = rider.text("3")   # Coney Island: too far
    assert (result.state, templates(result)) == ("pick_dropoff", ["trip_too_long"])
    try:
        result = rider.text("status")
    except KeyError as exc:
        pytest.fail(
            "APP BUG flows/rider.py:83 (on_enter_pick_dropoff reads data['choices'], popped by "
            f"_accept_place at rider.py:209): STATUS in pick_dropoff after trip_too_long raises KeyError {exc}")
    assert "no_rescue_yet" in templates(result)


def test_first_message_with_a_date_does_not_crash():
    try:
        result = Rider().text("broke down 12.03.2024, 10.30 near times sq")
    except ValueError as exc:
        pytest.fail("APP BUG dispatch/geo.py:58 via Locator.spot_in_message (flows/rider.py:110): "
                    f"a first message with a dotted date raises ValueError {exc}")
    assert result.state in STATES


# -- with an open rescue ----------------------------------------------------------------------

@pytest.mark.parametrize("saved_state", ["active", "idle", "confirm", "ask_dropoff"])
def test_status_with_an_open_rescue(saved_state):
    rescue = make_rescue(status="en_route", code="R7777")
    rider = Rider(make_ctx(open_rescue=rescue), state=saved_state,
                  data={"pickup": {"lat": 40.7, "lng": -74.0, "label": "x"}})
    result = rider.text("status")
    assert result.state == "active"
    assert templates(result) == ["rescue_status"]
    assert reply(result, "rescue_status").context["rescue"] is rescue
    text = render(reply(result, "rescue_status"), rescue)
    assert "Rescue R7777: your driver is on the way." in text
    assert not creates(result)


def test_cancel_rescue_with_an_open_rescue():
    rescue = make_rescue()
    rider = Rider(make_ctx(open_rescue=rescue), state="active")
    result = rider.text("Cancel rescue")
    assert result.state == "idle"
    cancels = [e for e in result.effects if isinstance(e, CancelRescue)]
    assert cancels == [CancelRescue("rescue-1", reason="cancelled by rider")]
    assert templates(result) == ["rescue_cancelled"]
    assert "Rescue R4821 is cancelled" in render(reply(result, "rescue_cancelled"), rescue)
    assert not creates(result)


def test_anything_else_with_an_open_rescue_is_acknowledged():
    rescue = make_rescue()
    rider = Rider(make_ctx(open_rescue=rescue), state="active")
    result = rider.text("flat tire at union square")   # not a new intake
    assert result.state == "active"
    assert templates(result) == ["rescue_waiting"]
    assert not creates(result)


def test_active_state_without_an_open_rescue_starts_a_new_intake():
    rider = Rider(state="active")
    result = rider.text("hello again")
    assert result.state == "ask_location"
    assert templates(result) == ["welcome", "ask_location"]


@pytest.mark.parametrize("saved_state", ["no_such_state", "", "CONFIRM", "driver_online"])
def test_unknown_saved_state_is_treated_as_idle(saved_state):
    rider = Rider(state=saved_state, data={"junk": 1, "quote": {"cents": 1}})
    result = rider.text("hello")
    assert result.state == "ask_location"
    assert templates(result) == ["welcome", "ask_location"]
    assert "junk" not in rider.data
    result = Rider(state=saved_state).text("flat tire at union square")
    assert result.state == "ask_dropoff"


# -- a whole conversation ----------------------------------------------------------------------

def test_full_intake_walk():
    rider = Rider()
    seen = []
    for body in ("hi", "park", "3", "2", "central park", "1", "yes"):
        result = rider.text(body)
        seen.append((result.state, templates(result)))
    assert seen == [
        ("ask_location", ["welcome", "ask_location"]),
        ("pick_location", ["pick_place"]),
        ("ask_problem", ["ask_problem"]),
        ("ask_dropoff", ["ask_dropoff"]),
        ("pick_dropoff", ["pick_place"]),
        ("confirm", ["quote"]),
        ("active", ["rescue_confirmed"]),
    ]
    (created,) = creates(rider.last)
    assert created.pickup["label"] == "Bryant Park"
    assert created.dropoff["label"] == "Central Park South"
    assert created.problem == "dead_battery"
    assert created.trip_miles == pytest.approx(0.95, abs=0.1)
    assert created.quote_cents == 2800   # under the 1 mi minimum


# -- one text, everything ------------------------------------------------------------------------

def test_a_complete_first_text_books_in_three():
    rider = Rider()
    assert rider.text("flat tire at Union Square").state == "ask_dropoff"
    assert rider.text("skip").state == "confirm"
    assert len(creates(rider.text("y"))) == 1


def test_a_bare_hi_books_in_five():
    rider = Rider()
    for text, state in [("hi", "ask_location"), ("Union Square", "ask_problem"), ("1", "ask_dropoff"),
                        ("skip", "confirm"), ("yes", "active")]:
        assert rider.text(text).state == state, text
    assert len(creates(rider.last)) == 1


def test_pickup_problem_and_dropoff_in_one_text():
    rider = Rider()
    result = rider.text("battery dead at bryant park going to penn station")
    assert result.state == "confirm"
    assert (rider.data["pickup"]["label"], rider.data["dropoff"]["label"]) == ("Bryant Park", "Penn Station")
    assert "pickup at Bryant Park to Penn Station" in render(reply(result, "quote"))


def test_a_named_dropoff_waits_for_the_pickup_to_be_chosen():
    rider = Rider()
    assert rider.text("flat at central park going to penn station").state == "pick_location"
    assert rider.text("1").state == "confirm"
    assert rider.data["dropoff"]["label"] == "Penn Station"


def test_a_named_dropoff_waits_for_the_problem():
    rider = Rider()
    assert rider.text("im at bryant park, take me to penn station").state == "ask_problem"
    assert rider.text("2").state == "confirm"
    assert rider.data["dropoff"]["label"] == "Penn Station"


def test_a_named_dropoff_too_far_is_refused_and_asked_again():
    rider = Rider()
    result = rider.text("chain broke at inwood hill park going to battery park")
    assert (result.state, templates(result)) == ("ask_dropoff", ["trip_too_long"])
    assert "dropoff" not in rider.data
    assert rider.text("skip").state == "confirm"


def test_an_ambiguous_place_in_the_first_text_gets_the_list():
    result = Rider().text("i'm at central park")
    assert (result.state, templates(result)) == ("pick_location", ["pick_place"])


def test_the_pickup_is_said_back_before_the_dropoff_question():
    result = Rider().text("flat tire at 5th ave and 23rd")
    assert render(reply(result, "ask_dropoff")).startswith("Pickup: 5th Ave & W 23rd St.")


def test_a_first_text_only_asks_the_geocoder_about_a_place_words_point_at():
    bodega = Point(40.7465, -74.0014, "Bodega, 9th Avenue")
    geocoder = FakeGeocoder({"bodega": [bodega]})
    assert Rider(make_ctx(geocoder=geocoder)).text("hi can you help me").state == "ask_location"
    assert geocoder.asked == []
    result = Rider(make_ctx(geocoder=geocoder)).text("flat tire at the bodega")
    assert result.state == "ask_dropoff" and geocoder.asked == ["bodega"]


# -- corrections -------------------------------------------------------------------------------

def test_a_corrected_pickup_measures_the_trip_again():
    rider = Rider()
    rider.texts("flat tire at union square", "bryant park")
    before = rider.data["trip_miles"]
    result = rider.text("no, I'm at penn station")
    assert result.state == "confirm" and rider.data["pickup"]["label"] == "Penn Station"
    assert rider.data["trip_miles"] != before
    assert "pickup at Penn Station to Bryant Park" in render(reply(result, "quote"))


def test_a_corrected_pickup_too_far_from_the_dropoff_asks_where_to_again():
    rider = Rider()
    rider.texts("flat tire at union square", "battery park")
    result = rider.text("no, I'm at inwood hill park")
    assert result.state == "ask_dropoff" and "dropoff" not in rider.data


def test_wrong_place_at_the_quote_without_a_dropoff_forgets_the_pickup():
    rider = at_confirm()
    result = rider.text("wrong place")
    assert result.state == "ask_location" and "pickup" not in rider.data
    assert rider.data["problem"] == "flat_tire"
    assert rider.text("bryant park").state == "confirm"


# -- questions ---------------------------------------------------------------------------------

def test_the_price_question_uses_the_real_pricing():
    rider = Rider(make_ctx(surge=1.5))
    rider.text("hi")
    result = rider.text("how much?")
    assert templates(result) == ["price_info", "ask_location"]
    text = render(reply(result, "price_info"))
    assert "$25.00 plus $3.00 a mile" in text and "1.5x" in text


def test_a_question_keeps_the_place_in_the_flow():
    rider = Rider()
    rider.texts("flat tire at union square")
    before = dict(rider.data)
    for question in ("how long?", "is anyone coming", "how much is it", "status"):
        assert rider.text(question).state == "ask_dropoff"
    assert rider.data == before
    assert rider.text("penn station").state == "confirm"


# -- cancels -----------------------------------------------------------------------------------

def assigned_rider() -> Rider:
    return Rider(make_ctx(open_rescue=make_rescue(status="assigned", driver_id="driver-1")), state="active")


def test_a_casual_cancel_with_a_driver_on_the_way_is_confirmed_first():
    rider = assigned_rider()
    result = rider.text("nvm")
    assert result.state == "confirm_cancel" and not any(isinstance(e, CancelRescue) for e in result.effects)
    assert "already on the way" in render(reply(result, "confirm_cancel"))
    result = rider.text("y")
    assert [e for e in result.effects if isinstance(e, CancelRescue)] == [
        CancelRescue("rescue-1", reason="cancelled by rider")]


def test_keeping_the_rescue_after_a_casual_cancel():
    rider = assigned_rider()
    rider.text("nevermind")
    result = rider.text("no keep it")
    assert (result.state, templates(result)) == ("active", ["cancel_kept"])
    # Anything else is a text for the driver again.
    assert [type(e) for e in rider.text("I'm by the fountain").effects] == [Relay]


def test_an_explicit_cancel_needs_no_confirmation():
    result = assigned_rider().text("CANCEL RESCUE")
    assert result.state == "idle" and any(isinstance(e, CancelRescue) for e in result.effects)


def test_a_casual_cancel_while_still_searching_cancels_at_once():
    rider = Rider(make_ctx(open_rescue=make_rescue()), state="active")
    assert any(isinstance(e, CancelRescue) for e in rider.text("nvm").effects)


# -- PAY ---------------------------------------------------------------------------------------

def test_pay_with_nothing_owed_starts_nothing():
    result = Rider().text("PAY")
    assert (result.state, templates(result)) == ("idle", ["nothing_owed"])
    paid = make_rescue(status="completed", payment_status="paid")
    result = Rider(make_ctx(aftercare=paid)).text("pay")
    assert (result.state, templates(result)) == ("idle", ["nothing_owed"])
    assert not any(isinstance(e, ResendPaymentLink) for e in result.effects)


def test_pay_with_something_owed_sends_a_fresh_link():
    owed = make_rescue(status="completed", payment_status="failed")
    result = Rider(make_ctx(aftercare=owed)).text("PAY")
    assert ResendPaymentLink("rescue-1") in result.effects


def test_the_completed_rescue_is_looked_up_only_by_a_text_that_could_start_an_intake():
    owed = make_rescue(status="completed", payment_status="failed")
    asked: list[int] = []

    def find():
        asked.append(1)
        return owed

    rider = Rider(make_ctx(find_aftercare=find))
    assert ResendPaymentLink("rescue-1") in rider.text("PAY").effects and asked == [1]
    rider.text("flat tire at union square")
    assert asked == [1], "looked up once per step (the context is the step's)"
    asked.clear()
    rider.ctx = make_ctx(find_aftercare=find)  # the engine builds a context per text
    rider.text("skip")
    assert asked == [], "a text in the middle of an intake needs no completed rescue"


# -- a person ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["HUMAN", "human", "talk to a person", "agent", "operator", "persona", "humano",
                                  "can i speak to someone real"])
def test_asking_for_a_person_opens_a_help_request_and_keeps_the_place(text):
    rider = Rider()
    rider.text("flat tire at union square")
    result = rider.text(text)
    assert OpenHelpRequest("asked", words_clean(text), None) in result.effects
    assert templates(result) == ["human_requested"]
    assert result.state == "ask_dropoff" and rider.data["pickup"]["label"] == "Union Square"


def test_a_help_request_with_a_rescue_names_it():
    rider = Rider(make_ctx(open_rescue=make_rescue()), state="active")
    assert OpenHelpRequest("asked", "HUMAN", "rescue-1") in rider.text("HUMAN").effects


def test_three_texts_not_understood_bring_a_person_in_and_the_loop_ends():
    rider = Rider()
    rider.text("hi")
    said = []
    for text in ["🙃", "asdf qwer", "🙃", "🙃", "🙃"]:
        result = rider.text(text)
        said.append((templates(result), [e.reason for e in result.effects if isinstance(e, OpenHelpRequest)]))
    assert said == [
        (["not_understood", "ask_location"], []),
        (["place_not_found"], []),
        (["help_coming"], ["not_understood"]),
        ([], ["not_understood"]),   # told once; an auto-reply would loop on the same words
        ([], ["not_understood"]),
    ]
    assert "dispatcher to text you here" in render(Reply("help_coming"))
    # Something understood counts again from nothing.
    assert rider.text("union square").state == "ask_problem"
    assert "misses" not in rider.data


def test_misses_are_counted_in_a_row_only():
    rider = Rider()
    rider.text("hi")
    rider.texts("🙃", "🙃")
    rider.text("how much?")          # understood: a question
    result = rider.text("🙃")
    assert templates(result) == ["not_understood", "ask_location"]


def test_a_call_counts_no_misses():
    rider = Rider(make_ctx(channel="voice"))
    rider.text("")
    for _ in range(4):
        result = rider.text("blorp florp")
        assert templates(result) == ["place_not_found"]
    assert not any(isinstance(e, OpenHelpRequest) for e in result.effects)


@pytest.mark.parametrize("text", [
    "Auto-Reply: I'm driving with Driving Focus on. I'll see your message when I get where I'm going.",
    "This is an automated message, please do not reply",
    "Respuesta automática: estoy manejando, te contesto más tarde",
])
def test_auto_replies_are_not_answered(text):
    rider = Rider()
    rider.text("hi")
    for _ in range(5):
        result = rider.text(text)
        assert result.effects == [] and result.state == "ask_location"


# -- languages ---------------------------------------------------------------------------------

def test_the_language_comes_from_the_first_words_and_stays():
    rider = Rider()
    assert rider.text("se me ponchó la llanta en union square").language == "es"
    assert rider.text("skip").language == "es"           # one English word does not turn it
    assert "Responde S para reservar" in render(reply(rider.last, "quote"), lang="es")


def test_english_or_espanol_switches_at_any_time_and_sticks():
    rider = Rider()
    rider.text("flat tire at union square")
    result = rider.text("ESPAÑOL")
    assert (result.language, templates(result)) == ("es", ["language_set", "ask_dropoff"])
    assert rider.text("penn station").language == "es"
    result = rider.text("English")
    assert result.language == "en" and result.language_chosen
    # Chosen: Spanish words no longer change it.
    assert rider.text("sí por favor").language == "en"


def test_ayuda_is_the_spanish_help():
    rider = Rider()
    rider.text("hola")
    result = rider.text("AYUDA")
    assert templates(result) == ["help"] and result.state == "ask_location" and result.language == "es"
