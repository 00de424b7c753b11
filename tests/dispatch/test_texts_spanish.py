"""templates/*/es/: a Spanish twin for every text, taking the same variables, each fitting two segments.

The SMS side is rendered the way tools/check_sms_length.py does it: long realistic values,
every branch a template takes.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from dispatch.model.rescue import PROBLEMS, STATUSES
from dispatch.texts import TEMPLATE_DIR, say, speak

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("check_sms_length", ROOT / "tools" / "check_sms_length.py")
check = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("check_sms_length", check)  # dataclasses look their module up
_spec.loader.exec_module(check)

ACCENTS_UCS2 = set("áíóúÁÍÓÚ")


def names(kind: str, lang: str = "en") -> list[str]:
    folder = TEMPLATE_DIR / kind / ("es" if lang == "es" else "")
    return sorted(p.stem for p in folder.glob("*.txt"))


def variables(path: Path) -> set[str]:
    """The context names a template reads (top-level names inside {{ }} and {% %})."""
    text = path.read_text()
    found = set()
    for block in re.findall(r"{{(.*?)}}|{%(.*?)%}", text, flags=re.DOTALL):
        code = re.sub(r"'[^']*'|\"[^\"]*\"", "", " ".join(block))
        found |= set(re.findall(r"(?<![.\w|])([a-z_]\w*)", code))
    keywords = {"if", "elif", "else", "endif", "for", "endfor", "in", "not", "and", "or", "set", "import",
                "as", "loop", "es", "is", "none", "true", "false", "c", "format", "replace", "round", "int",
                "money", "first_name", "join", "length", "lower", "trim", "why", "pay", "problems"}
    local = set(re.findall(r"{%-?\s*(?:set|for)\s+(\w+)", text))
    return found - keywords - local


@pytest.mark.parametrize("kind", ["sms", "voice"])
def test_every_text_has_a_spanish_twin(kind):
    assert names(kind, "es") == names(kind)


@pytest.mark.parametrize("kind", ["sms", "voice"])
def test_spanish_reads_no_variable_the_english_does_not_get(kind):
    for name in names(kind):
        english = variables(TEMPLATE_DIR / kind / f"{name}.txt")
        spanish = variables(TEMPLATE_DIR / kind / "es" / f"{name}.txt")
        assert spanish <= english, (name, spanish - english)


@pytest.mark.parametrize("name", names("sms"))
def test_each_spanish_sms_renders_and_fits_two_segments(name):
    worst = check.worst("es", name)
    assert worst.over <= 0, (name, worst.enc, worst.size, worst.text)
    for _, text in check.renderings("es", name):
        assert "{{" not in text and "{%" not in text and text.strip()


def test_labels_translate_every_problem_code_and_english_label():
    for code, label in PROBLEMS.items():
        offer = say("es/driver_offer", **{**check.base_context("es"), "rescue": check.rescue(problem=code)})
        quote = say("es/quote", **{**check.base_context("es"), "problem": label})
        assert label not in offer and label not in quote
        assert not ACCENTS_UCS2 & set(offer + quote)  # long texts stay GSM-7


def test_rescue_statuses_are_said_in_spanish():
    for status in STATUSES:
        text = say("es/job_action_refused", rescue=check.rescue(status=status))
        assert status.replace("_", " ") not in text


def test_driver_commands_keep_their_english_words():
    for status in ("offline", "available", "offered", "on_job"):
        text = say("es/driver_unknown", commands=check.commands_for(status))
        assert "(accept)" not in text and "<place>" not in text
    assert "Y para aceptar" in say("es/driver_offer", **check.base_context("es"))


def test_a_default_cancel_reason_is_not_repeated_in_english():
    text = say("es/rider_cancelled_by_dispatch", rescue=check.rescue(cancel_reason="cancelled by dispatcher"))
    assert "cancelled" not in text and "cancelado" in text


VOICE_CONTEXT = {
    "code": "R1004", "textable": True, "place": "Union Square", "pickup": "Union Square", "dollars": 28, "cents": 50,
    "choices": [{"label": "Union Square"}, {"label": "Bryant Park"}],
    "driver": {"name": "Ana Lopez", "status": "available"},
}


@pytest.mark.parametrize("name", names("voice"))
def test_each_spanish_voice_prompt_renders(name):
    for status in STATUSES:
        rescue = check.rescue(status=status, code="R1004", driver_pay_cents=2050)
        text = speak(f"es/{name}", **{**VOICE_CONTEXT, "rescue": rescue})
        assert text.strip() and "{" not in text


def test_spoken_pay_is_dollars_and_cents():
    text = speak("es/driver_offer", rescue=check.rescue(code="R1004", driver_pay_cents=2050))
    assert "20 dólares con 50 centavos" in text and "R 1 0 0 4" in text
    assert "R1004" not in text
