"""flows.words: what riders and drivers type, reduced to what they mean."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.answers import ANSWER_WORDS
from flows.intents import ANYWHERE, WHOLE_MESSAGE
from flows.lexicon import Lexicon
from flows.problems import PROBLEM_WORDS
from flows.words import (
    OPT_OUT,
    PROBLEM_MENU,
    Intent,
    answer,
    classify_problem,
    clean,
    correction,
    driver_command,
    intent,
    is_no,
    is_yes,
    looks_automated,
    menu_choice,
    normalise,
    not_understandable,
    reaction,
    split_trip,
)

# -- clean / normalise ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("  Yes!! ", "yes"),
    ("Y.", "y"),
    ('"ok"', "ok"),
    ("CANCEL   RESCUE", "cancel rescue"),
    ("\tStatus?\n", "status"),
    ("  Never  mind. ", "never mind"),
    ("1)", "1)"),
    ("", ""),
    (None, ""),
    ("!!!", ""),
    ("\x00y\x07", "y"),
])
def test_normalise(text, expected):
    assert normalise(text) == expected


def test_clean_removes_control_characters_and_bounds_length():
    assert clean("a\x00b\x07c\x7f") == "a b c"
    assert clean("  keep\nnewlines\tand tabs ") == "keep\nnewlines\tand tabs"
    assert len(clean("x" * 5000)) == 1600
    assert clean(None) == ""


def test_clean_composes_unicode():
    decomposed = "si\u0301"   # "s", "i", combining acute
    assert clean(decomposed) == "s\u00ed"
    assert is_yes(decomposed)


# -- yes / no ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["y", "Y", "yes", "YES", "Yes!", " yes. ", "yeah", "Yep", "yup",
                                  "ok", "OK.", "okay", "k", "sure", "confirm", "Yes please",
                                  "book it", "do it", "si", "Sí"])
def test_is_yes(text):
    assert is_yes(text)
    assert not is_no(text)


@pytest.mark.parametrize("text", ["n", "N", "no", "NO!", "No.", "nope", "nah", "no thanks",
                                  "No thanks!", "not now", "dont", "don't"])
def test_is_no(text):
    assert is_no(text)
    assert not is_yes(text)


@pytest.mark.parametrize("text", ["", "maybe", "yesterday", "yes no", "nothing", "know", "y n",
                                  "okay but how much", "not sure"])
def test_neither_yes_nor_no(text):
    assert not is_yes(text)
    assert not is_no(text)


def test_smart_apostrophes_from_phones():
    # iPhones type ’ (U+2019) for ' by default ("Smart Punctuation").
    assert is_no("don\u2019t"), (
        "APP BUG flows/words.py:9 (NO) / :37 (normalise): \"don\u2019t\" typed with the curly "
        "apostrophe phones insert by default is not recognised as no (only \"don't\"/\"dont\")")
    assert classify_problem("my bike won\u2019t turn on") == "dead_battery", (
        "APP BUG flows/words.py:23 (PROBLEM_KEYWORDS): \"won\u2019t turn on\" with a curly "
        "apostrophe is not classified as dead_battery")


# -- keyword sets ------------------------------------------------------------------------------

def test_cancel_is_an_opt_out_word_so_riders_cancel_with_cancel_rescue():
    assert "cancel" in OPT_OUT and intent("cancel") is None
    assert intent(" Cancel Rescue! ") is Intent.CANCEL and intent("CANCELAR RESCATE") is Intent.CANCEL
    assert intent("nevermind") is Intent.CASUAL_CANCEL and intent("never mind") is Intent.CASUAL_CANCEL
    assert intent("STATUS?") is Intent.STATUS
    assert intent("Skip.") is Intent.SKIP


# -- classify_problem ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("flat tire", "flat_tire"),
    ("FLAT!!!", "flat_tire"),
    ("my tyre popped", "flat_tire"),
    ("got a puncture on 5th", "flat_tire"),
    ("battery dead", "dead_battery"),
    ("it died and won't turn on", "dead_battery"),
    ("out of charge", "dead_battery"),
    ("chain broke", "mechanical"),
    ("the brakes are broken", "mechanical"),
    ("throttle not responding", "mechanical"),
    ("I crashed", "crash"),
    ("got hit by a cab", "crash"),
    ("the bike fell over", "crash"),
])
def test_classify_problem(text, expected):
    assert classify_problem(text) == expected


@pytest.mark.parametrize("text", [
    "I crashed and my tire is flat",
    "flat tire, battery dead, and I'm bleeding",
    "battery is dead and I fell",
    "chain broke after a car hit me",
    "Accident at union square, wheel bent",
])
def test_crash_outranks_every_other_problem(text):
    assert classify_problem(text) == "crash"


def test_flat_outranks_battery_and_mechanical():
    assert classify_problem("flat and battery dead") == "flat_tire"
    assert classify_problem("battery dead and chain broke") == "dead_battery"


@pytest.mark.parametrize("text", ["", "hello", "help me please", "I'm tired", "deadline",
                                  "at union square", "flatiron"])
def test_classify_problem_nothing_said(text):
    # Whole words only: "tired" is not "tire", "deadline" not "dead", "flatiron" not "flat".
    assert classify_problem(text) is None


# -- menu_choice ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("2", 2), ("#2", 2), ("# 2", 2), ("2.", 2), ("2)", 2), ("#2.", 2), (" 3 ", 3),
    ("option 2", 2), ("Option 2)", 2), ("OPTION 4", 4), ("number 3", 3), ("05", 5), ("1", 1),
    ("5", 5),
])
def test_menu_choice(text, expected):
    assert menu_choice(text, 5) == expected


@pytest.mark.parametrize("text", ["0", "6", "12", "99", "two", "2 please", "2 or 3", "(2)", "",
                                  "#", "option", "-1", "2.5"])
def test_menu_choice_out_of_range_or_not_a_number(text):
    assert menu_choice(text, 5) is None


def test_menu_choice_depends_on_the_list_size():
    assert menu_choice("3", 3) == 3
    assert menu_choice("3", 2) is None
    assert menu_choice("1", 0) is None


def test_problem_menu_covers_every_problem():
    assert PROBLEM_MENU == {"1": "flat_tire", "2": "dead_battery", "3": "mechanical", "4": "crash",
                            "5": "other"}


# -- typo tolerance ------------------------------------------------------------------------------

@pytest.mark.parametrize("typed, meant", [
    ("batery", "battery"), ("accidnet", "accident"), ("represntative", "representative"), ("staus", "status"),
    ("nevermnd", "nevermind"), ("ponchda", "ponchada"), ("yesss", "yes"), ("okk", "ok"), ("nooo", "no"),
])
def test_typos_are_spelled_to_the_vocabulary(typed, meant):
    lexicons = (ANSWER_WORDS, PROBLEM_WORDS, WHOLE_MESSAGE, ANYWHERE)
    assert meant in {lexicon.spell(typed) for lexicon in lexicons}


@pytest.mark.parametrize("typed", ["tired", "deal", "hut", "m", "nah", "chair", "there", "yesterday"])
def test_short_and_real_words_are_not_bent_into_keywords(typed):
    assert PROBLEM_WORDS.spell(typed) == typed
    assert WHOLE_MESSAGE.spell(typed) in (typed, "nah")


def test_one_and_two_letter_texts_match_exactly():
    assert answer("n") == "no" and answer("k") == "yes" and answer("y") == "yes"
    assert answer("m") is None and answer("b") is None and answer("nk") is None


def test_the_carrier_word_cancel_is_never_fixed_into_a_spanish_cancel():
    assert intent("cancel") is None
    assert intent("cancela") is Intent.CANCEL


def test_a_lexicon_keeps_phrases_apart_by_language_and_meaning():
    lexicon = Lexicon({"go": {"en": ("go ahead",), "es": ("dale",)}, None: {"en": ("go away",)}})
    assert lexicon.words_of("es") == {"dale"} and lexicon.words_of("en") == {"go", "ahead", "away"}
    assert [span.meaning for span in lexicon.spans(lexicon.words("go away, or go ahead"))] == [None, "go"]
    assert lexicon.whole(lexicon.words("well dale then"), frozenset({"well", "then"})) == "go"


# -- answers: tri-state, emoji, reactions ----------------------------------------------------------

@pytest.mark.parametrize("text", ["yeah send someone", "ok send someone", "👍", "👍🏾", "go ahead", "please",
                                  "yes please hurry", "sure thing", "Liked \u201cRescue quote: $45\u2026\u201d",
                                  "dale", "claro", "órale", "ándale", "por favor", "✅", "🙏🏼"])
def test_natural_yes(text):
    assert answer(text) == "yes" and is_yes(text) and not is_no(text)


@pytest.mark.parametrize("text", ["nah", "no thanks", "not now", "👎🏻", "❌", "🚫", "no gracias", "ahorita no",
                                  "Disliked \u201cRescue quote\u2026\u201d", "Reacted 👎 to \u201cRescue quote\u201d"])
def test_natural_no(text):
    assert answer(text) == "no" and is_no(text) and not is_yes(text)


@pytest.mark.parametrize("text", ["yes no", "👍👎", "maybe", "okay but how much", "no, I'm at 5th and 23rd",
                                  "Questioned \u201cRescue quote\u201d", "Liked an image", "🚲"])
def test_answer_is_none_when_the_text_is_not_only_an_answer(text):
    assert answer(text) is None


@pytest.mark.parametrize("text, kind, quoted", [
    ("Liked \u201cRescue quote\u2026\u201d", "liked", "Rescue quote\u2026"),
    ("Loved \u201cOn my way\u201d", "loved", "On my way"),
    ("Emphasized \u201cR1042\u201d", "emphasized", "R1042"),
    ("Laughed at \u201cok\u201d", "laughed", "ok"),
    ('Questioned "Your quote"', "questioned", "Your quote"),
    ("\U0001F44D to \u201cRescue quote\u201d", "\U0001F44D", "Rescue quote"),
    ("Reacted \U0001F44D\U0001F3FD to \u201cRescue quote\u201d", "\U0001F44D", "Rescue quote"),
    ("Le gustó \u201cCotización\u201d", "liked", "Cotización"),
    ("Removed a like from \u201cRescue quote\u201d", "removed", ""),
])
def test_reaction_texts_from_phones(text, kind, quoted):
    assert reaction(text) == (kind, quoted)


@pytest.mark.parametrize("text", ["liked it", "go to \u201cpenn station\u201d", "I loved the driver", "yes"])
def test_ordinary_texts_are_not_reactions(text):
    assert reaction(text) is None


# -- intents -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("talk to a person", Intent.HUMAN), ("humano", Intent.HUMAN), ("cancel my rescue", Intent.CANCEL),
    ("cancelar rescate", Intent.CANCEL), ("nvm", Intent.CASUAL_CANCEL), ("olvídalo", Intent.CASUAL_CANCEL),
    ("where are you", Intent.STATUS), ("how much?", Intent.QUESTION_PRICE), ("$?", Intent.QUESTION_PRICE),
    ("eta", Intent.QUESTION_TIME), ("hello??", Intent.QUESTION_COMING), ("english", Intent.SWITCH_EN),
    ("ESPAÑOL", Intent.SWITCH_ES), ("no sé", Intent.SKIP), ("pagar", Intent.PAY), ("ayuda", Intent.HELP),
    ("wrong place", Intent.CORRECTION),
])
def test_intent(text, expected):
    assert intent(text) is expected


@pytest.mark.parametrize("text", ["help my tire is flat", "ya no prende", "dont cancel my rescue", "hello",
                                  "a person hit me", "cancel", ""])
def test_no_intent(text):
    assert intent(text) is None


def test_casual_cancel_is_told_apart_from_cancel():
    # The rider flow cancels at once on CANCEL, and asks first on a casual word when a driver is on the way.
    assert intent("nvm") is Intent.CASUAL_CANCEL and intent("cancel rescue") is Intent.CANCEL


@pytest.mark.parametrize("text, place", [
    ("no, I'm at 5th and 23rd", "5th and 23rd"), ("No im at Bryant Park", "Bryant Park"),
    ("wrong place", ""), ("no, estoy en Union Square", "Union Square"), ("lugar equivocado", ""),
    ("no", None), ("nah I'm good", None), ("no longer need it", None),
])
def test_correction(text, place):
    assert correction(text) == place


# -- problems in Spanish, with typos ---------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("llanta ponchada", "flat_tire"), ("se me ponchó la llanta en union square", "flat_tire"),
    ("pinchazo", "flat_tire"), ("batería muerta", "dead_battery"), ("no prende", "dead_battery"),
    ("se rompió la cadena", "mechanical"), ("frenos", "mechanical"), ("me atropellaron", "crash"),
    ("se me ponchó la llanta y me caí", "crash"), ("batery died", "dead_battery"), ("acident", "crash"),
    ("my chain fell off", "mechanical"), ("flat tire at battery park", "flat_tire"),
])
def test_classify_problem_spanish_and_typos(text, expected):
    assert classify_problem(text) == expected


@pytest.mark.parametrize("text", ["at battery park", "flatiron building", "dead end"])
def test_place_names_are_not_problems(text):
    assert classify_problem(text) is None


# -- trips ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, pickup, dropoff", [
    ("battery dead at bryant park going to penn station", "bryant park", "penn station"),
    ("flat tire on 5th and 23rd, need to get to union sq", "5th and 23rd", "union sq"),
    ("from times square to penn station", "times square", "penn station"),
    ("at Columbus Circle, heading to Houston Street", "Columbus Circle", "Houston Street"),
    ("Union Sq -> Penn Station", "Union Sq", "Penn Station"),
    ("estoy en Times Square y voy a Penn Station", "Times Square", "Penn Station"),
    ("en Bryant Park, llévame a Penn Station", "Bryant Park", "Penn Station"),
    ("flat tire", None, None),
])
def test_split_trip(text, pickup, dropoff):
    trip = split_trip(text)
    assert (trip.pickup, trip.dropoff) == (pickup, dropoff)


# -- unreadable texts and auto-replies -------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [("🚲💥😭", True), ("?!", True), ("q", True), ("👍", False),
                                            ("y", False), ("3", False), ("union sq", False)])
def test_not_understandable(text, expected):
    assert not_understandable(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("I'm driving right now \u2014 I'll get back to you", True), ("This is an automated message", True),
    ("Auto-Reply: out today", True), ("Respuesta automática", True), ("my bike is driving me nuts", False),
])
def test_looks_automated(text, expected):
    assert looks_automated(text) is expected


# -- driver commands -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, trigger, code", [
    ("Y 1042", "accept", "1042"), ("ok", "accept", None), ("N", "decline", None), ("arrived", "arrive", None),
    ("omw", "drive", None), ("done", "complete", None), ("drop", "drop", None), ("llegué", "arrive", None),
    ("listo", "complete", None), ("👍", "accept", None),
])
def test_driver_command(text, trigger, code):
    assert driver_command(text) == (trigger, code)


@pytest.mark.parametrize("text", ["at 1042 broadway", "Y 1042 1043", "see you soon", ""])
def test_not_a_driver_command(text):
    assert driver_command(text) is None


# -- any text at all -----------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.sampled_from(["Liked \u201c", "no, i'm at ", "from  to ", "-> ->", "🙅\u200d♂️"]))
def test_any_text_is_understood_or_not_without_crashing(text):
    assert answer(text) in ("yes", "no", None)
    assert intent(text) is None or isinstance(intent(text), Intent)
    assert correction(text) is None or isinstance(correction(text), str)
    assert classify_problem(text) in (None, "flat_tire", "dead_battery", "mechanical", "crash")
    trip = split_trip(text)
    assert all(place is None or (place and place in clean(text)) for place in trip)
    assert isinstance(not_understandable(text), bool) and isinstance(looks_automated(text), bool)
    assert driver_command(text) is None or driver_command(text).trigger
