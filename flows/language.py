"""The rider's language, English or Spanish, from their own words.

lingua decides on real sentences, but a rescue text is short and full of English place names:
"se me poncho la llanta en union square" comes out English 0.52. So the places that words like
"en" or "at" point at are taken out first, and the service's own Spanish keywords ("llanta",
"estoy en", "dale") push towards Spanish. English keywords push nowhere: Spanish riders text
STATUS, HELP and Y as well (the carrier's words are English). One word alone rarely tells:
it keeps the language the conversation already has.
"""
from __future__ import annotations

import threading

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

from flows.answers import ANSWER_WORDS, reaction
from flows.commands import COMMAND_WORDS
from flows.intents import ANYWHERE, WHOLE_MESSAGE, Intent, intent
from flows.problems import PROBLEM_WORDS
from flows.text import clean, fold, scan
from flows.trips import MARKER_WORDS, marked_places

ENGLISH, SPANISH = "en", "es"
DEFAULT = ENGLISH
_LEXICONS = (ANSWER_WORDS, COMMAND_WORDS, ANYWHERE, WHOLE_MESSAGE, PROBLEM_WORDS)
# Spanish words English speakers type too, or English words that are Spanish keywords as well.
AMBIGUOUS = frozenset({
    "a", "me", "no", "si", "y", "ya", "va", "la", "mi", "ok", "okay", "oki", "okey", "nada", "con", "pedal",
    "motor", "de", "es", "un", "una"
})


def _words_of(language: str) -> frozenset[str]:
    return frozenset().union(MARKER_WORDS[language], *(lexicon.words_of(language) for lexicon in _LEXICONS))


SPANISH_KEYWORDS = _words_of(SPANISH) - _words_of(ENGLISH) - AMBIGUOUS
# The service's English words: a text of nothing else is English, whatever lingua makes of two
# of them ("cancel rescue" comes out Spanish 0.67).
ENGLISH_KEYWORDS = _words_of(ENGLISH) - _words_of(SPANISH) - AMBIGUOUS
# A text without a single word the service knows in either language is a name ("union square").
KNOWN_WORDS = _words_of(SPANISH) | _words_of(ENGLISH)
# A lone "si" opens a conversation in Spanish, though it does not turn an English one.
SPANISH_TO_START = frozenset({"si"})
# Accents and marks only Spanish uses: a text that has them is written by a Spanish speaker.
SPANISH_MARKS = frozenset("áéíóúñ¿¡")
KEYWORD_WEIGHT = 0.2  # how far one Spanish keyword moves lingua's Spanish confidence
SURE_FOR_ONE_WORD = 0.9  # lingua's confidence a single Spanish keyword needs to change a set language
SPANISH_FROM, ENGLISH_UP_TO = 0.6, 0.4  # between these a text is a close call: the language stays

_detector: LanguageDetector | None = None
_lock = threading.Lock()


def detector() -> LanguageDetector:
    """The process's one detector, English and Spanish only, built on first use: its models load
    lazily (about half a second), and a process that never detects never pays for them."""
    global _detector
    if _detector is None:
        with _lock:
            if _detector is None:
                _detector = LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.SPANISH).build()
    return _detector


def _spanish_confidence(text: str) -> float:
    return detector().compute_language_confidence(text, Language.SPANISH)


def detect(text: str, current: str | None = None) -> str:
    """The language to go on in, "en" or "es": `current` (or "en") when the text does not tell."""
    kept = current or DEFAULT
    asked = intent(text)
    if asked is Intent.SWITCH_EN:
        return ENGLISH
    if asked is Intent.SWITCH_ES:
        return SPANISH
    if reaction(text) is not None:  # a tapped reaction: no words of the rider's own
        return kept
    body = fold(text)
    original = list(clean(text))
    for start, end in marked_places(text):
        body = body[:start] + " " * (end - start) + body[end:]
        original[start:end] = " " * (end - start)
    words = [t.word for t in scan(body) if t.word.isalpha()]
    if not KNOWN_WORDS.intersection(words):
        return kept
    marks = bool(SPANISH_MARKS & set("".join(original).lower()))
    hits = sum(w in SPANISH_KEYWORDS for w in words)
    if len(words) == 1:
        if current is None:
            return SPANISH if hits or marks or words[0] in SPANISH_TO_START else ENGLISH
        if hits and _spanish_confidence(words[0]) >= SURE_FOR_ONE_WORD:
            return SPANISH
        return current
    if hits >= 2:
        return SPANISH
    if not (hits or marks) and all(w in ENGLISH_KEYWORDS or w in AMBIGUOUS for w in words):
        return ENGLISH
    confidence = _spanish_confidence(" ".join(words)) + KEYWORD_WEIGHT * (hits + marks)
    if confidence >= SPANISH_FROM:
        return SPANISH
    if confidence <= ENGLISH_UP_TO:
        return ENGLISH
    return kept
