"""flows.language: the rider's language from their words (lingua, helped by the service's keywords)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lingua import Language

from flows import language
from flows.language import detect

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text", [
    "se me ponchó la llanta en union square",  # lingua alone: ENGLISH 0.52 without the accent
    "se me poncho la llanta en union square",
    "estoy en times square",
    "mi bici no prende",
    "necesito ayuda por favor",
    "tengo una llanta ponchada en la 5ta avenida",
    "donde esta el conductor",
])
def test_spanish_texts(text):
    assert detect(text) == "es"
    assert detect(text, "en") == "es"


@pytest.mark.parametrize("text", [
    "battery dead at bryant park going to penn station",
    "flat tire at union square",
    "where is my driver",
    "my bike won't turn on",
])
def test_english_texts(text):
    assert detect(text) == "en"
    assert detect(text, "es") == "en"


@pytest.mark.parametrize("text", ["ok", "5", "si", "sí", "hola", "👍", "Y", "union square", "🚲💥😭", "no",
                                  "STATUS", "help", "thanks"])
def test_short_or_ambiguous_texts_keep_the_language(text):
    assert detect(text, "es") == "es"
    assert detect(text, "en") == "en"


@pytest.mark.parametrize("text, expected", [("si", "es"), ("sí", "es"), ("hola", "es"), ("ok", "en"),
                                            ("5", "en"), ("👍", "en"), ("help", "en")])
def test_without_a_language_yet_a_short_text_still_decides(text, expected):
    assert detect(text) == expected


def test_a_distinctly_spanish_word_alone_switches():
    assert detect("ayuda", "en") == "es"
    assert detect("gracias", "en") == "es"


def test_switch_words_always_win():
    assert detect("english", "es") == "en"
    assert detect("ESPAÑOL", "en") == "es"
    assert detect("espanol", "en") == "es"
    assert detect("in english please", "es") == "en"


def test_place_names_do_not_make_a_spanish_text_english():
    assert detect("estoy en Union Square y voy a Penn Station", "es") == "es"
    assert detect("estoy en Union Square y voy a Penn Station") == "es"


def test_the_detector_is_built_once_for_english_and_spanish_only():
    first = language.detector()
    assert language.detector() is first
    values = first.compute_language_confidence_values("bonjour tout le monde, wie geht es dir")
    assert {v.language for v in values} == {Language.ENGLISH, Language.SPANISH}


def test_the_detector_is_built_lazily_not_at_import():
    # A fresh interpreter: importing the flows must not load lingua's models.
    code = ("import flows.language as l, flows.words; assert l._detector is None; "
            "l.detect('my sister says the driver is late', 'es'); assert l._detector is not None")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
