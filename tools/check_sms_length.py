"""Does every SMS the service can send fit two segments? (PRODUCT.md §4, "Every reply fits")

Renders every template under templates/sms/ (English) and templates/sms/es/ (Spanish) with
long, realistic values (a 40-character place, code R12345, $123.45, a 20-character driver
name, a 30-character vehicle, five choices...), under every variant a template branches on
(problem, rescue and driver status, with and without a drop-off or a driver, pickup or
drop-off, surge...), and prints each one whose longest rendering is over two segments:

    GSM-7 (the GSM 03.38 basic set, extension characters counting two): 306 septets
    UCS-2 (any other character: á í ó ú, an emoji...):                 134 characters

Spanish é, ñ, ü, ¿ and ¡ are GSM-7; á, í, ó and ú are not (`--alphabet` shows it). It also
checks the replies the rider flow joins into one text: each of its prefaces ("welcome", "no_rescue_yet",
an answer to a question...) before each question it may ask again (flows/rider.py PREFACES, AFTER_PREFACE).

    python tools/check_sms_length.py            # both languages; exit 1 if anything is over
    python tools/check_sms_length.py --lang es  # one language
    python tools/check_sms_length.py -v         # every template's longest rendering
    python tools/check_sms_length.py --alphabet # which Spanish letters are GSM-7
"""
from __future__ import annotations

import argparse
import itertools
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dispatch.model.driver import STATUSES as DRIVER_STATES  # noqa: E402 - after the path above
from dispatch.model.help_request import HelpRequest  # noqa: E402
from dispatch.model.pricing import Quote  # noqa: E402
from dispatch.model.rescue import PROBLEMS, STATUSES, Rescue  # noqa: E402
from dispatch.shift import LIST_HELP, LIST_RESCUES, Listing  # noqa: E402
from dispatch.texts import TEMPLATE_DIR, say  # noqa: E402
from flows.driver import commands_for  # noqa: E402
from flows.rider import (  # noqa: E402
    AFTER_PREFACE,
    AFTER_SAFETY,
    AFTER_SAFETY_WELCOME,
    CHOICES_AFTER_SAFETY,
    PREFACES,
    SAFETY,
)

# -- GSM 03.38 ------------------------------------------------------------------------------
# The default alphabet, in code order 0x00-0x7F (0x1B, the escape to the extension table, is
# not a character of its own), and the extension table, each of whose characters takes two.
GSM_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
             "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENSION = "\f^{}\\[~]|€"
assert len(GSM_BASIC) == 128
GSM_BASIC_SET = frozenset(GSM_BASIC) - {"\x1b"}

LIMITS = {"GSM-7": 306, "UCS-2": 134}  # two concatenated segments: 2 x 153 septets, 2 x 67 UTF-16 units
SINGLE = {"GSM-7": 160, "UCS-2": 70}
PER_PART = {"GSM-7": 153, "UCS-2": 67}


def encoding(text: str) -> str:
    return "GSM-7" if all(c in GSM_BASIC_SET or c in GSM_EXTENSION for c in text) else "UCS-2"


def length(text: str) -> tuple[str, int]:
    """(encoding, size in that encoding's units: septets, or UTF-16 code units)."""
    enc = encoding(text)
    if enc == "GSM-7":
        return enc, sum(2 if c in GSM_EXTENSION else 1 for c in text)
    return enc, len(text.encode("utf-16-le")) // 2


def segments(text: str) -> int:
    enc, size = length(text)
    return 1 if size <= SINGLE[enc] else math.ceil(size / PER_PART[enc])


def fits(text: str) -> bool:
    enc, size = length(text)
    return size <= LIMITS[enc]


