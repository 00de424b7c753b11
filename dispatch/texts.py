"""Every word the service says comes from `templates/`; this renders them, in English
(`templates/sms/`, `templates/voice/`) or Spanish (their `es/` folders, a twin for each)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
ENGLISH, SPANISH = "en", "es"
LANGUAGES = (ENGLISH, SPANISH)


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), undefined=StrictUndefined,
                      autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.filters["money"] = lambda cents: f"${int(cents) / 100:,.2f}"
    env.filters["first_name"] = lambda name: (name or "").split(" ")[0]
    return env


def _path(kind: str, template: str, lang: str) -> str:
    return f"{kind}/es/{template}.txt" if lang == SPANISH else f"{kind}/{template}.txt"


def say(template: str, /, lang: str = ENGLISH, **context) -> str:
    """Render `templates/sms/<template>.txt` (or its Spanish twin) to the text of one message."""
    return _env().get_template(_path("sms", template, lang)).render(**context).strip()


def speak(template: str, /, lang: str = ENGLISH, **context) -> str:
    """Render `templates/voice/<template>.txt` (or its Spanish twin): words for a phone call."""
    return _env().get_template(_path("voice", template, lang)).render(**context).strip()
