"""What people type, reduced to what they mean: the one module the flows read words through.

The exact keyword sets below are the carrier's (handled before any flow) and the problem
menu; the understanding of free text lives beside this module (answers, intents, problems, trips,
commands) and is gathered here so that callers need `from flows import words` only.
"""
from __future__ import annotations

import re

from flows.answers import Answer, Reaction, answer, reaction
from flows.commands import DriverWord, driver_command
from flows.intents import Intent, about_the_rider, correction, intent, keeps, looks_automated, not_understandable
from flows.problems import classify_problem
from flows.text import clean, normalise
from flows.trips import Trip, marked_places, split_trip

__all__ = [
    "HELP",
    "OPT_IN",
    "OPT_OUT",
    "PROBLEM_MENU",
    "Answer",
    "DriverWord",
    "Intent",
    "Reaction",
    "Trip",
    "about_the_rider",
    "answer",
    "classify_problem",
    "clean",
    "correction",
    "driver_command",
    "intent",
    "is_no",
    "keeps",
    "is_yes",
    "looks_automated",
    "marked_places",
    "menu_choice",
    "normalise",
    "not_understandable",
    "rating",
    "reaction",
    "split_trip",
]

OPT_OUT = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit"})
OPT_IN = frozenset({"start", "unstop"})
HELP = frozenset({"help", "info"})

PROBLEM_MENU = {"1": "flat_tire", "2": "dead_battery", "3": "mechanical", "4": "crash", "5": "other"}


def is_yes(text: str) -> bool:
    """Yes in any of the ways people say it: "yeah send someone", 👍, `Liked “…”`, "dale"."""
    return answer(text) == "yes"


def is_no(text: str) -> bool:
    """No in any of the ways people say it: "nah", 👎, `Disliked “…”`, "no gracias"."""
    return answer(text) == "no"


def menu_choice(text: str, size: int) -> int | None:
    """The 1-based number picked from a numbered list, tolerating "#2" or "2." or "option 2"."""
    match = re.fullmatch(r"(?:option|number|#)?\s*(\d{1,2})\s*[.)]?", normalise(text))
    if match and 1 <= int(match.group(1)) <= size:
        return int(match.group(1))
    return None


_RATING = re.compile(r"^(\d{1,3})(?:\s*(?:/\s*5|stars?|out of 5))?(?![\d.])[\s,.:;!-]*(.*)$",
                     re.DOTALL | re.IGNORECASE)


def rating(text: str) -> tuple[int, str] | None:
    """A reply to "rate 1 to 5": the number (not yet range-checked) and any comment after it."""
    match = _RATING.match(clean(text))
    return (int(match.group(1)), match.group(2).strip()) if match else None