# -- long, realistic values ----------------------------------------------------------------
PLACES = [  # 40 characters each, as long as the labels a geocoder gives back
    "Adam Clayton Powell Jr Blvd & W 125th St",
    "Frederick Douglass Blvd & West 116th St.",
    "Avenue of the Americas & West 34th St NY",
    "George Washington Bridge, Manhattan side",
    "Amsterdam Avenue & West 110th St, Harlem",
]
assert all(len(p) == 40 for p in PLACES), [len(p) for p in PLACES]
PICKUP = {"lat": 40.8091234, "lng": -73.9482345, "label": PLACES[0]}
DROPOFF = {"lat": 40.7516789, "lng": -73.9901234, "label": PLACES[2]}
DRIVER_NAME = "Maximiliano Gonzalez"  # 20
VEHICLE = "white Ford Transit Connect van"  # 30
CANCEL_REASON = "rider says the bike is working again now"  # 40
URL = "https://dispatch.supportcarr.com/sandbox/pay/cs_sandbox_" + "0f3c5a7e9b1d4f6a8c2e4b6d8f0a2c4e"
# Live links (PRODUCT.md §9): a 22-character token on a public base URL longer than most.
TRACK_URL = "https://dispatch-nyc.supportcarr.com/t/" + "Xy3_" * 5 + "Q9"
JOB_URL = TRACK_URL.replace("/t/", "/d/")
RELAY = {"en": "I'm outside the Duane Reade on the corner, red jacket and a black e-bike, see you",
         "es": "Estoy afuera de la farmacia de la esquina, chaqueta roja y bici negra. Aquí te espero"}
assert len(CANCEL_REASON) == 40 and len(VEHICLE) == 30 and len(DRIVER_NAME) == 20 and len(TRACK_URL) == 61


def rescue(**fields) -> Rescue:
    doc = {"_id": "rescue-check", "code": "R12345", "status": "assigned", "rider_phone": "+12125550123",
           "pickup": PICKUP, "dropoff": DROPOFF, "problem": "mechanical", "problem_note": "",
           "quote_cents": 12345, "trip_miles": 9.8, "surge": 2.33, "created_at": 1_700_000_000_000,
           "updated_at": 1_700_000_000_000, "driver_id": "driver-check", "driver_pay_cents": 12345,
           "cancel_reason": CANCEL_REASON}
    doc.update(fields)
    return Rescue.from_doc(doc)


def base_context(lang: str) -> dict:
    """One context that satisfies every template."""
    driver = {"_id": "driver-check", "name": DRIVER_NAME, "vehicle": VEHICLE, "status": "on_job",
              "phone": "+12125550199", "location": {"lat": 40.80, "lng": -73.95, "label": PLACES[4]}}
    return {
        "rescue": rescue(), "driver": driver, "code": "R12345", "name": DRIVER_NAME, "text": RELAY[lang],
        "place": PLACES[3], "pickup": PLACES[0], "dropoff": PLACES[2], "problem": PROBLEMS["mechanical"],
        "quote": Quote(cents=12345, miles=9.8, billable_miles=9.8, surge=2.33, base_cents=2500,
                       per_mile_cents=350),
        "quote_cents": 12345, "amount_cents": 12345, "url": URL, "max_miles": 10.0, "miles": 12.3,
        "track_url": TRACK_URL, "job_url": JOB_URL,
        "distance_km": 15.5, "seconds": 120, "minutes": 15, "eta": 45, "stars": 5,
        "purpose": "dropoff", "to": "rider", "choices": [{"lat": 40.8, "lng": -73.9, "label": p} for p in PLACES],
        "commands": commands_for("offered"), "action": "arrive", "repeat": False, "count": 5,
        "phone": "+1******0123", "missed": 3, "asked": "R12344", "open": "R12345",
        "listing": Listing(
            [{"code": f"R1234{n}", "status": "in_transit", "flags": ["long search", "crash"],
              "driver": DRIVER_NAME} for n in range(LIST_RESCUES)], 12,
            [HelpRequest(id=f"help-{n}", phone="+12125550123", reason="not_understood", text=RELAY[lang],
                         status="open", created_at=1_700_000_000_000) for n in range(LIST_HELP)], 9),
        "role": "dispatcher", "needed": "dispatcher", "who": DRIVER_NAME, "verb": "ASSIGN",
        "names": [DRIVER_NAME, DRIVER_NAME + " Jr", DRIVER_NAME + " Sr"],
        "reason": "cannot assign a rescue that is cancelled",
        "request": HelpRequest(id="help-check", phone="+12125550123", reason="not_understood", text=RELAY[lang],
                               status="open", created_at=1_700_000_000_000),
    }


