"""What is wrong with the bike, from the rider's own words, English or Spanish, typos and all."""
from __future__ import annotations

from flows.lexicon import Lexicon

CRASH, FLAT, BATTERY, MECHANICAL = "crash", "flat_tire", "dead_battery", "mechanical"
# Crash first: safety outranks everything else a message also mentions.
PRIORITY = (CRASH, FLAT, BATTERY, MECHANICAL)

PROBLEM_WORDS = Lexicon({
    CRASH: {
        "en": ("crash", "crashed", "accident", "collision", "hit by", "got hit", "car hit", "hit me", "fell",
               "fell off my bike", "injured", "hurt", "bleeding", "blood", "wreck", "wrecked", "doored",
               "got doored", "knocked over", "knocked down", "ran me over", "run over", "ambulance", "ran into me",
               "rear ended", "someone hit me"),
        "es": ("choque", "choco", "me choco", "me chocaron", "chocado", "accidente", "me atropellaron",
               "atropellaron", "atropello", "atropellado", "atropellada", "me cai", "cai", "se cayo",
               "herido", "herida", "lastimado", "lastimada", "sangre", "sangrando", "me pego", "me lastime",
               "me pegaron", "me tumbaron", "golpeado", "golpeada", "ambulancia"),
    },
    FLAT: {
        "en": ("flat", "flats", "flat tire", "puncture", "punctured", "tire", "tires", "tyre", "tyres",
               "popped",
               "blowout", "blew out", "no air", "leaking air", "deflated"),
        "es": ("ponchada", "ponchado", "poncho", "se me poncho", "ponche", "pinchazo", "pinchada",
               "pinchado", "pincho", "llanta", "llantas", "goma", "neumatico", "sin aire", "desinflada",
               "desinflado", "reventada", "se revento"),
    },
    BATTERY: {
        "en": ("battery", "batteries", "batt", "dead", "died", "no power", "wont turn on", "not turning on",
               "doesnt turn on", "wont start", "not charging", "out of charge", "no charge",
               "ran out of charge", "drained", "no juice", "out of juice", "needs a charge", "needs charge"),
        "es": ("bateria", "bateria muerta", "sin bateria", "se descargo", "descargada", "descargado",
               "no prende", "no enciende", "no arranca", "sin carga", "se apago", "no tiene carga", "muerta",
               "pila", "sin pila", "se murio"),
    },
    MECHANICAL: {
        "en": ("chain", "brake", "brakes", "motor", "pedal", "pedals", "gear", "gears", "wheel", "spoke",
               "spokes", "broke", "broken", "mechanical", "throttle", "controller", "handlebar",
               "handlebars", "derailleur", "crank", "stuck", "jammed", "seized", "chain fell off",
               "chain came off", "broke down", "wont move", "wont go", "stopped working", "not working",
               "kickstand", "error code"),
        "es": ("cadena", "frenos", "freno", "se rompio", "roto", "rota", "rompio", "pedales", "manubrio",
               "acelerador", "cambios", "descompuesta", "se descompuso", "averiada", "no funciona", "falla",
               "no anda", "rayos", "atorada", "trabada", "se cayo la cadena", "se me cayo la cadena",
               "se salio la cadena"),
    },
    # Words that look like a problem and are not: places, and riders saying nobody is hurt.
    None: {
        "en": ("battery park", "battery park city", "battery pl", "battery place", "dead end", "flat iron",
               "not hurt", "nobody hurt", "nobody is hurt", "no one hurt", "no one is hurt", "no accident",
               "no crash", "im fine"),
        "es": ("no estoy herido", "no estoy herida", "nadie herido", "nadie esta herido", "sin heridos"),
    },
})


def classify_problem(text: str) -> str | None:
    """A problem code from keywords anywhere in the text, or None when nothing is said."""
    found = {span.meaning for span in PROBLEM_WORDS.spans(PROBLEM_WORDS.words(text))}
    return next((code for code in PRIORITY if code in found), None)
