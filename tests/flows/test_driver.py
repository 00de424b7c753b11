"""flows.driver.step: the driver's SMS grammar over their dispatch status (PRODUCT.md §4
"Driver by SMS"). Pure: a real Locator over the built-in gazetteer, no geocoder, no I/O.
Every Reply produced is rendered with its template, so a missing template or context field
fails here."""
from __future__ import annotations

import pytest

from dispatch.model.driver import AVAILABLE, OFFERED, OFFLINE, ON_JOB, STATUSES, Driver
from dispatch.model.street_grid import StreetGrid
from dispatch.places import Gazetteer, Locator
from dispatch.texts import say
from flows.driver import commands_for, step
from flows.effects import Accept, Decline, Drop, GoOffline, GoOnline, JobStep, Locate, Relay, Reply

STATES = STATUSES

LOCATOR = Locator(Gazetteer.builtin(), streets=StreetGrid.builtin())
UNION_SQ = (40.7359, -73.9911)


def driver(status: str) -> Driver:
    return Driver(id="driver-1", phone="+12125550111", name="Ann Lee", vehicle="Ford Transit", status=status)


def command(name: str, code: str | None = None):
    """The effect a command word becomes."""
    if name in ("drive", "arrive", "load", "complete"):
        return JobStep(name)
    return {"go_online": GoOnline(), "go_offline": GoOffline(), "drop": Drop(), "accept": Accept(code),
            "decline": Decline()}[name]


def run(status: str, text: str) -> list:
    effects = step(driver(status), text, LOCATOR)
    assert len(effects) == 1, effects
    for effect in effects:
        if isinstance(effect, Reply):
            assert say(effect.template, **effect.context), effect  # the template exists and renders
    return effects


# --- state commands ------------------------------------------------------------------------------

ALLOWED = {
    "ON": {OFFLINE: "go_online", AVAILABLE: "go_online"},
    "OFF": {OFFLINE: "go_offline", AVAILABLE: "go_offline", OFFERED: "go_offline"},
    "ARRIVED": {ON_JOB: "arrive"},
    "LOADED": {ON_JOB: "load"},
    "DONE": {ON_JOB: "complete"},
    "DROP": {ON_JOB: "drop"},
    "STATUS": {},  # answered with where the driver stands, in every status
}


@pytest.mark.parametrize("text", sorted(ALLOWED))
@pytest.mark.parametrize("status", STATES)
def test_command_words_only_in_states_that_allow_them(status, text):
    [effect] = run(status, text)
    expected = ALLOWED[text].get(status)
    if expected:
        assert effect == command(expected)
    else:
        assert isinstance(effect, Reply) and effect.template == "driver_status", effect
        assert effect.context["driver"].status == status


@pytest.mark.parametrize("text,name", [
    ("on", "go_online"), ("  Online ", "go_online"), ("ON DUTY", "go_online"),
    ("off duty", "go_offline"),
])
def test_presence_variants(text, name):
    assert run(OFFLINE, text) == [command(name)]


@pytest.mark.parametrize("text,name", [
    ("arrived", "arrive"), ("Here", "arrive"), ("I'm here", "arrive"), ("i\u2019m here", "arrive"),
    ("omw", "drive"), ("On my way", "drive"), ("loaded", "load"), ("Done!", "complete"),
    ("finished.", "complete"), ("drop", "drop"),
])
def test_job_variants(text, name):
    assert run(ON_JOB, text) == [command(name)]


@pytest.mark.parametrize("status,expected", [
    (OFFLINE, "offline"), (AVAILABLE, "waiting for an offer"), (OFFERED, "Y to accept"), (ON_JOB, "on a job"),
])
def test_refused_command_answers_with_the_status(status, expected):
    text = "DROP" if status != ON_JOB else "ON"
    [effect] = run(status, text)
    assert expected in say(effect.template, **effect.context)


# --- answers to an offer ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,name,code", [
    ("Y", "accept", None), ("yes", "accept", None), ("YES.", "accept", None), ("yep", "accept", None),
    ("ACCEPT 1234", "accept", "1234"), ("y r1234", "accept", "1234"), ("Y R1234", "accept", "1234"),
    ("y 4821", "accept", "4821"), ("N", "decline", None), ("no", "decline", None),
    ("pass", "decline", None), ("PASS r1234", "decline", "1234"), ("nope", "decline", None),
])
def test_offer_answers(text, name, code):
    assert run(OFFERED, text) == [command(name, code=code)]