# -- what templates branch on --------------------------------------------------------------
@dataclass
class Axis:
    name: str
    pattern: str  # a template that matches this uses the axis
    values: list  # functions context -> context
    optional: bool = False  # a template may not support its other values: those renderings are skipped

    def applies(self, source: str) -> bool:
        return re.search(self.pattern, source) is not None


def _set(**kv):
    return lambda ctx: {**ctx, **kv}


def _rescue(**fields):
    return lambda ctx: {**ctx, "rescue": rescue(**{**_fields(ctx["rescue"]), **fields})}


def _fields(r: Rescue) -> dict:
    return {"status": r.status, "problem": r.problem, "dropoff": r.dropoff, "cancel_reason": r.cancel_reason}


def _problem(code):
    """The code on the rescue, its English label where a template is handed one (`problem`)."""
    return lambda ctx: _rescue(problem=code)({**ctx, "problem": PROBLEMS[code]})


def _driver(status):
    def apply(ctx):
        return {**ctx, "driver": {**ctx["driver"], "status": status}, "commands": commands_for(status)}
    return apply


AXES = [
    Axis("problem", r"problem", [_problem(code) for code in PROBLEMS]),
    Axis("rescue.status", r"rescue\.status", [_rescue(status=s) for s in STATUSES]),
    Axis("dropoff", r"dropoff", [_rescue(dropoff=DROPOFF), _rescue(dropoff=None),
                                 _set(dropoff=PLACES[2]), _set(dropoff=None)]),
    Axis("driver.status", r"driver\.status|commands", [_driver(s) for s in DRIVER_STATES]),
    Axis("no driver", r"if driver|driver else|if not driver", [lambda ctx: ctx, _set(driver=None)], optional=True),
    Axis("driver location", r"driver\.location", [
        lambda ctx: ctx, lambda ctx: {**ctx, "driver": {**ctx["driver"], "location": {"label": None}}}]),
    Axis("purpose", r"purpose", [_set(purpose="pickup"), _set(purpose="dropoff")]),
    Axis("to", r"\bto ==", [_set(to="rider"), _set(to="driver")]),
    Axis("surge", r"surge", [lambda ctx: ctx, lambda ctx: {**ctx, "quote": Quote(
        cents=12345, miles=9.8, billable_miles=9.8, surge=1.0, base_cents=2500, per_mile_cents=350)}]),
    Axis("eta", r"\beta\b", [_set(eta=45), _set(eta=None)]),
    Axis("cancel reason", r"cancel_reason", [_rescue(cancel_reason=CANCEL_REASON), _rescue(cancel_reason=None),
                                             _rescue(cancel_reason="cancelled by dispatcher")]),
    Axis("choices", r"choices", [lambda ctx: ctx, lambda ctx: {**ctx, "choices": ctx["choices"][:2]}]),
    Axis("no rescue", r"if rescue", [lambda ctx: ctx, _set(rescue=None)], optional=True),
]

# The welcome comes before where-are-you questions only.
PICKUP_STAGE = {"purpose": "pickup"}
# Replies the rider flow puts in one text (conversations/engine.py joins a step's replies with a
# blank line): at most one preface - an answer, a notice - then the question (flows/rider.py).
JOINED = [((preface, question), {}) for preface in PREFACES for question in AFTER_PREFACE]
# ...and the 911 line before what a text reporting a crash goes on to say (a list after it is cut).
AFTER_CRASH = {"choices": [{"lat": 40.8, "lng": -73.9, "label": p} for p in PLACES[:CHOICES_AFTER_SAFETY]]}
JOINED += [((SAFETY, question), AFTER_CRASH) for question in AFTER_SAFETY]
JOINED += [((SAFETY, "welcome", question), {**AFTER_CRASH, **PICKUP_STAGE}) for question in AFTER_SAFETY_WELCOME]


