"""What a rider wants besides answering the question asked: a person, a cancel, a question...

Some intents are whole messages only ("help", "english", "skip": inside a longer text they
are something else: "help, my tire is flat"), others count anywhere ("how much is it?", "can
I talk to a person"). Bare "cancel" is none of them: it is a carrier opt-out word, handled
before any flow sees the text.
"""
from __future__ import annotations

import re
from enum import StrEnum

from flows.answers import answer, reaction
from flows.lexicon import Lexicon
from flows.text import clean, fold
from flows.trips import trim_place


class Intent(StrEnum):
    HUMAN = "human"
    CANCEL = "cancel"
    CASUAL_CANCEL = "casual_cancel"  # "nvm": confirmed first when a driver is on the way
    SWITCH_EN = "switch_en"
    SWITCH_ES = "switch_es"
    STATUS = "status"
    QUESTION_TIME = "question_time"
    QUESTION_PRICE = "question_price"
    QUESTION_COMING = "question_coming"
    PAY = "pay"
    HELP = "help"
    SKIP = "skip"
    CORRECTION = "correction"


# When one text holds several, the first of these wins.
PRIORITY = (Intent.HUMAN, Intent.CANCEL, Intent.CASUAL_CANCEL, Intent.SWITCH_EN, Intent.SWITCH_ES,
            Intent.STATUS, Intent.QUESTION_TIME, Intent.QUESTION_PRICE, Intent.QUESTION_COMING, Intent.PAY,
            Intent.HELP, Intent.SKIP)

