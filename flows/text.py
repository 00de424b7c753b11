"""Text as phones deliver it, made comparable.

Two views of one message: `normalise` for exact keyword sets (what the flows always used), and
`fold` + `tokens` for the understanding layer. `fold` keeps one character per character of
`clean(text)`, so a match found in the folded text can be cut out of the original, accents and
capitals intact, and handed on (a place name goes to the geocoder as the rider typed it).
"""
from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

MAX_CHARS = 1600  # one concatenated SMS at most: nothing longer is worth reading
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
_RUN = re.compile(r"(.)\1+")
# Emoji parts that change how an emoji looks, not what it means: skin tones, the emoji
# presentation selector, the joiner and the gender signs of sequences like 🙅‍♂️.
_EMOJI_MODIFIERS = re.compile("[\U0001F3FB-\U0001F3FF\uFE0E\uFE0F\u200D\u2640\u2642]")


class Token(NamedTuple):
    """One word of a message: where it is in `clean(text)`, and its folded, apostrophe-free form."""
    start: int
    end: int
    word: str


def clean(text: str | None) -> str:
    """Text as stored and parsed: NFC, no control characters, bounded length."""
    text = unicodedata.normalize("NFC", text or "")
    return _CONTROL.sub(" ", text).strip()[:MAX_CHARS]


def normalise(text: str | None) -> str:
    """For keyword matching: lower case, straight apostrophes (phones type curly ones),
    commas and the like as spaces, single spaces, no surrounding punctuation."""
    text = clean(text).lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[,!?;:]+", " ", text)
    return " ".join(text.split()).strip(" .'\"")


def _fold_char(char: str) -> str:
    base = unicodedata.normalize("NFD", char)[:1].lower()[:1] or char
    return base.translate(_QUOTES)


def fold(text: str | None) -> str:
    """`clean(text)` lower-cased, accents and curly quotes gone, one character for one character.

    Riders type Spanish with or without accents ("sí"/"si", "ponchó"/"poncho"), so matching
    ignores them; keeping the length lets offsets found here cut the original text.
    """
    return "".join(_fold_char(c) for c in clean(text))


def tokens(text: str | None) -> list[Token]:
    """The words of a message (letters and digits), apostrophes dropped ("don't" is "dont")."""
    return scan(fold(text))


def scan(folded: str) -> list[Token]:
    """The words of an already folded text, with offsets into exactly that text."""
    return [Token(m.start(), m.end(), m.group().replace("'", "")) for m in _WORD.finditer(folded)]


def squeeze(word: str) -> str:
    """A word with every run of one letter cut to one: "yesss", "nooo" and "okk" are what they say."""
    return _RUN.sub(r"\1", word)


def plain_emoji(text: str) -> str:
    """Emoji without skin tones, presentation selectors or joiners: 👍🏽 is 👍."""
    return _EMOJI_MODIFIERS.sub("", text)
