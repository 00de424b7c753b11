"""Voice: rescue by phone call, and masked calls between rider and driver (PRODUCT.md §4).

The intake is the rider flow itself (`Engine.voice_step`), in the same conversation
record as texts, so a call that ends half-way can be finished by SMS and the reverse.
This module only turns flow states into spoken prompts and keypad menus, with TwiML
built by `twilio.twiml.voice_response`. Every callback is answered once per CallSid
step: a repeated delivery gets the TwiML the first one got.
"""
from __future__ import annotations

from functools import wraps
from typing import Any
from urllib.parse import urlencode

import pymongo
import structlog
from flask import Blueprint, Response, request
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError
from twilio.twiml.voice_response import VoiceResponse

from conversations.engine import Engine, Turn
from conversations.webhooks import SID_RE, twilio_signed
from dispatch.dispatcher import Accepted
from dispatch.http import plain, services
from dispatch.model import message as m
from dispatch.model import offer as of
from dispatch.model.driver import OFFERED, ON_JOB, Driver
from dispatch.model.phones import is_textable, mask, sender_key
from dispatch.ports import Busy
from dispatch.texts import ENGLISH, SPANISH, speak
from flows import rider
from flows.effects import Accept, CancelRescue, Decline, RecordCall, SendText, StepResult, TextParty

log = structlog.get_logger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/twilio/voice")

MAX_TRIES = 3  # the first ask and two re-prompts, then we continue by text
GATHER_TIMEOUT = 6
DIAL_TIMEOUT = 25
HINTS_MAX = 60
# Keypad answers at yes/no questions, in the words the rider flow understands.
KEYPAD_WORDS = {"1": "yes", "2": "no"}
# The key that switches a call to the other language, at any question of the intake; what it
# means in the rider flow's words.
LANGUAGE_KEY = "9"
SWITCH_WORDS = {ENGLISH: "espanol", SPANISH: "english"}
# Twilio's speech recognition and text-to-speech for each language: US Spanish recognition, and
# Amazon Polly's US Spanish voice (Lupe) through Twilio's <Say voice="Polly.Lupe">.
SPEECH_LANGUAGE = {ENGLISH: "en-US", SPANISH: "es-US"}
VOICES = {ENGLISH: {"language": "en-US"}, SPANISH: {"language": "es-US", "voice": "Polly.Lupe"}}


def xml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="text/xml")


def say(node: Any, template: str, lang: str, *, voice: str | None = None, **context: Any) -> None:
    """Speak a template of `lang` with the voice of that language (or of `voice`)."""
    node.say(speak(template, lang=lang, **context), **VOICES.get(voice or lang, VOICES[ENGLISH]))


def other(lang: str) -> str:
    return ENGLISH if lang == SPANISH else SPANISH


def url(path: str, **params: Any) -> str:
    return f"{services().settings.public_base_url}/twilio/voice{path}?{urlencode(params)}"


def once_per_step(view):
    """One effect per CallSid step: the first answer is stored and replayed to duplicates.

    Runs under the caller's lock, so two deliveries of one step cannot both act.
    """

    @wraps(view)
    def wrapper(*args, **kwargs):
        form = request.form
        call_sid, caller = form.get("CallSid") or "", form.get("From") or ""
        if not SID_RE.match(call_sid):
            return plain("CallSid missing or malformed", 400)
        key = sender_key(caller, services().settings.default_region) or "anonymous"
        step = "|".join([call_sid, request.path, request.query_string.decode("latin-1")[:300],
                         (form.get("Digits") or "")[:20], (form.get("SpeechResult") or "")[:200],
                         (form.get("DialCallStatus") or "")[:20]])
        svc = services()
        try:
            with pymongo.timeout(svc.settings.voice_store_timeout_seconds), \
                    Engine(svc).phone_lock(key, svc.settings.phone_lock_wait_seconds):
                done = svc.voice_steps.answered(step)
                if done:
                    return Response(done, mimetype="text/xml")
                response = view(key, *args, **kwargs)
                svc.voice_steps.keep(step, response.get_data(as_text=True), key)
                return response
        except Busy:
            return plain("busy with this caller's previous step; retry", 503)
        except (PyMongoError, RedisError) as exc:
            # Twilio would answer a 5xx with its own "application error" and hang up (it does not
            # retry a call): say it in our words and send the caller to SMS, which keeps a text
            # in MongoDB through a Redis outage and in Redis through a MongoDB one.
            log.error("store_unavailable", error=type(exc).__name__)
            response = VoiceResponse()
            say(response, "trouble", ENGLISH)
            response.hangup()
            return xml(response)

    return twilio_signed(wrapper)