WHOLE_MESSAGE = Lexicon({
    Intent.HUMAN: {
        "en": ("human", "person", "agent", "operator", "representative", "rep", "dispatcher", "dispatch",
               "manager", "supervisor",
               "customer service", "customer support", "support", "someone real"),
        "es": ("humano", "persona", "operador", "operadora", "agente", "representante", "alguien",
               "servicio al cliente"),
    },
    # The carrier's opt-out word, known here so that no typo fixing turns it into "cancela".
    None: {"en": ("cancel",), "es": ()},
    Intent.CANCEL: {"en": (), "es": ("cancelar", "cancela", "cancelalo", "cancelenlo", "cancelar todo")},
    Intent.CASUAL_CANCEL: {
        "en": ("im good", "im ok", "im okay", "all good", "im fine now", "all set", "no need anymore",
               "nah im good", "no im good", "no im ok", "im good now"),
        "es": ("ya no", "ya esta", "ya estoy bien", "no importa", "dejalo", "ya no gracias"),
    },
    Intent.SWITCH_EN: {"en": ("english", "speak english", "do you speak english"),
                       "es": ("ingles", "habla ingles", "hablas ingles", "hablan ingles")},
    Intent.SWITCH_ES: {"en": ("spanish", "speak spanish", "do you speak spanish"),
                       "es": ("espanol", "habla espanol", "hablas espanol", "hablan espanol",
                              "se habla espanol", "castellano")},
    Intent.STATUS: {"en": ("status", "update", "updates", "any update", "any updates", "status update",
                           "whats the status", "where"),
                    "es": ("estado", "donde", "novedades", "como va", "que paso con mi rescate")},
    Intent.QUESTION_TIME: {"en": ("when",), "es": ("cuando",)},
    Intent.PAY: {"en": ("pay", "payment", "pay link", "payment link", "link", "send link", "resend link",
                        "new link", "send the link", "resend", "send payment link"),
                 "es": ("pagar", "pago", "link de pago", "enlace", "enlace de pago", "mandame el link")},
    Intent.HELP: {"en": ("help", "info", "menu", "commands", "options", "how does this work"),
                  "es": ("ayuda", "informacion", "opciones", "como funciona")},
    Intent.SKIP: {"en": ("skip", "none", "no dropoff", "no drop off", "no destination", "not sure", "dunno",
                         "idk", "i dont know", "dont know", "later", "no idea", "doesnt matter", "whatever",
                         "anywhere", "just pick me up", "pickup only", "decide later", "nowhere"),
                  "es": ("no se", "saltar", "ninguno", "ninguna", "nada", "despues", "luego", "da igual",
                         "cualquiera", "omitir", "no tengo", "no se todavia", "solo recogerme")},
})
ANYWHERE = Lexicon({
    None: {"en": ("cancel",), "es": ()},
    Intent.HUMAN: {
        "en": ("talk to a person", "talk to a human", "talk to someone", "talk to somebody",
               "speak to someone", "speak to a manager", "talk to a manager",
               "speak to a person", "speak with someone", "speak to a human", "real person", "live person",
               "actual person", "a human", "real human", "customer service"),
        "es": ("hablar con alguien", "hablar con una persona", "hablar con un humano", "persona real",
               "quiero hablar con", "un humano", "un operador", "una persona real"),
    },
    Intent.CANCEL: {
        "en": ("cancel rescue", "cancel my rescue", "cancel the rescue", "cancel request",
               "cancel my request",
               "cancel the request", "cancel pickup", "cancel my pickup", "cancel it", "cancel the driver",
               "cancel driver", "cancel this", "cancel that", "cancel everything", "cancel order",
               "cancel my order", "cancel the tow", "cancel ride", "cancel my ride", "want to cancel",
               "wanna cancel", "like to cancel", "please cancel", "cancel please", "yes cancel", "yes cancel it",
               "yes please cancel"),
        "es": ("cancelar rescate", "cancelar el rescate", "cancelar mi rescate", "cancela el rescate",
               "cancelen el rescate", "quiero cancelar", "cancelar la solicitud", "cancelar el servicio",
               "si cancela", "si cancelalo", "si cancelar"),
    },
    Intent.CASUAL_CANCEL: {
        "en": ("nvm", "nevermind", "never mind", "nm", "forget it", "forget about it", "no longer need",
               "dont need it", "dont need a rescue", "dont need help", "dont need you", "not needed",
               "dont need it anymore", "someone helped me", "i fixed it", "fixed it", "got it fixed",
               "got it working", "its working now", "working now", "found a ride", "got a ride"),
        "es": ("olvidalo", "olvidenlo", "olvidelo", "ya no lo necesito", "ya no necesito", "ya no hace falta",
               "ya se arreglo", "ya lo arregle", "ya funciona", "no lo necesito", "ya no es necesario"),
    },
    Intent.SWITCH_EN: {"en": ("in english", "english please"), "es": ("en ingles",)},
    Intent.SWITCH_ES: {"en": ("in spanish", "spanish please"), "es": ("en espanol", "espanol por favor")},
    Intent.STATUS: {
        "en": ("where are you", "where r u", "where ru", "where u at", "wya", "where you at", "where is my driver",
               "wheres my driver",
               "where is the driver", "wheres the driver", "where is he", "wheres he", "where is she",
               "where is the van", "where is the tow", "where is my rescue", "status of my rescue",
               "any news", "whats happening", "whats going on"),
        "es": ("donde estas", "donde esta", "donde estan", "donde viene", "donde va", "cual es el estado",
               "que esta pasando", "alguna novedad", "donde esta el conductor", "donde esta mi chofer"),
    },
    Intent.QUESTION_TIME: {
        "en": ("how long", "how soon", "eta", "how much longer", "how many minutes", "when will", "when is",
               "when are", "when does", "when do", "when can", "what time", "how far", "arrival time",
               "how long will", "taking so long", "taking forever"),
        "es": ("cuanto tarda", "cuanto tardan", "cuanto tiempo", "cuanto falta", "cuando llega",
               "cuando llegan", "cuando viene", "cuando vienen", "a que hora", "que tan lejos",
               "tarda mucho", "cuantos minutos", "va a tardar", "cuanto va a tardar"),
    },
    Intent.QUESTION_PRICE: {
        "en": ("how much", "price", "prices", "pricing", "cost", "costs", "fee", "fees", "what do you charge",
               "do you charge", "how much is it", "quote"),
        "es": ("cuanto cuesta", "cuanto es", "cuanto sale", "cuanto cobran", "cuanto me cobran", "precio",
               "precios", "costo", "cuesta", "tarifa", "cuanto vale"),
    },
    Intent.PAY: {"en": ("payment link", "pay link", "link expired", "link doesnt work", "link not working"),
                 "es": ("link de pago", "enlace de pago", "el link no funciona", "el enlace no funciona")},
    Intent.QUESTION_COMING: {
        "en": ("is anyone coming", "anyone coming", "someone coming", "is someone coming", "anybody coming",
               "is anyone there", "anyone there", "anybody there", "are you there", "u there", "you there",
               "is this working", "anyone here", "is anybody there", "hello anyone"),
        "es": ("alguien viene", "viene alguien", "hay alguien", "alguien ahi", "estan ahi", "siguen ahi",
               "me escuchan", "alguien me ayuda", "ya viene", "ya vienen", "alguien me lee", "hola alguien"),
    },
})
# Words a whole-message intent may come with: "can I talk to a real person please".
FILLER = frozenset({
    "please", "pls", "plz", "hey", "hi", "ok", "okay", "um", "uh", "i", "me", "my", "a", "an", "the", "to",
    "can", "could", "you", "u", "want", "wanna", "need", "just", "now", "real", "live", "actual", "talk",
    "speak", "with", "get", "let", "thanks", "thank", "switch", "change", "in", "por", "favor", "porfa",
    "oye", "hola", "quiero", "necesito", "un", "una", "el", "la", "mi", "con", "hablar", "puedo", "gracias",
    "cambiar", "en", "yo"
})
NEGATIONS = frozenset({"dont", "not", "never"})
_DOLLAR_QUESTION = re.compile(r"\$+\s*\?*|\?+\s*\$+")
_HELLO_QUESTION = re.compile(r"(?:hel+o+|hel+o+w+|hi+|hey+|hola+|anyone|anybody|alguien|ola+)\s*\?+")
_CORRECTION_LEAD = (
    r"(?:wrong (?:place|location|spot|address|one|pin|street|corner|intersection)|wrong|incorrect|"
    r"not there|not that one|not that|thats wrong|that's wrong|thats not right|that's not right|"
    r"thats not it|that's not it|not right|not where i am|thats not where i am|that's not where i am|"
    r"lugar equivocado|equivocado|equivocada|incorrecto|esta mal|no es ahi|ahi no|no es ese|no es alli|"
    r"direccion equivocada|ubicacion equivocada|me equivoque)")
