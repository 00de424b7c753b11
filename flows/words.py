"""What people type, reduced to what they mean: trimmed, case-folded, common variants."""
from __future__ import annotations

import re
import unicodedata

YES = frozenset({"y", "yes", "yeah", "yea", "ya", "yep", "yup", "ok", "okay", "k", "sure", "confirm",
                 "yes please", "do it", "book it", "si", "sí"})
NO = frozenset({"n", "no", "nope", "nah", "no thanks", "not now", "dont", "don't"})
OPT_OUT = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit"})
OPT_IN = frozenset({"start", "unstop"})
HELP = frozenset({"help", "info"})
CANCEL_RESCUE = frozenset({"cancel rescue", "nevermind", "never mind", "nvm", "cancel my rescue"})
STATUS = frozenset({"status", "where", "eta", "update"})
SKIP = frozenset({"skip", "none", "no dropoff", "not sure", "dunno", "later"})

PROBLEM_MENU = {"1": "flat_tire", "2": "dead_battery", "3": "mechanical", "4": "crash", "5": "other"}
# Crash first: safety outranks everything else a message also mentions.
PROBLEM_KEYWORDS = (
    ("crash", ("crash", "crashed", "accident", "collision", "hit by", "got hit", "fell", "injured",
               "hurt", "bleeding", "car hit")),
    ("flat_tire", ("flat", "puncture", "punctured", "tire", "tyre", "popped", "blowout")),
    ("dead_battery", ("battery", "dead", "died", "no power", "won't turn on", "wont turn on",
                      "not charging", "out of charge", "charge")),
    ("mechanical", ("chain", "brake", "brakes", "motor", "pedal", "gear", "gears", "wheel", "spoke",
                    "broke", "broken", "mechanical", "throttle", "controller", "handlebar")),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str | None) -> str:
    """Text as stored and parsed: NFC, no control characters, bounded length."""
    text = unicodedata.normalize("NFC", text or "")
    return _CONTROL.sub(" ", text).strip()[:1600]


def normalise(text: str | None) -> str:
    """For keyword matching: lower case, straight apostrophes (phones type curly ones),
    commas and the like as spaces, single spaces, no surrounding punctuation."""
    text = clean(text).lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[,!?;:]+", " ", text)
    return " ".join(text.split()).strip(" .'\"")


def is_yes(text: str) -> bool:
    return normalise(text) in YES


def is_no(text: str) -> bool:
    return normalise(text) in NO


def classify_problem(text: str) -> str | None:
    """A problem code from keywords anywhere in the text, or None when nothing is said."""
    padded = f" {normalise(text)} "
    for code, keywords in PROBLEM_KEYWORDS:
        if any(re.search(rf"(?<![a-z]){re.escape(k)}(?![a-z])", padded) for k in keywords):
            return code
    return None


def menu_choice(text: str, size: int) -> int | None:
    """The 1-based number picked from a numbered list, tolerating "#2" or "2." or "option 2"."""
    match = re.fullmatch(r"(?:option|number|#)?\s*(\d{1,2})\s*[.)]?", normalise(text))
    if match and 1 <= int(match.group(1)) <= size:
        return int(match.group(1))
    return None


_RATING = re.compile(r"^(\d{1,3})(?:\s*(?:/\s*5|stars?|out of 5))?(?![\d.])[\s,.:;!-]*(.*)$", re.S | re.I)


def rating(text: str) -> tuple[int, str] | None:
    """A reply to "rate 1 to 5": the number (not yet range-checked) and any comment after it."""
    match = _RATING.match(clean(text))
    return (int(match.group(1)), match.group(2).strip()) if match else None
