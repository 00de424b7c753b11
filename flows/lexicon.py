"""Phrases mapped to meanings, found in what people type despite their typos.

Each typed word is first spelled against the lexicon's own vocabulary with rapidfuzz, then
phrases are matched word by word. Spelling per word, not per phrase, keeps short words exact:
"no thanks" must not match "so thanks", and "tired" must not become "tire".
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Generic, NamedTuple, TypeVar

from rapidfuzz import process
from rapidfuzz.distance import OSA

from flows.text import Token, squeeze, tokens

M = TypeVar("M")
LANGUAGES = ("en", "es")
# Words shorter than this match exactly (after squeezing repeated letters): between short
# words one typo is another word ("n"/"k", "dead"/"deal", "tire"/"tired").
MIN_FUZZY_LENGTH = 5
# OSA similarity (a swap of two letters is one edit): one typo in six letters, two in twelve.
# A five-letter word thus only matches with a letter missing or doubled, never replaced: many
# five-letter words are one letter apart ("where"/"there", "chain"/"chair").
FUZZY_CUTOFF = 0.83


class Span(NamedTuple, Generic[M]):
    """A phrase found in a token list: tokens[start:end], with its meaning."""
    start: int
    end: int
    meaning: M


class Lexicon(Generic[M]):
    """Phrases per language, each with a meaning (None: a phrase that only keeps its words
    from meaning something else, e.g. "battery park" is a place, not a dead battery)."""

    def __init__(self, table: Mapping[M | None, Mapping[str, Iterable[str]]]) -> None:
        self._phrases: dict[tuple[str, ...], M | None] = {}
        self._by_language: dict[str, set[str]] = {language: set() for language in LANGUAGES}
        for meaning, languages in table.items():
            for language, phrases in languages.items():
                for phrase in phrases:
                    words = tuple(t.word for t in tokens(phrase))
                    self._phrases[words] = meaning
                    self._by_language[language].update(words)
        self._longest = max((len(p) for p in self._phrases), default=0)
        self._vocabulary = sorted({w for phrase in self._phrases for w in phrase})
        self._known = frozenset(self._vocabulary)
        self._squeezed = {squeeze(w): w for w in self._vocabulary}

    def words_of(self, language: str) -> frozenset[str]:
        """Every word that the phrases of one language use."""
        return frozenset(self._by_language[language])

    def spell(self, word: str) -> str:
        """The vocabulary word that `word` was meant to be, or `word` itself."""
        if word in self._known or word.isdigit():
            return word
        squeezed = squeeze(word)
        if squeezed != word and squeezed in self._squeezed:
            return self._squeezed[squeezed]
        if len(word) < MIN_FUZZY_LENGTH:
            return word
        best = process.extractOne(word, self._vocabulary, scorer=OSA.normalized_similarity,
                                  score_cutoff=FUZZY_CUTOFF)
        return best[0] if best else word

    def words(self, text: str) -> list[Token]:
        """The tokens of `text`, each spelled against this lexicon."""
        return [t._replace(word=self.spell(t.word)) for t in tokens(text)]

    def spans(self, words: Sequence[Token]) -> list[Span[M | None]]:
        """Phrases found left to right, the longest at each place first, never overlapping."""
        found, i = [], 0
        plain = [t.word for t in words]
        while i < len(plain):
            for n in range(min(self._longest, len(plain) - i), 0, -1):
                phrase = tuple(plain[i:i + n])
                if phrase in self._phrases:
                    found.append(Span(i, i + n, self._phrases[phrase]))
                    i += n
                    break
            else:
                i += 1
        return found

    def whole(self, words: Sequence[Token], filler: frozenset[str] = frozenset()) -> M | None:
        """The meaning of the whole message, when it is one phrase give or take filler words."""
        every = tuple(t.word for t in words)
        lead = next((i for i, w in enumerate(every) if w not in filler), len(every))
        tail = next((i for i, w in enumerate(reversed(every)) if w not in filler), len(every))
        # Filler can belong to the phrase ("talk to a person", "im ok now thanks"): the longest
        # phrase that only filler surrounds wins, then the message with all its filler left out.
        for size in range(len(every), 0, -1):
            for start in range(max(0, len(every) - size - tail), min(lead, len(every) - size) + 1):
                if every[start:start + size] in self._phrases:
                    return self._phrases[every[start:start + size]]
        return self._phrases.get(tuple(w for w in every if w not in filler))