_CORRECTION_WORDS = re.compile(
    rf"(?:no+[\s,.!:;-]+)?{_CORRECTION_LEAD}(?P<rest>[\s,.!:;-].*)?", re.DOTALL)
# "I'm" needs a place word after it ("no, I'm at 5th"; "nah I'm good" corrects nothing), "it's" not.
_NEW_PLACE_WORDS = (
    r"(?:(?:i'?m|i am|im|i'm actually|im actually|estoy)\s+(?:at|on|in|near|by|en|cerca de|por)"
    r"|(?:its|it's|it is|i said|es|es en|dije))\s+(?P<place>.+)")
_NEW_PLACE = re.compile(rf"[\s,.!:;-]*(?:actually\s+|really\s+|en realidad\s+)?{_NEW_PLACE_WORDS}", re.DOTALL)
_NO_THEN_PLACE = re.compile(
    rf"(?:no+|nope|nah|actually|no actually|en realidad)[\s,.!:;-]+{_NEW_PLACE_WORDS}"
    r"|no+[\s,.!:;-]+(?:en|at)\s+(?P<place2>.+)", re.DOTALL)
_AUTOMATED_PATTERNS = (
    r"\bauto[\s-]?(?:matic\s+)?(?:reply|response|responder|message)\b",
    r"\bautomated\s+(?:message|reply|response|text)\b",
    r"\bthis is an? automated\b",
    r"\bi'?m driving\b.*\b(?:get back|when i get|focus|right now|later|reply)\b",
    r"\b(?:driving|sleep|work|personal|do not disturb)\s+focus\b",
    r"\bwith focus (?:turned )?on\b",
    r"\bnotifications silenced\b",
    r"\bout of (?:the )?office\b",
    r"\bdo not reply\b",
    r"\bno-?reply\b",
    r"\bi'?ll (?:get back to you|respond|reply) (?:as soon as|when|later|shortly)\b",
    r"\brespuesta automatica\b",
    r"\bmensaje automatico\b",
    r"\bestoy (?:manejando|conduciendo)\b.*\b(?:despues|luego|mas tarde|cuando|pronto|responder)",
    r"\bte (?:respondere|contestare|llamo) (?:mas tarde|luego|despues|pronto|en cuanto)\b",
    r"\bno responda\b",
)
_AUTOMATED = re.compile("|".join(_AUTOMATED_PATTERNS), re.DOTALL)
# Letters that mean something alone: y(es), n(o), k (ok).
ONE_LETTER_WORDS = frozenset("ynk")


