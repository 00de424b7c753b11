"""Where from and where to, when one text says both.

"battery dead at bryant park going to penn station" holds a pickup, a problem and a drop-off.
The places come back as the rider typed them, for the geocoder to judge: nothing here knows
a place; it only knows the words around places ("at", "going to", "estoy en", "llévame a")
and the words that are not places (the problem, "please", "my bike").
"""
from __future__ import annotations

import re
from typing import NamedTuple

from flows.problems import PROBLEM_WORDS
from flows.text import clean, fold, scan


def _alternatives(table: dict[str, tuple[str, ...]]) -> str:
    """A regex alternation of the phrases of every language, longest first, any spacing."""
    parts = sorted((p for phrases in table.values() for p in phrases), key=len, reverse=True)
    return "|".join(r"\s+".join(re.escape(w) for w in p.split()) for p in parts)


_DROPOFF_WORDS = {"en": (
    "going to", "goin to", "heading to", "headed to", "head to", "need to get to", "need to go to",
    "need a ride to", "need a tow to", "want to go to", "wanna go to", "trying to get to", "get to", "go to",
    "take me to", "take it to", "take us to", "bring me to", "bring it to", "tow me to", "tow it to",
    "drop me at", "drop me off at", "drop me off", "drop off at", "drop it at", "drop it off at",
    "deliver to", "ride to", "going home to", "heading home to", "going back to", "heading back to",
    "dropping at", "dropping off at", "drop at", "drop it off at"), "es": (
    "voy a", "voy para", "voy hacia", "voy rumbo a", "llevame a", "lleveme a", "llevame hasta",
    "llevenme a", "llevarme a", "llevarla a", "llevarlo a", "quiero ir a", "necesito ir a",
    "tengo que ir a", "ir a", "hacia", "hasta", "rumbo a", "con destino a", "dejame en", "dejarme en",
    "para ir a",
)}
_DROPOFF = re.compile(
    # "going to be late" / "going to need help" go nowhere.
    rf"(?:\b(?:{_alternatives(_DROPOFF_WORDS)})\b(?!\s+(?:be|need|have|wait|call|try|pay)\b)"
    r"|\b(?:drop\s*-?\s*off|destination|dest|destino)\b\s*(?:is|at|es|en|:|-|=)?"
    r"|\s*(?:->|=>|→|➡️?|>)\s*)\s*")
# Words that mark a pickup. A strong one is taken wherever it is ("in a rush, flat at union
# square"); a weak one only when no strong one is there, and then the first ("on 5th by the park").
_STRONG_PICKUP_WORDS = {"en": (
    "i'm at", "im at", "i am at", "i'm on", "im on", "i am on", "i'm near", "im near", "stuck at",
    "stuck on", "stuck in", "stranded at", "stranded on", "stranded in", "located at", "pick me up at",
    "pick me up from", "pick me up on", "pickup at", "pick up at", "pickup from", "at the corner of",
    "on the corner of", "corner of", "in front of", "outside of", "across from", "next to", "at"), "es": (
    "estoy en", "estoy cerca de", "estoy frente a", "estoy afuera de", "en la esquina de", "esquina de",
    "recogeme en", "recogerme en", "recojanme en",
)}
_WEAK_PICKUP_WORDS = {"en": ("outside", "near", "by", "on", "in", "from"),
                      "es": ("frente a", "afuera de", "cerca de", "en", "desde")}
_STRONG_PICKUP = re.compile(rf"\b(?:{_alternatives(_STRONG_PICKUP_WORDS)})\b(?:\s*:)?\s*"
                            r"|\b(?:pick\s*-?\s*up|pickup)\b\s*(?:is|at|:|-|=)\s*")
_WEAK_PICKUP = re.compile(rf"\b(?:{_alternatives(_WEAK_PICKUP_WORDS)})\b\s*")
# The words of those markers, by language, for telling the language of a text.
MARKER_WORDS = {language: frozenset(w for table in (_DROPOFF_WORDS, _STRONG_PICKUP_WORDS, _WEAK_PICKUP_WORDS)
                                    for phrase in table[language] for w in phrase.replace("'", "").split())
                for language in ("en", "es")}
# "from X to Y", "desde X hasta Y", "de X a Y": the first place is the pickup.
_FROM_TO = re.compile(r"\b(?:from|desde)\s+(?P<pickup>.+?)\s+(?:to|hasta|a|hacia)\s+(?P<dropoff>.+)"
                      r"|^\W*de\s+(?P<pickup2>.+?)\s+a\s+(?P<dropoff2>.+)", re.DOTALL)
_FROM = re.compile(r"\s(?:from|desde)\s+")
# A bare "to" is a destination only after a place, not after "need", "want", "next"...
_BARE_TO = re.compile(r"(?<!\bneed)(?<!\bwant)(?<!\bhave)(?<!\bgoing)(?<!\btrying)(?<!\bnext)(?<!\bclose)"
                      r"(?<!\btalk)(?<!\bspeak)(?<!\blike)(?<!\bhow)(?<!\bback)(?<!\bgot)(?<!\bup)"
                      r"\s+to\s+")
