"""templates/<page>/<lang>.json: the words of the pages, the same keys and placeholders in both
languages, a word for every code a page shows, and none missing that a page script asks for."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dispatch.model import events, message, rescue
from dispatch.model.driver import STATUSES as DRIVER_STATUSES
from dispatch.texts import LANGUAGES, PAGES, STATUS, TEMPLATE_DIR, page_words

STATIC_JS = Path(__file__).resolve().parents[2] / "dispatch" / "http" / "static" / "js"


def flat(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.parametrize("page", PAGES)
def test_both_languages_have_the_same_keys_and_placeholders(page):
    en, es = (flat(json.loads((TEMPLATE_DIR / page / f"{lang}.json").read_text(encoding="utf-8")))
              for lang in ("en", "es"))
    assert en.keys() == es.keys()
    for key, text in en.items():
        assert es[key].strip(), key
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", es[key])), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_status_page_has_a_word_for_every_code_it_shows(lang):
    w = page_words(lang, STATUS)
    assert w["lang"] == lang
    assert w["status"].keys() == set(rescue.STATUSES)
    assert w["payment"].keys() == set(rescue.PAYMENT_STATUSES)
    assert w["problem"].keys() == rescue.PROBLEMS.keys()
    assert w["driver_status"].keys() == set(DRIVER_STATUSES)
    # The service's own event types (tests define others, which register themselves too).
    assert {t for t, cls in events.EVENT_TYPES.items() if cls.__module__ == events.__name__} <= w["events"].keys()
    assert set(message.STATUS_RANK) | {"received"} <= w["message_status"].keys()
    assert set(w["flags"]) == {"unfulfilled", "long search", "crash"}


def test_spanish_is_not_english_left_in_place():
    en, es = flat(page_words("en", STATUS)), flat(page_words("es", STATUS))
    same = {k for k in en if en[k] == es[k] and re.search(r"[a-z]{4,}", re.sub(r"{\w+}", "", en[k]))}
    # The one word the same in both: a language is named in its own language.
    assert same <= {"languages.en", "languages.es"}, same


def test_status_js_asks_only_for_words_the_files_have():
    script = (STATIC_JS / "status.js").read_text(encoding="utf-8")
    en = page_words("en", STATUS)
    for section, key in re.findall(r"\bW\.(\w+)\.(\w+)", script):
        assert key in en[section], f"W.{section}.{key}"
    for section in re.findall(r"\bW\.(\w+)\b", script):
        assert section in en, f"W.{section}"
    for table in re.findall(r'\bword\("(\w+)"', script):
        assert isinstance(en[table], dict), table
    for action in re.findall(r'\bact\(\$\("[\w-]+"\), "(\w+)"', script):
        assert action in en["notices"], action


# The string literals status.js may have that look like words: HTTP and DOM tokens.
NOT_WORDS = {"use strict", "Content-Type", "X-CSRF-Token", "GET", "POST", "Enter"}


def test_status_js_says_no_english_of_its_own():
    script = re.sub(r"/\*.*?\*/|//[^\n]*", "", (STATIC_JS / "status.js").read_text(encoding="utf-8"), flags=re.S)
    literals = set(re.findall(r'"([^"\\]*)"', script)) - NOT_WORDS
    # A sentence ("On the way") or a capitalised word ("Dismiss"); markup and codes are lower-case.
    said = {s for s in literals if re.search(r"[A-Za-z]{2,} [A-Za-z]{2,}|\b[A-Z][a-z]+", re.sub(r"<[^>]*>?", "", s))}
    assert said == set()
