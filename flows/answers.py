"""Yes or no, the way people really answer: words, emoji and the reactions phones send.

A reply is an answer only when every word in it is part of the answer: "yeah send someone" is
yes, "okay but how much" is a question, "no, I'm at 5th and 23rd" a correction. Yes and no in
one reply ("y n") is no answer at all.
"""
from __future__ import annotations

import re
from typing import Literal, NamedTuple

from flows.lexicon import Lexicon
from flows.text import clean, fold, plain_emoji

Answer = Literal["yes", "no"]
YES: Answer = "yes"
NO: Answer = "no"
WEAK_YES = "weak yes"  # "please", "hurry": a yes on their own, nothing beside a no
FILLER = "filler"      # words that change nothing: "thanks", "lol"
UNSURE = "unsure"      # "maybe", "not sure": never an answer

ANSWER_WORDS = Lexicon({
    YES: {
        "en": ("y", "ye", "yes", "yea", "yeah", "yah", "ya", "yep", "yup", "yas", "yessir", "ok", "okay",
               "okey", "okie", "k", "kk", "sure", "sure thing", "for sure", "confirm", "confirmed",
               "do it", "book it", "go ahead", "go for it", "lets do it", "lets go", "sounds good",
               "alright", "all right", "aight", "bet", "absolutely", "of course", "ofc", "definitely",
               "please do", "correct", "right", "thats right", "affirmative", "accept", "agreed", "deal",
               "fine", "perfect", "great", "cool", "yes please", "sounds great", "sounds perfect", "okey dokey",
               "okie dokie"),
        "es": ("s", "si", "dale", "claro", "claro que si", "va", "sale", "vale", "orale", "andale", "simon",
               "de acuerdo", "esta bien", "perfecto", "correcto", "bueno", "acepto", "confirmo", "okey",
               "oki", "listo"),
    },
    NO: {
        "en": ("n", "no", "nope", "nah", "naw", "nay", "no thanks", "no thank you", "not now", "not yet",
               "not really", "dont", "do not", "dont send", "dont send anyone", "never", "no way",
               "hell no", "decline", "negative", "no need", "im good", "im ok", "im okay", "im fine"),
        "es": ("ya no", "ahorita no", "ahora no", "mejor no", "todavia no", "aun no", "nel", "para nada",
               "no quiero", "no por ahora", "no gracias", "estoy bien"),
    },
    WEAK_YES: {
        "en": ("please", "pls", "plz", "hurry", "asap", "send someone", "send somebody", "send help",
               "send a driver", "send the driver", "send it", "quick", "quickly", "now"),
        "es": ("por favor", "porfa", "porfavor", "rapido", "manden a alguien", "mandenme a alguien",
               "envien a alguien"),
    },
    FILLER: {
        "en": ("thanks", "thank you", "thx", "ty", "lol", "haha", "man", "bro", "dude", "oh", "um", "uh",
               "hey", "hi", "hello", "good morning", "good afternoon", "good evening", "then", "just", "and",
               "sir", "maam"),
        "es": ("gracias", "muchas gracias", "oye", "hola", "buenas", "buenos dias", "buenas tardes",
               "buenas noches", "que tal", "pues", "senor", "senora", "amigo", "amiga"),
    },
    UNSURE: {
        "en": ("maybe", "not sure", "idk", "dunno", "i dont know", "perhaps", "hmm", "depends"),
        "es": ("no se", "quizas", "tal vez", "a lo mejor"),
    },
})

YES_EMOJI = frozenset("👍👌✅🙏✔☑🆗🙌💯🤙👏")
NO_EMOJI = frozenset("👎❌🚫✖⛔🙅❎🛑")


class Reaction(NamedTuple):
    """A reaction a phone sent as text: what kind, and the text reacted to."""
    kind: str
    quoted: str