# A sentence ends at . ! ? ; or a new line, except the dot of "St." or "Ave."
_SENTENCE_END = re.compile(r"(?<!\bst)(?<!\bave)(?<!\bav)(?<!\bblvd)(?<!\bpl)(?<!\brd)(?<!\bdr)(?<!\bsq)"
                           r"(?<!\bmt)(?<!\bft)(?<!\b[nsew])(?<!\d)[.!?;](?!\d)|\n")
# Words that are no part of a place at either end of one: filler, pronouns, "and", "bike".
_AROUND_PLACES = frozenset({
    "the", "a", "an", "my", "i", "im", "me", "is", "its", "it", "and", "but", "so", "also", "now", "here",
    "right", "there", "please", "pls", "plz", "asap", "hurry", "quick", "help", "need", "needs", "someone",
    "somebody", "rescue", "pickup", "bike", "ebike", "scooter", "thanks", "thank", "thx", "you", "hi",
    "hey", "hello", "just", "got", "have", "has", "with", "ok", "okay", "at", "on", "in", "near", "by",
    "from", "to", "of", "corner", "front", "outside", "y", "e", "mi", "la", "el", "los", "las", "un", "una",
    "se", "esta", "es", "estoy", "tengo", "necesito", "ayuda", "por", "favor", "porfa", "gracias", "hola",
    "bici", "bicicleta", "ya", "no", "muy", "que", "aqui", "urgente", "rapido", "en", "de", "cerca",
    "esquina", "frente", "afuera", "desde"
})


class Trip(NamedTuple):
    """The places of one text, as typed: the geocoder, not this module, says what they are."""
    pickup: str | None
    dropoff: str | None


class _Cut(NamedTuple):
    start: int
    end: int


def _trim(text: str, cut: _Cut) -> _Cut | None:
    """Shrink a slice to the place inside it: no filler, problem words or punctuation at its ends."""
    piece = text[cut.start:cut.end]
    words = scan(piece)
    problem = set()
    for span in PROBLEM_WORDS.spans(PROBLEM_WORDS.words(piece)):
        if span.meaning is not None:  # "battery park" is a place: its words stay
            problem.update(range(span.start, span.end))
    keep = [i for i, t in enumerate(words) if i not in problem and t.word not in _AROUND_PLACES]
    if not keep:
        return None
    first, last = words[keep[0]], words[keep[-1]]
    return _Cut(cut.start + first.start, cut.start + last.end)


def _sentence(text: str, start: int, end: int) -> int:
    """Where the sentence that begins at `start` ends (no further than `end`)."""
    match = _SENTENCE_END.search(text, start, end)
    return match.start() if match else end


def _split(body: str) -> tuple[_Cut | None, _Cut | None, bool]:
    """Where the pickup and the drop-off are in a folded text, and whether words marked either."""
    match = _FROM_TO.search(body)
    if match:
        pickup = _Cut(*match.span("pickup")) if match["pickup"] else _Cut(*match.span("pickup2"))
        dropoff = _Cut(*match.span("dropoff")) if match["dropoff"] else _Cut(*match.span("dropoff2"))
        return _trim(body, pickup), _trim(body, _Cut(dropoff.start, _sentence(body, *dropoff))), True
    marker = _DROPOFF.search(body) or _BARE_TO.search(body)
    head_end = marker.start() if marker else len(body)
    dropoff = None
    if marker:
        end = _sentence(body, marker.end(), len(body))
        behind = _FROM.search(body, marker.end(), end)  # "a ride to penn station from bryant park"
        if behind:
            return _trim(body, _Cut(behind.end(), end)), _trim(body, _Cut(marker.end(), behind.start())), True
        dropoff = _trim(body, _Cut(marker.end(), end))
    pickup_marker = _STRONG_PICKUP.search(body, 0, head_end) or _WEAK_PICKUP.search(body, 0, head_end)
    start = pickup_marker.end() if pickup_marker else 0
    return _trim(body, _Cut(start, head_end)), dropoff, bool(marker or pickup_marker)


def marked_places(text: str) -> list[tuple[int, int]]:
    """Where in `clean(text)` the places are that words like "at" or "going to" point at: the
    language of a text is not that of its place names ("estoy en times square")."""
    pickup, dropoff, marked = _split(fold(text))
    return [tuple(c) for c in (pickup, dropoff) if c] if marked else []


def split_trip(text: str) -> Trip:
    """The pickup and drop-off places one text names, as typed, or None for each one it lacks.
    A text with no words around places is taken as all pickup, less its problem and filler."""
    original = clean(text)
    pickup, dropoff, _ = _split(fold(text))
    return Trip(*(original[c.start:c.end] if c else None for c in (pickup, dropoff)))


def trim_place(text: str, start: int, end: int) -> str:
    """The place in `clean(text)[start:end]` without filler or problem words at its ends ('' if none)."""
    cut = _trim(fold(text), _Cut(start, end))
    return clean(text)[cut.start:cut.end] if cut else ""