def source(lang: str, name: str) -> str:
    folder = TEMPLATE_DIR / "sms" / ("es" if lang == "es" else "")
    return (folder / f"{name}.txt").read_text()


def template_names(lang: str) -> list[str]:
    folder = TEMPLATE_DIR / "sms" / ("es" if lang == "es" else "")
    return sorted(p.stem for p in folder.glob("*.txt"))


def renderings(lang: str, name: str, fixed: dict | None = None):
    """Every (variant description, text) of one template; `fixed` values override the variants."""
    src = source(lang, name)
    axes = [a for a in AXES if a.applies(src)]
    prefix = "es/" if lang == "es" else ""
    for choice in itertools.product(*(range(len(a.values)) for a in axes)):
        ctx = base_context(lang)
        for axis, i in zip(axes, choice, strict=False):
            ctx = axis.values[i](ctx)
        ctx.update(fixed or {})
        try:
            text = say(prefix + name, **ctx)
        except Exception:
            if any(a.optional and i for a, i in zip(axes, choice, strict=False)):
                continue  # e.g. no driver where the template needs one: not a case the code sends
            raise
        yield ", ".join(f"{a.name}#{i}" for a, i in zip(axes, choice, strict=False)), text


@dataclass
class Worst:
    name: str
    text: str
    variant: str

    @property
    def enc(self) -> str:
        return length(self.text)[0]

    @property
    def size(self) -> int:
        return length(self.text)[1]

    @property
    def over(self) -> int:
        return self.size - LIMITS[self.enc]


def worst(lang: str, name: str, fixed: dict | None = None) -> Worst:
    """The rendering furthest over (or least under) its limit."""
    best: Worst | None = None
    for variant, text in renderings(lang, name, fixed):
        candidate = Worst(name, text, variant)
        if best is None or candidate.over > best.over:
            best = candidate
    if best is None:
        raise RuntimeError(f"{lang}/{name}: no variant renders")
    return best


def worst_joined(lang: str, names: tuple[str, ...], fixed: dict) -> Worst:
    parts = [worst(lang, n, fixed) for n in names]
    return Worst(" + ".join(names), "\n\n".join(p.text for p in parts), "longest of each")


def report(lang: str, verbose: bool) -> int:
    label = {"en": "English (templates/sms/)", "es": "Spanish (templates/sms/es/)"}[lang]
    names = template_names(lang)
    results = [worst(lang, n) for n in names]
    joined = [worst_joined(lang, combo, fixed) for combo, fixed in JOINED if all(n in names for n in combo)]
    over = [r for r in results + joined if r.over > 0]
    print(f"== {label}: {len(names)} templates, {len(joined)} joined replies")
    for r in results + joined:
        if r.over > 0 or verbose:
            mark = "OVER" if r.over > 0 else "ok  "
            print(f"{mark} {r.name}: {r.enc} {r.size}/{LIMITS[r.enc]} ({segments(r.text)} segments)"
                  + (f" [{r.variant}]" if r.variant else ""))
            if r.over > 0:
                print("     | " + r.text.replace("\n", "\n     | "))
    print(f"   {len(over)} over two segments" if over else "   all fit in two segments")
    return len(over)


def alphabet() -> None:
    for c in "áéíóúÁÉÍÓÚñÑüÜ¿¡":
        print(f"{c}  {'GSM-7' if c in GSM_BASIC_SET else 'not GSM-7 (UCS-2)'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lang", choices=("en", "es"), action="append", help="default: both")
    parser.add_argument("-v", "--verbose", action="store_true", help="every template's longest rendering")
    parser.add_argument("--alphabet", action="store_true", help="which Spanish letters GSM-7 has")
    args = parser.parse_args(argv)
    if args.alphabet:
        alphabet()
        return 0
    total = sum(report(lang, args.verbose) for lang in (args.lang or ["en", "es"]))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