_QUOTED = r"""[“"‘'«](?P<quoted>.*?)[”"’'»]?\s*\.?"""
_ATTACHMENT = r"(?:an?\s+)(?:image|photo|picture|video|message|attachment|sticker|gif|audio message)"
_IOS_KINDS = {
    "liked": "liked", "loved": "loved", "disliked": "disliked", "emphasized": "emphasized",
    "emphasised": "emphasized", "laughed at": "laughed", "questioned": "questioned",
    "le gusto": "liked", "le gusta": "liked", "le encanto": "loved", "le encanta": "loved",
    "no le gusto": "disliked", "no le gusta": "disliked", "enfatizo": "emphasized", "destaco": "emphasized",
    "se rio de": "laughed", "se rie de": "laughed", "cuestiono": "questioned",
}
_IOS = re.compile(rf"(?P<kind>{'|'.join(sorted(_IOS_KINDS, key=len, reverse=True))})\s+"
                  rf"(?:{_QUOTED}|(?P<attachment>{_ATTACHMENT}))", re.IGNORECASE | re.DOTALL)
_REMOVED = re.compile(rf"(?:removed\s+an?\s+\w+(?:\s+\w+)?\s+from|quito\s+(?:un|una|el|la)\s+[\w ]+?\s+de)\s+"
                      rf"(?:{_QUOTED}|{_ATTACHMENT})", re.IGNORECASE | re.DOTALL)
_EMOJI_TO = re.compile(rf"(?:reacted\s+|reacciono\s+(?:con\s+)?)?(?P<emoji>\S{{1,8}}?)\s+(?:to|a)\s+"
                       rf"{_QUOTED}",
                       re.IGNORECASE | re.DOTALL)
_REACTION_ANSWERS: dict[str, Answer] = {"liked": YES, "loved": YES, "disliked": NO}


def reaction(text: str) -> Reaction | None:
    """An iPhone tapback (`Liked “…”`, Spanish `Le gustó “…”`) or an Android/iOS emoji reaction
    (`👍 to “…”`, `Reacted 👍 to “…”`) sent as a text; kind "removed" when one was taken back."""
    body, original = fold(text), clean(text)

    def quoted(match: re.Match[str]) -> str:
        return original[match.start("quoted"):match.end("quoted")].strip() if match["quoted"] else ""

    if _REMOVED.fullmatch(body):
        return Reaction("removed", "")
    match = _IOS.fullmatch(body)
    if match:
        return Reaction(_IOS_KINDS[" ".join(match["kind"].split())], quoted(match))
    match = _EMOJI_TO.fullmatch(body)
    if match and not any(c.isalnum() for c in match["emoji"]):
        return Reaction(plain_emoji(match["emoji"]), quoted(match))
    return None


def _emoji_answers(text: str) -> set[Answer]:
    chars = set(plain_emoji(text))
    return ({YES} if chars & YES_EMOJI else set()) | ({NO} if chars & NO_EMOJI else set())


def answer(text: str) -> Answer | None:
    """The rider's answer, "yes" or "no", or None when the text is not (only) an answer."""
    if not clean(text):
        return None
    react = reaction(text)
    if react is not None:
        if not react.quoted:  # a reaction to a photo the rider sent answers nothing we asked
            return None
        if react.kind in _REACTION_ANSWERS:
            return _REACTION_ANSWERS[react.kind]
        emoji = _emoji_answers(react.kind)
        return emoji.pop() if len(emoji) == 1 else None
    words = ANSWER_WORDS.words(text)
    spans = ANSWER_WORDS.spans(words)
    if sum(s.end - s.start for s in spans) < len(words):
        return None  # a word that is no part of an answer: a question, a place, a story
    meanings = {s.meaning for s in spans}
    if UNSURE in meanings:
        return None
    strong = (meanings & {YES, NO}) | _emoji_answers(text)
    if len(strong) == 1:
        return strong.pop()
    return YES if not strong and WEAK_YES in meanings else None
