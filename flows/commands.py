"""A driver's commands in their own words, English or Spanish: "Y 1042", "omw", "llegué", "listo".

The names are the driver flow's triggers. Which of them a driver may use right now is the flow's
business (on a job "ok" is for the rider, not an answer to an offer), so nothing here knows
the driver's state.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from flows.answers import YES, answer
from flows.lexicon import Lexicon
from flows.text import clean, fold

ACCEPT, DECLINE = "accept", "decline"
COMMAND_WORDS = Lexicon({
    ACCEPT: {"en": ("accept", "accepted", "ill take it", "i got it", "taking it", "mine", "on it"),
             "es": ("acepto", "aceptar", "lo tomo", "yo voy", "yo lo tomo")},
    DECLINE: {"en": ("pass", "decline", "reject", "cant", "can not", "cannot", "not me", "busy", "skip"),
              "es": ("paso", "rechazo", "rechazar", "no puedo", "ocupado", "ocupada")},
    "go_online": {"en": ("on", "online", "on duty", "im on", "back on", "available", "start shift"),
                  "es": ("conectado", "conectada", "en linea", "disponible", "activo", "activa", "entro")},
    "go_offline": {"en": ("off", "offline", "off duty", "im off", "done for the day", "end shift",
                           "signing off"),
                   "es": ("desconectado", "desconectada", "fuera de linea", "no disponible", "me desconecto",
                          "salgo", "termine por hoy")},
    "drive": {"en": ("omw", "otw", "on my way", "on the way", "en route", "enroute", "heading there",
                     "driving", "coming"),
              "es": ("en camino", "voy en camino", "ya voy", "voy para alla", "voy", "manejando")},
    "arrive": {"en": ("arrived", "arrive", "here", "im here", "i am here", "at pickup", "outside",
                      "im outside",
                      "at the location", "on site", "onsite"),
               "es": ("llegue", "ya llegue", "aqui estoy", "estoy aqui", "ya estoy aqui", "afuera",
                      "estoy afuera", "ya estoy")},
    "load": {"en": ("loaded", "bike loaded", "got the bike", "picked up", "bike is loaded", "loaded up"),
             "es": ("cargado", "cargada", "bici cargada", "ya la cargue", "ya lo cargue", "recogida")},
    "complete": {"en": ("done", "complete", "completed", "finished", "all done", "dropped off", "delivered",
                        "job done"),
                 "es": ("listo", "lista", "termine", "ya termine", "terminado", "entregado", "entregada",
                        "ya quedo")},
    "drop": {"en": ("drop", "drop job", "drop it", "drop the job", "give it back"),
             "es": ("soltar", "dejar", "dejar el trabajo", "suelto el trabajo")},
    "status": {"en": ("status",), "es": ("estado",)},
})
# Words a command may come with: "ok arrived", "just finished", "ya llegué".
FILLER = frozenset(["ok", "okay", "just", "now", "i", "im", "yes", "yeah", "ya", "y", "bro", "ahora"])
_CODE = re.compile(r"(?<![\d$.,])#?r?\s?(\d{3,6})(?!\w)")


class DriverWord(NamedTuple):
    """A driver command: the trigger, and the rescue code it names ("Y 1042"), if any."""
    trigger: str
    code: str | None = None


def _one_meaning(spelled: list) -> str | None:
    """ "cant, busy", "done, dropped off": every word but filler is part of a phrase, and all the
    phrases say one thing."""
    spans = COMMAND_WORDS.spans(spelled)
    used = {i for span in spans for i in range(span.start, span.end)}
    if any(t.word not in FILLER for i, t in enumerate(spelled) if i not in used):
        return None
    meanings = {span.meaning for span in spans}
    return meanings.pop() if len(meanings) == 1 else None


def driver_command(text: str) -> DriverWord | None:
    """The command a driver's text gives, or None (a location, a note for the rider...)."""
    body = fold(text)
    codes = _CODE.findall(body)
    if len(codes) > 1:
        return None
    code = codes[0] if codes else None
    rest = clean(text)
    if code:
        match = _CODE.search(body)
        rest = rest[:match.start()] + " " + rest[match.end():]
    spelled = COMMAND_WORDS.words(rest)
    trigger = COMMAND_WORDS.whole(spelled, FILLER) or _one_meaning(spelled)
    if trigger:  # before yes/no: to a driver on a job "listo" is done, not "ok"
        return DriverWord(trigger, code)
    said = answer(rest)
    return DriverWord(ACCEPT if said == YES else DECLINE, code) if said else None
