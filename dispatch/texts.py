"""Every word the service says comes from `templates/`; this renders them, in English
(`templates/sms/`, `templates/voice/`) or Spanish (their `es/` folders, a twin for each), and
reads the words of the pages: `templates/<page>/<lang>.json`, the same keys in both languages, for
the live-link pages (`links`) and the dispatcher's status and login pages (`status`)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from dispatch.model.driver import first_name

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
ENGLISH, SPANISH = "en", "es"
LANGUAGES = (ENGLISH, SPANISH)


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), undefined=StrictUndefined,
                      autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.filters["money"] = lambda cents: f"${int(cents) / 100:,.2f}"
    env.filters["first_name"] = first_name
    return env


def _path(kind: str, template: str, lang: str) -> str:
    return f"{kind}/es/{template}.txt" if lang == SPANISH else f"{kind}/{template}.txt"


def say(template: str, /, lang: str = ENGLISH, **context) -> str:
    """Render `templates/sms/<template>.txt` (or its Spanish twin) to the text of one message."""
    return _env().get_template(_path("sms", template, lang)).render(**context).strip()


def speak(template: str, /, lang: str = ENGLISH, **context) -> str:
    """Render `templates/voice/<template>.txt` (or its Spanish twin): words for a phone call."""
    return _env().get_template(_path("voice", template, lang)).render(**context).strip()


LINKS, STATUS = "links", "status"
PAGES = (LINKS, STATUS)


@lru_cache(maxsize=len(PAGES) * len(LANGUAGES))
def _page_words(page: str, lang: str) -> str:
    return (TEMPLATE_DIR / page / f"{lang}.json").read_text(encoding="utf-8")


def page_words(lang: str = ENGLISH, page: str = LINKS) -> dict:
    """The words of a page in `lang` (English for anything else): one JSON file per page and
    language, so the page's template and its script read the very same words. A fresh copy
    each time: callers may add to it without changing what the next page gets."""
    if page not in PAGES:
        raise ValueError(f"no words for page {page!r}")
    return json.loads(_page_words(page, lang if lang in LANGUAGES else ENGLISH))


def language(value: object) -> str:
    """`value` if it is a language the service speaks, else English."""
    return value if isinstance(value, str) and value in LANGUAGES else ENGLISH
