"""flows.words: what riders type, reduced to what they mean."""
from __future__ import annotations

import pytest

from flows.words import (
    CANCEL_RESCUE,
    OPT_OUT,
    PROBLEM_MENU,
    SKIP,
    STATUS,
    classify_problem,
    clean,
    is_no,
    is_yes,
    menu_choice,
    normalise,
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
    assert "cancel" in OPT_OUT and "cancel" not in CANCEL_RESCUE
    assert {"cancel rescue", "nevermind", "never mind"} <= CANCEL_RESCUE
    assert normalise(" Cancel Rescue! ") in CANCEL_RESCUE
    assert normalise("STATUS?") in STATUS
    assert normalise("Skip.") in SKIP


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