# -- the call comes in ---------------------------------------------------------------------

@bp.post("")
@once_per_step
def incoming(caller: str):
    svc = services()
    response = VoiceResponse()
    if not is_textable(caller):
        say(response, "no_number", ENGLISH)
        response.hangup()
        return xml(response)
    driver = svc.drivers.by_phone(caller)
    if driver:
        return xml(_driver_menu(driver, response))
    rescue = svc.rescues.open_for_rider(caller)
    if rescue:
        return xml(_rider_menu(rescue, response))
    convo = svc.conversations.load(caller, role="rider")
    lang = convo.language
    if convo.state not in rider.INTAKE:  # nothing half-done by text: start afresh
        outcome = Engine(svc).voice_step(caller, f"{request.form['CallSid']}:start", "")
        if outcome is None:
            return xml(_too_many(response, lang))
        convo_state, data, lang = outcome.state, outcome.data, outcome.language
        say(response, "welcome", lang)
    else:
        convo_state, data = convo.state, convo.data
    return xml(_prompt(convo_state, data, response, tries=1, lang=lang))


# -- intake ---------------------------------------------------------------------------------

def _gather(response: VoiceResponse, state: str, tries: int, lang: str, speech: bool = False):
    """A question of the intake; speech in the caller's language where a place is asked for."""
    kwargs: dict[str, Any] = {"input": "speech dtmf", "speech_timeout": "auto", "language": SPEECH_LANGUAGE[lang],
                              "hints": _hints()} if speech else {"input": "dtmf", "num_digits": 1}
    # The language is in the URL so that the same question asked again after a switch is a new step.
    return response.gather(action=url("/intake", expect=state, tries=tries, lang=lang), method="POST",
                           timeout=GATHER_TIMEOUT, action_on_empty_result=True, **kwargs)


def _hints() -> str:
    """Speech recognition does better when told the place names it should expect."""
    return ", ".join(services().locator.gazetteer.names()[:HINTS_MAX])


