"""Every word the service says comes from `templates/`; this renders them."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), undefined=StrictUndefined,
                      autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.filters["money"] = lambda cents: f"${int(cents) / 100:,.2f}"
    env.filters["first_name"] = lambda name: (name or "").split(" ")[0]
    return env


def say(template: str, /, **context) -> str:
    """Render `templates/sms/<template>.txt` to the text of one message."""
    return _env().get_template(f"sms/{template}.txt").render(**context).strip()


def speak(template: str, /, **context) -> str:
    """Render `templates/voice/<template>.txt`: words for a phone call."""
    return _env().get_template(f"voice/{template}.txt").render(**context).strip()
