"""tools/check_sms_length.py as a test: every SMS the service can send, in both languages and
every branch, rendered with long realistic values - and every pair of replies the rider flow
joins into one text - fits two segments (PRODUCT.md §4)."""
from __future__ import annotations

import pytest

from flows.rider import AFTER_PREFACE, AFTER_SAFETY, AFTER_SAFETY_WELCOME, PREFACES, SAFETY
from tools import check_sms_length as check


@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_reply_fits_two_segments(lang, capsys):
    over = check.report(lang, verbose=False)
    assert over == 0, capsys.readouterr().out


def test_the_joined_replies_are_every_preface_before_every_question():
    joined = {names for names, _ in check.JOINED}
    assert {(p, q) for p in PREFACES for q in AFTER_PREFACE} <= joined
    assert {(SAFETY, q) for q in AFTER_SAFETY} | {(SAFETY, "welcome", q) for q in AFTER_SAFETY_WELCOME} <= joined
    assert len(check.JOINED) >= 60


@pytest.mark.parametrize("text, fits", [
    ("x" * 306, True), ("x" * 307, False),            # GSM-7: two segments of 153
    ("€" * 153, True), ("€" * 154, False),            # extension characters count two
    ("á" * 134, True), ("á" * 135, False),            # one accent makes the text UCS-2
    ("ñ¿¡é" * 76 + "ab", True),                       # ...but these are GSM-7
    ("👍" * 67, True), ("👍" * 68, False),             # an emoji is two UTF-16 units
])
def test_the_limits_are_the_carriers(text, fits):
    assert check.fits(text) is fits


def test_an_over_long_template_is_reported(tmp_path, monkeypatch, capsys):
    long_one = check.Worst("too_long", "x" * 400, "")
    monkeypatch.setattr(check, "worst", lambda lang, name, fixed=None: long_one)
    assert check.report("en", verbose=False) > 0
    assert "OVER too_long" in capsys.readouterr().out