def _prompt(state: str, data: dict[str, Any], response: VoiceResponse, tries: int, lang: str) -> VoiceResponse:
    """Ask the question of `state` (the rider flow's state) by voice, in `lang`; the first time a
    place is asked for, the other language is offered on a key, in that language's own voice."""
    if state == rider.ASK_LOCATION:
        gather = _gather(response, state, tries, lang, speech=True)
        say(gather, "ask_location", lang)
        if tries == 1:
            say(gather, "language_offer", lang, voice=other(lang))  # its words are the other language's
    elif state == rider.PICK_LOCATION:
        say(_gather(response, state, tries, lang), "pick_place", lang, choices=data.get("choices") or [])
    elif state == rider.CONFIRM_PICKUP:
        say(_gather(response, state, tries, lang), "confirm_pickup", lang, place=data["pickup"]["label"])
    elif state == rider.ASK_PROBLEM:
        say(_gather(response, state, tries, lang), "ask_problem", lang)
    elif state == rider.CONFIRM:
        cents = int(data["quote"]["cents"])
        say(_gather(response, state, tries, lang), "quote", lang, pickup=data["pickup"]["label"],
            dollars=cents // 100, cents=cents % 100)
    else:  # a state with nothing to ask by voice (a drop-off list from a text, say)
        say(response, "fallback_sms", lang)
        response.hangup()
    return response


@bp.post("/intake")
@once_per_step
def intake(caller: str):
    svc, form = services(), request.form
    expect = request.args.get("expect", "")
    try:
        tries = max(1, min(int(request.args.get("tries", "1")), MAX_TRIES))
    except ValueError:
        tries = 1
    convo = svc.conversations.load(caller, role="rider")
    lang = convo.language
    response = VoiceResponse()
    if convo.state != expect:  # the conversation moved on (a text in between): ask what is next
        return xml(_prompt(convo.state, convo.data, response, tries=1, lang=lang))
    digits = (form.get("Digits") or "").strip()
    said = (form.get("SpeechResult") or digits).strip()
    if digits == LANGUAGE_KEY and not form.get("SpeechResult"):
        said = SWITCH_WORDS[lang]  # the rider flow switches, and the question is asked again
    elif expect in (rider.CONFIRM, rider.CONFIRM_PICKUP):
        said = KEYPAD_WORDS.get(said, said)
    if not said:
        return xml(_retry(caller, convo.state, convo.data, response, tries, "no_input", lang=lang))
    step_key = f"{form['CallSid']}:{expect}:{tries}:{lang}"  # a language switch asks the same question anew
    outcome = Engine(svc).voice_step(caller, step_key, said)
    if outcome is not None and outcome.state == rider.ASK_DROPOFF:  # drop-offs are settled with the driver
        skipped = Engine(svc).voice_step(caller, f"{step_key}:skip", "skip")
        outcome = outcome.then(skipped) if skipped else None
    if outcome is None:
        return xml(_too_many(response, lang))
    if outcome.language != lang:  # switched: the same question in the other language
        return xml(_prompt(outcome.state, outcome.data, response, tries=1, lang=outcome.language))
    if outcome.said("crash_safety") is not None:
        say(response, "crash_safety", lang)
    if outcome.state == rider.ACTIVE and outcome.rescue:
        return xml(_booked(caller, outcome, response, lang))
    if outcome.state == rider.IDLE:
        say(response, "declined", lang)
        response.hangup()
        return xml(response)
    if outcome.state == expect:  # not understood, not found or refused: say why, ask again
        reason, context = _reason(outcome)
        return xml(_retry(caller, outcome.state, outcome.data, response, tries, reason, context, lang=lang))
    return xml(_prompt(outcome.state, outcome.data, response, tries=1, lang=lang))


def _too_many(response: VoiceResponse, lang: str) -> VoiceResponse:
    """Over the per-number flood limit: a calm answer rather than a step."""
    say(response, "too_many", lang)
    response.hangup()
    return response


def _reason(outcome: StepResult) -> tuple[str, dict[str, Any]]:
    refused = outcome.said("outside_area")
    if refused is not None:
        return "outside_area", refused
    if outcome.said("place_not_found") is not None or outcome.said("geocoder_unavailable") is not None:
        return "not_found", {}
    return "not_understood", {}


def _retry(caller: str, state: str, data: dict[str, Any], response: VoiceResponse, tries: int,
           reason: str, context: dict[str, Any] | None = None, *, lang: str) -> VoiceResponse:
    """Say why, then ask again; after the last try, carry on by text where the call left off."""
    say(response, reason, lang, **(context or {}))
    if tries >= MAX_TRIES:
        _text_intake_prompt(caller, state, data, lang)
        say(response, "fallback_sms", lang)
        response.hangup()
        return response
    return _prompt(state, data, response, tries + 1, lang)


def _text_intake_prompt(caller: str, state: str, data: dict[str, Any], lang: str) -> None:
    """The SMS question for where the call stopped, so a reply picks up the same conversation."""
    template = {rider.ASK_PROBLEM: "problem_unclear", rider.CONFIRM_PICKUP: "confirm_pickup",
                rider.CONFIRM: "confirm_unclear"}.get(state, "ask_location")
    context = {"place": (data.get("pickup") or {}).get("label"),
               "quote_cents": (data.get("quote") or {}).get("cents")}
    _run(caller, [SendText(template, context, key=f"voice-fallback:{request.form['CallSid']}")], lang=lang)


def _run(phone: str, effects: list, driver: Driver | None = None, lang: str = ENGLISH) -> Turn:
    """A call's own effects, through the engine like any text's, in the caller's language."""
    turn = Turn(phone, f"call:{request.form['CallSid']}", channel=m.VOICE, driver=driver,
                lang=driver.language if driver else lang)
    return Engine(services()).run(turn, effects)


def _booked(caller: str, outcome: StepResult, response: VoiceResponse, lang: str) -> VoiceResponse:
    rescue = outcome.rescue
    _run(caller, [SendText("rescue_confirmed", {"rescue": rescue}, key=f"voice-booked:{rescue.id}",
                           rescue_id=rescue.id)], lang=lang)
    say(response, "booked", lang, code=rescue.code, textable=is_textable(caller))
    response.hangup()
    log.info("voice_booked", rescue_id=rescue.id, phone=mask(caller))
    return response


# -- callers with a rescue: riders and drivers ----------------------------------------------

def _rider_menu(rescue, response: VoiceResponse) -> VoiceResponse:
    driver = services().drivers.get(rescue.driver_id) if rescue.driver_id else None
    gather = response.gather(input="dtmf", num_digits=1, timeout=GATHER_TIMEOUT,
                             action=url("/rider", rescue=rescue.id), method="POST")
    say(gather, "rider_status", rescue.language, rescue=rescue, driver=driver)
    say(gather, "rider_menu", rescue.language, driver=driver)
    return response


@bp.post("/rider")
@once_per_step
def rider_choice(caller: str):
    svc = services()
    rescue = svc.rescues.get(request.args.get("rescue", ""))
    response = VoiceResponse()
    if rescue is None or rescue.rider_phone != caller or not rescue.is_open:
        lang = rescue.language if rescue else svc.conversations.load(caller, role="rider").language
        say(response, "offer_gone" if rescue is None else "declined", lang)
        response.hangup()
        return xml(response)
    digit = request.form.get("Digits", "")
    driver = svc.drivers.get(rescue.driver_id) if rescue.driver_id else None
    if digit == "1" and driver:
        return xml(_dial(response, driver.phone, rescue.id, to="driver", lang=rescue.language))
    if digit == "2":
        _run(caller, [CancelRescue(rescue.id, "cancelled by rider on a call")], lang=rescue.language)
        say(response, "rider_cancelled", rescue.language)
        response.hangup()
        return xml(response)
    return xml(_rider_menu(rescue, response))


def _driver_menu(driver: Driver, response: VoiceResponse) -> VoiceResponse:
    svc = services()
    if driver.status == OFFERED and driver.offer_id:
        offer = svc.offers.get(driver.offer_id)
        rescue = svc.rescues.get(offer.rescue_id) if offer and offer.status == of.OPEN else None
        if rescue:
            say(response.gather(input="dtmf", num_digits=1, timeout=GATHER_TIMEOUT, method="POST",
                                action=url("/driver", offer=offer.id)), "driver_offer", driver.language, rescue=rescue)
            return response
    if driver.status == ON_JOB and driver.rescue_id:
        rescue = svc.rescues.get(driver.rescue_id)
        if rescue and rescue.is_open:
            say(response.gather(input="dtmf", num_digits=1, timeout=GATHER_TIMEOUT, method="POST",
                                action=url("/driver", job=rescue.id)), "driver_job", driver.language, rescue=rescue)
            return response
    say(response, "driver_idle", driver.language, driver=driver)
    response.hangup()
    return response


@bp.post("/driver")
@once_per_step
def driver_choice(caller: str):
    svc = services()
    driver = svc.drivers.by_phone(caller)
    response = VoiceResponse()
    digit = request.form.get("Digits", "")
    if driver is None:
        response.hangup()
        return xml(response)
    offer_id, job_id = request.args.get("offer"), request.args.get("job")
    if offer_id and digit in ("1", "2"):
        lang = driver.language
        if driver.offer_id != offer_id:
            say(response, "offer_gone", lang)
        elif digit == "1":
            (result,) = _run(caller, [Accept()], driver=driver).results
            if isinstance(result, Accepted):
                details = {"rescue": result.rescue, "job_url": result.job_url}
                _run(caller, [SendText("job_details", details, key=f"voice-job:{offer_id}",
                                       rescue_id=result.rescue.id)], driver=driver)
                say(response, "driver_accepted", lang, rescue=result.rescue)
            else:
                say(response, "offer_gone", lang)
        else:
            _run(caller, [Decline()], driver=driver)
            say(response, "driver_declined", lang)
        response.hangup()
        return xml(response)
    if job_id and digit == "1" and driver.rescue_id == job_id:
        rescue = svc.rescues.get(job_id)
        if rescue and rescue.is_open:
            return xml(_dial(response, rescue.rider_phone, rescue.id, to="rider", lang=driver.language))
    return xml(_driver_menu(driver, response))


# -- masked calls -----------------------------------------------------------------------------

def _dial(response: VoiceResponse, number: str, rescue_id: str, to: str, lang: str) -> VoiceResponse:
    """Connect through the rescue number: the caller ID each side sees is ours, never the other's."""
    say(response, "connecting", lang)
    dial = response.dial(caller_id=services().settings.twilio_phone_number, timeout=DIAL_TIMEOUT,
                         action=url("/dial-done", rescue=rescue_id, to=to), method="POST")
    dial.number(number)
    return response


@bp.post("/dial-done")
@once_per_step
def dial_done(caller: str):
    """The masked call's outcome goes on the timeline; a failed one becomes a text."""
    svc = services()
    rescue = svc.rescues.get(request.args.get("rescue", ""))
    status = (request.form.get("DialCallStatus") or "").lower()[:20]
    to = request.args.get("to", "")
    response = VoiceResponse()
    if rescue is None or to not in ("rider", "driver"):
        response.hangup()
        return xml(response)
    caller_role = "driver" if to == "rider" else "rider"
    effects: list = [RecordCall(rescue.id, to, status, (request.form.get("DialCallDuration") or "")[:10],
                                by=f"{caller_role}:call")]
    caller_driver = svc.drivers.get(rescue.driver_id) if caller_role == "driver" and rescue.driver_id else None
    lang = caller_driver.language if caller_driver else rescue.language
    if status != "completed":
        effects.append(TextParty(rescue.id, to, "call_missed", key=f"call-missed:{request.form['CallSid']}"))
        say(response, "call_failed", lang)
    _run(caller, effects, lang=lang)
    response.hangup()
    return xml(response)