@pytest.mark.parametrize("status", [AVAILABLE, OFFLINE])
def test_late_answers_still_reach_the_dispatcher(status):
    """A Y after the offer ran out gets the dispatcher's honest answer, not 'not understood'."""
    assert run(status, "Y 1234") == [Accept("1234")]


@pytest.mark.parametrize("text", ["yes please take it", "y1234x", "accept r12"])
def test_answer_like_text_that_is_not_an_answer(text):
    [effect] = run(OFFERED, text)
    assert not isinstance(effect, (Accept, Decline)), effect


# --- locations --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "40.7359,-73.9911", "40.7359, -73.9911",
    "https://maps.google.com/?q=40.7359,-73.9911",
    "https://www.google.com/maps/@40.7359,-73.9911,17z",
    "http://maps.apple.com/?ll=40.7359,-73.9911",
])
@pytest.mark.parametrize("status", STATES)
def test_coordinates_and_map_links_locate(status, text):
    [effect] = run(status, text)
    assert isinstance(effect, Locate), effect
    assert (effect.place["lat"], effect.place["lng"]) == pytest.approx(UNION_SQ, abs=1e-6)


@pytest.mark.parametrize("status", STATES)
def test_at_a_named_place_locates(status):
    [effect] = run(status, "AT Union Square")
    assert effect == Locate({"lat": UNION_SQ[0], "lng": UNION_SQ[1], "label": "Union Square"})


def test_at_an_alias_locates_with_the_gazetteer_label():
    [effect] = run(AVAILABLE, "at times sq")
    assert isinstance(effect, Locate) and effect.place["label"] == "Times Square"


@pytest.mark.parametrize("status", STATES)
def test_at_an_unknown_place(status):
    assert run(status, "AT nowhere-ville") == [Reply("driver_location_unknown")]


# --- everything else ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["Running 5 min late, sorry", "Which side of the street?", "ok 2 min"])
def test_free_text_on_a_job_is_relayed(text):
    assert run(ON_JOB, text) == [Relay(text)]


def test_relay_is_cleaned_text():
    assert run(ON_JOB, "  be there\x07 soon  ") == [Relay("be there  soon")]


@pytest.mark.parametrize("status", [OFFLINE, AVAILABLE, OFFERED])
@pytest.mark.parametrize("text", ["what's up", "hello??", "🚲"])
def test_unknown_text_lists_the_commands(status, text):
    [effect] = run(status, text)
    assert effect == Reply("driver_unknown", {"commands": commands_for(status)})
    assert commands_for(status) in say(effect.template, **effect.context)


def test_empty_text_on_a_job_is_not_relayed():
    assert run(ON_JOB, "   ") == [Reply("driver_unknown", {"commands": commands_for(ON_JOB)})]


@pytest.mark.parametrize("text", ["ok", "no", "yes"])
def test_short_replies_to_the_rider_on_a_job_are_relayed(text):
    """On a job a driver holds no offer (PRODUCT.md §4: an answer binds to that driver's open
    offer only), so a bare 'ok' to the rider's 'I'm by the fountain' is for the rider."""
    [effect] = run(ON_JOB, text)
    assert effect == Relay(text), (
        f"{text!r} from a driver on a job became {effect!r}: the rider would never get it and the "
        "driver would be told 'You have no open offer right now'")


# --- commands_for ----------------------------------------------------------------------------------

@pytest.mark.parametrize("status,expected", [
    (OFFLINE, {"ON", "OFF", "AT <place> or a map pin", "STATUS"}),
    (AVAILABLE, {"ON", "OFF", "AT <place> or a map pin", "STATUS"}),
    (OFFERED, {"OFF", "Y (accept)", "N (pass)", "AT <place> or a map pin", "STATUS"}),
    (ON_JOB, {"ARRIVED", "LOADED", "DONE", "DROP", "AT <place> or a map pin", "STATUS"}),
])
def test_commands_for_each_state(status, expected):
    listed = commands_for(status).split(", ")
    assert set(listed) == expected and len(listed) == len(expected)


def test_commands_for_an_unknown_status_is_the_offline_list():
    assert commands_for("suspended") == commands_for(OFFLINE)
    assert run("suspended", "ON") == [GoOnline()]
