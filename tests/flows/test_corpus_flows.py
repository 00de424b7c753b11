"""The corpus of real texts run through the flows themselves (tests/flows/flow_corpus.py): each
text arrives at a point of a rider's or a driver's conversation, goes through flows.rider.step
or flows.driver.step - a real Locator over the built-in gazetteer and street grid, short links
answered from memory, no stores - and must be understood as listed.

Each section reports "understood/total" and lists its misses. `python -m tests.flows.test_corpus_flows`
prints the table.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from dispatch.model.driver import AVAILABLE, OFFERED, OFFLINE, ON_JOB, Driver
from dispatch.model.street_grid import StreetGrid
from dispatch.places import Gazetteer, Locator
from dispatch.texts import say
from flows import driver as driver_flow
from flows.effects import Reply, StepResult
from flows.rider import AFTER_PREFACE, AFTER_SAFETY, AFTER_SAFETY_WELCOME, PREFACES, SAFETY
from tests.dispatch.fakes import FakeMapLinks
from tests.flows import flow_corpus
from tests.flows.test_rider import AREA, Rider, make_ctx, make_rescue
from tools.check_sms_length import fits

SHORT_LINKS = FakeMapLinks({
    "https://maps.app.goo.gl/bryant1": "https://www.google.com/maps/place/Bryant+Park/@40.7536,-73.9832,17z",
    "https://goo.gl/maps/union2": "https://www.google.com/maps/place/Union+Square/@40.7359,-73.9911,17z",
})
LOCATOR = Locator(Gazetteer.builtin(), streets=StreetGrid.builtin(), links=SHORT_LINKS, near=(AREA.lat, AREA.lng))
ASSIGNED = {"status": "assigned", "driver_id": "driver-1"}


def rider(*texts: str, **ctx: Any) -> Rider:
    r = Rider(make_ctx(**ctx))
    r.ctx.locator = LOCATOR
    for text in texts:
        r.text(text)
    return r


def active(state: str = "active", **rescue: Any) -> Rider:
    r = Rider(make_ctx(open_rescue=make_rescue(**rescue)), state=state)
    r.ctx.locator = LOCATOR
    return r


def finished(payment_status: str) -> Rider:
    done = make_rescue(status="completed", payment_status=payment_status, rating_requested_at=1_700_000_000_000)
    r = Rider(make_ctx(aftercare=done))
    r.ctx.locator = LOCATOR
    return r


SITUATIONS: dict[str, Callable[[], Rider]] = {
    "new": lambda: rider(),
    "where": lambda: rider("hi"),
    "where_es": lambda: rider("hola"),
    "pick": lambda: rider("hi", "central park"),
    "problem": lambda: rider("at union square"),
    "dropoff": lambda: rider("flat tire at union square"),
    "pick_dropoff": lambda: rider("flat tire at union square", "central park"),
    "quote": lambda: rider("flat tire at union square", "skip"),
    "quote_to": lambda: rider("flat tire at union square", "bryant park"),
    "quote_es": lambda: rider("se me ponchó la llanta en union square", "saltar"),
    "missed_twice": lambda: rider("hi", "👀", "🙃"),
    "searching": lambda: active(),
    "assigned": lambda: active(**ASSIGNED),
    "confirm_cancel": lambda: active("confirm_cancel", **ASSIGNED),
    "owed": lambda: finished("link_sent"),
    "paid": lambda: finished("paid"),
}
DRIVER_STATUSES = {"offline": OFFLINE, "available": AVAILABLE, "offered": OFFERED, "on_job": ON_JOB}


def _effect_names(effects: list) -> list[str]:
    """Each effect as "Kind" and, where it says more, "Kind:detail"."""
    names = []
    for e in effects:
        kind = type(e).__name__
        detail = (getattr(e, "reason", None) or getattr(e, "template", None) or getattr(e, "code", None)
                  or getattr(e, "action", None) or (e.place["label"] if kind == "Locate" else None))
        names += [kind] + ([f"{kind}:{detail}"] if detail else [])
    return names


def _check_rider(where: str, text: str, expected: dict[str, Any]) -> list[str]:
    r = SITUATIONS[where]()
    result = r.text(text)
    data = result.data
    got = {
        "state": result.state, "lang": result.language, "problem": data.get("problem"),
        "pickup": (data.get("pickup") or {}).get("label"),
        "dropoff": (data.get("dropoff") or {}).get("label") if data.get("dropoff") is not None else None,
        "says": result.templates,
    }
    wrong = [f"{key}={got[key]!r} (expected {value!r})" for key, value in expected.items()
             if key in got and got[key] != value]
    if "dropoff" in expected and expected["dropoff"] is None and "dropoff" not in data:
        wrong.append("no drop-off decided (expected none)")
    names = _effect_names(result.effects)
    wrong += [f"no {want} among {names}" for want in expected.get("does", []) if want not in names]
    if expected.get("quiet") and result.effects:
        wrong.append(f"answered an auto-reply with {names}")
    wrong += _one_text_fits(result)
    return wrong


def _one_text_fits(result: StepResult) -> list[str]:
    """What the engine would send as one text: at most a preface and a question, within two segments."""
    says = result.templates
    if says and says[0] == SAFETY:
        checked = len(says) == 1 or (len(says) == 2 and says[1] in AFTER_SAFETY) or (
            len(says) == 3 and says[1] == "welcome" and says[2] in AFTER_SAFETY_WELCOME)
    else:
        checked = len(says) <= 1 or (len(says) == 2 and says[0] in PREFACES and says[1] in AFTER_PREFACE)
    if not checked:
        return [f"joins {says}, which no length check covers"]
    rescue = make_rescue(code="R4821")
    text = "\n\n".join(say(r.template, lang=result.language, **{"rescue": rescue, **r.context})
                       for r in result.replies)
    return [] if fits(text) else [f"over two segments: {text!r}"]


def _check_driver(where: str, text: str, expected: dict[str, Any]) -> list[str]:
    driver = Driver(id="driver-1", phone="+12125550111", name="Ann Lee", vehicle="Ford Transit",
                    status=DRIVER_STATUSES[where], rescue_id="rescue-1" if where == "on_job" else None)
    effects = driver_flow.step(driver, text, LOCATOR)
    for effect in effects:
        if isinstance(effect, Reply):
            assert say(effect.template, **effect.context)
    names = _effect_names(effects)
    wrong = [f"no {want} among {names}" for want in expected.get("does", []) if want not in names]
    if expected.get("quiet") and effects:
        wrong.append(f"answered an auto-reply with {names}")
    return wrong


def understand(where: str, text: str, expected: dict[str, Any]) -> list[str]:
    """What went wrong with one case (nothing: understood)."""
    check = _check_driver if where in DRIVER_STATUSES else _check_rider
    return check(where, text, expected)


def score(section: str) -> tuple[int, int, list[str]]:
    cases = flow_corpus.SECTIONS[section]
    misses = []
    for where, text, expected in cases:
        wrong = understand(where, text, expected)
        if wrong:
            misses.append(f"[{where}] {text!r}: " + "; ".join(wrong))
    return len(cases) - len(misses), len(cases), misses


@pytest.mark.parametrize("section", list(flow_corpus.SECTIONS))
def test_corpus_section_through_the_flows(section):
    understood, total, misses = score(section)
    assert not misses, f"{section}: {understood}/{total} understood; misses:\n" + "\n".join(misses)


def test_corpus_is_big_enough_and_has_no_duplicates():
    cases = [(where, text) for cases in flow_corpus.SECTIONS.values() for where, text, _ in cases]
    assert len(cases) >= 200, f"the corpus has {len(cases)} texts; the issue asks for at least 200"
    duplicates = {c for c in cases if cases.count(c) > 1}
    assert not duplicates, f"listed twice: {sorted(duplicates)}"
    assert len([c for c in cases if c[0] in DRIVER_STATUSES]) >= 30


def test_a_wrong_expectation_is_reported():
    assert understand("quote", "y", {"state": "idle"}) == ["state='active' (expected 'idle')"]
    assert understand("offered", "Y", {"does": ["Decline"]})


def main() -> int:
    total_understood = total = 0
    for section in flow_corpus.SECTIONS:
        understood, count, misses = score(section)
        total_understood, total = total_understood + understood, total + count
        print(f"{section:55} {understood:4}/{count}")
        for miss in misses:
            print("    " + miss)
    print(f"{'all':55} {total_understood:4}/{total}")
    return 0 if total_understood == total else 1


if __name__ == "__main__":
    sys.exit(main())
