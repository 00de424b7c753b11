"""The driver's SMS commands (PRODUCT.md §4 "Driver by SMS").

A driver's state is their dispatch status (offline, available, offered, on_job), kept on
the driver record by the dispatcher, which makes every change atomically. This machine is
built from the one table of which command is legal in which status
(`dispatch.model.driver.LIFECYCLE`): it is the grammar over those statuses, and so what to
list when a text is not understood. The step returns effects and changes nothing itself;
`reply_for` puts the dispatcher's answer to a command into words.
"""
from __future__ import annotations

from transitions import Machine

from dispatch import dispatcher as d
from dispatch.model.driver import LIFECYCLE, OFFLINE, ON_JOB, STATUSES, Driver
from dispatch.model.help_request import ASKED
from dispatch.places import Locator
from dispatch.ports import GeocoderUnavailable
from flows import words
from flows.commands import ACCEPT, DECLINE
from flows.effects import (
    Accept,
    Decline,
    Drop,
    Effect,
    GoOffline,
    GoOnline,
    JobStep,
    Locate,
    OpenHelpRequest,
    Relay,
    Reply,
)

# The dispatcher's own moves (offer, assign) are not a driver's commands.
DRIVER_COMMANDS = {"go_online", "go_offline", "accept", "decline", "drive", "arrive", "load", "complete", "drop",
                   "locate", "status"}
MACHINE = Machine(model=None, states=list(STATUSES), initial=OFFLINE, auto_transitions=False,
                  transitions=[{"trigger": command, "source": sources, "dest": dest}
                               for command, sources, dest in LIFECYCLE if command in DRIVER_COMMANDS])

COMMAND_EFFECTS = {"go_online": GoOnline, "go_offline": GoOffline, "drop": Drop}
JOB_STEPS = ("drive", "arrive", "load", "complete")
# What to show for each trigger in the "what works" list.
SHOWN = {"go_online": "ON", "go_offline": "OFF", "accept": "Y (accept)", "decline": "N (pass)",
         "arrive": "ARRIVED", "load": "LOADED", "complete": "DONE", "drop": "DROP",
         "locate": "AT <place> or a map pin", "status": "STATUS"}


def commands_for(status: str) -> str:
    """The commands a driver in `status` can use, e.g. for an unknown text."""
    state = status if status in STATUSES else OFFLINE
    return ", ".join(SHOWN[t] for t in MACHINE.get_triggers(state) if t in SHOWN)


def _command(trigger: str) -> Effect | None:
    if trigger in JOB_STEPS:
        return JobStep(trigger)
    effect = COMMAND_EFFECTS.get(trigger)
    return effect() if effect else None


def step(driver: Driver, text: str, locator: Locator) -> list[Effect]:
    if words.looks_automated(text):
        return []  # a phone's auto-reply ("I'm driving...") answered would answer back
    if words.intent(text) is words.Intent.HUMAN:
        return [OpenHelpRequest(ASKED, words.clean(text), driver.rescue_id), Reply("human_requested")]
    normal = words.normalise(text)
    status = driver.status if driver.status in STATUSES else OFFLINE
    said = words.driver_command(text)  # English or Spanish, typos and all: "Y 1042", "omw", "llegué"
    if said and said.trigger in (ACCEPT, DECLINE):
        if not (status == ON_JOB and not said.code):  # on a job, a bare "ok" is for the rider
            return [Accept(said.code) if said.trigger == ACCEPT else Decline()]  # late answers get an honest reply
    elif said:
        command = _command(said.trigger) if said.trigger in MACHINE.get_triggers(status) else None
        return [command] if command else [Reply("driver_status", {"driver": driver})]
    try:
        if normal.startswith("at "):
            hits = locator.resolve(words.clean(text)[3:])
            found = hits[0] if hits else None  # the label goes back, so a wrong guess is seen
        else:
            found = locator.spot_in_message(text)
    except GeocoderUnavailable:
        found = None
    if found:
        return [Locate(found.to_json())]
    if normal.startswith("at "):
        return [Reply("driver_location_unknown")]
    if status == ON_JOB and normal:
        return [Relay(words.clean(text))]
    return [Reply("driver_unknown", {"commands": commands_for(status)})]


def reply_for(result: d.DriverResult) -> Reply:
    """The dispatcher's answer to a driver's command, in words."""
    match result:
        case d.Accepted(rescue, job_url):
            return Reply("job_details", {"rescue": rescue, "job_url": job_url})
        case d.Declined(code):
            return Reply("offer_declined", {"code": code})
        case d.OfferTaken(code):
            return Reply("offer_taken", {"code": code})
        case d.OfferTooLate(code):
            return Reply("offer_too_late", {"code": code})
        case d.NoOpenOffer():
            return Reply("no_open_offer")
        case d.OtherOfferOpen(asked, open_code):
            return Reply("offer_other_open", {"asked": asked, "open": open_code})
        case d.NoJob():
            return Reply("no_job")
        case d.JobProgress(action, rescue, repeat):
            return Reply(f"job_{action}", {"rescue": rescue, "repeat": repeat})
        case d.JobRefused(action, rescue):
            return Reply("job_action_refused", {"action": action, "rescue": rescue})
        case d.Dropped(rescue):
            return Reply("job_dropped", {"rescue": rescue})
        case d.DriverBusy(driver):
            return Reply("driver_status", {"driver": driver})
        case d.Online(driver, needs_location):
            return Reply("driver_online_need_location" if needs_location else "driver_online", {"driver": driver})
        case d.Offline():
            return Reply("driver_offline")
        case d.OfflineRefused():
            return Reply("driver_offline_refused")
        case d.Located(driver, place):
            return Reply("driver_location", {"driver": driver, "place": place})
    raise TypeError(f"no words for {result!r}")
