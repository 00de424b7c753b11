"""The corpus of real texts, section by section: every text must be understood as listed.

Each test reports "understood/total" for its section and lists the misses, so a change to the
word lists shows at once what it gained and what it broke.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from flows import language, words
from tests.flows import corpus


def _check(section: str, cases: Sequence[tuple[Any, ...]], understand: Callable[..., Any]) -> None:
    misses = []
    for *given, expected in cases:
        got = understand(*given)
        if got != expected:
            shown = given[0] if len(given) == 1 else tuple(given)
            misses.append(f"{shown!r}: expected {expected!r}, got {got!r}")
    understood = len(cases) - len(misses)
    assert not misses, f"{section}: {understood}/{len(cases)} understood; misses:\n" + "\n".join(misses)


def _intent(text: str) -> str | None:
    found = words.intent(text)
    return found.value if found else None


def _driver(text: str) -> tuple[str, str | None] | None:
    command = words.driver_command(text)
    return tuple(command) if command else None


SECTIONS: dict[str, tuple[Sequence[tuple[Any, ...]], Callable[..., Any]]] = {
    "yes/no": (corpus.ANSWERS, words.answer),
    "intents": (corpus.INTENTS, _intent),
    "corrections": (corpus.CORRECTIONS, words.correction),
    "problems": (corpus.PROBLEMS, words.classify_problem),
    "trips": (corpus.TRIPS, lambda text: tuple(words.split_trip(text))),
    "language": (corpus.LANGUAGE, language.detect),
    "driver commands": (corpus.DRIVER, _driver),
    "unreadable": (corpus.UNREADABLE, words.not_understandable),
    "auto-replies": (corpus.AUTOMATED, words.looks_automated),
}


@pytest.mark.parametrize("section", list(SECTIONS))
def test_corpus_section(section):
    cases, understand = SECTIONS[section]
    _check(section, cases, understand)


def test_corpus_is_big_enough_and_has_no_duplicates():
    texts = [(name, case[:-1]) for name, (cases, _) in SECTIONS.items() for case in cases]
    assert len(texts) >= 250, f"the corpus has {len(texts)} texts; it should keep at least 250"
    duplicates = {t for t in texts if texts.count(t) > 1}
    assert not duplicates, f"listed twice: {sorted(duplicates)}"


def test_a_wrong_expectation_is_reported_with_the_section_score():
    with pytest.raises(AssertionError) as failure:
        _check("yes/no", [("yes", "yes"), ("nah", "yes")], words.answer)
    assert "yes/no: 1/2 understood" in str(failure.value)
    assert "'nah': expected 'yes', got 'no'" in str(failure.value)