def correction(text: str) -> str | None:
    """The new place of a correction ("no, I'm at 5th and 23rd" → "5th and 23rd"; "wrong place" →
    ""), or None when the text corrects nothing."""
    body, original = fold(text), clean(text)
    match = _NO_THEN_PLACE.fullmatch(body)
    if match:
        group = "place" if match["place"] else "place2"
        return trim_place(original, match.start(group), match.end(group))
    match = _CORRECTION_WORDS.fullmatch(body)
    if not match:
        return None
    rest = match.start("rest") if match["rest"] else len(body)
    place = _NEW_PLACE.fullmatch(body, rest)
    start = place.start("place") if place else rest
    return trim_place(original, start, len(body))


_KEEP = re.compile(r"\b(?:keep|dont cancel|don't cancel|do not cancel|no cancel|still need|sigue|seguir|"
                   r"no lo cancel\w*|no cancel\w*|todavia lo necesito)\b")


def keeps(text: str) -> bool:
    """Whether a rider asked "cancel it?" says to keep the rescue in words other than a plain no."""
    return bool(_KEEP.search(fold(text)))


_ABOUT_THE_RIDER = re.compile(r"\b(?:i'?m|i am|im|estoy)\b")


def about_the_rider(text: str) -> bool:
    """Whether a correction says where the rider is ("no, I'm at ..."), rather than which place
    was wrong ("wrong place", "no its penn station"): the first always corrects the pickup."""
    return bool(_ABOUT_THE_RIDER.search(fold(text)))


def _anywhere(text: str) -> Intent | None:
    words = ANYWHERE.words(text)
    found = set()
    for span in ANYWHERE.spans(words):
        negated = span.start > 0 and words[span.start - 1].word in NEGATIONS
        if not negated or span.meaning in (Intent.QUESTION_TIME, Intent.QUESTION_PRICE):
            found.add(span.meaning)
    return next((i for i in PRIORITY if i in found), None)


def intent(text: str) -> Intent | None:
    """The special intent of a rider's text, or None for anything else (an answer, a place...)."""
    body = fold(text).strip(" .!")
    if not body:
        return None
    if correction(text) is not None:
        return Intent.CORRECTION
    if _DOLLAR_QUESTION.fullmatch(body):
        return Intent.QUESTION_PRICE
    if _HELLO_QUESTION.fullmatch(body):
        return Intent.QUESTION_COMING
    whole = WHOLE_MESSAGE.whole(WHOLE_MESSAGE.words(text), FILLER)
    return whole or _anywhere(text)


def not_understandable(text: str) -> bool:
    """True for a text that carries nothing to read: emoji that are not yes or no (🚲💥😭),
    punctuation, one stray letter. The flow then says it did not get it, not "place not found"."""
    if answer(text) is not None or reaction(text) is not None:
        return False
    meaningful = [c for c in clean(text) if c.isalnum()]
    if not meaningful:
        return True
    lone = meaningful[0].lower() if len(meaningful) == 1 else None
    return lone is not None and not lone.isdigit() and lone not in ONE_LETTER_WORDS


def looks_automated(text: str) -> bool:
    """True for auto-replies (driving focus, out of office, "respuesta automática"): answering
    them starts a loop between two machines."""
    return bool(_AUTOMATED.search(fold(text)))
