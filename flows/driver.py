"""The driver's SMS commands (PRODUCT.md §4 "Driver by SMS").

A driver's state is their dispatch status (offline, available, offered, on_job), kept on
the driver record by the dispatcher, which makes every change atomically. This machine
is the grammar over those states: which commands each state accepts, and so what to
list when a text is not understood. The step returns effects; it changes nothing itself.
"""
from __future__ import annotations

import re
from typing import Any

from transitions import Machine

from dispatch.drivers import AVAILABLE, OFFERED, OFFLINE, ON_JOB
from dispatch.geocoding import GeocoderUnavailable, Locator
from flows import words
from flows.effects import DriverCommand, Relay, Reply

STATES = [OFFLINE, AVAILABLE, OFFERED, ON_JOB]
TRANSITIONS = [
    {"trigger": "go_online", "source": [OFFLINE, AVAILABLE], "dest": AVAILABLE},
    {"trigger": "go_offline", "source": [OFFLINE, AVAILABLE, OFFERED], "dest": OFFLINE},
    {"trigger": "accept", "source": OFFERED, "dest": ON_JOB},
    {"trigger": "decline", "source": OFFERED, "dest": AVAILABLE},
    {"trigger": "drive", "source": ON_JOB, "dest": ON_JOB},
    {"trigger": "arrive", "source": ON_JOB, "dest": ON_JOB},
    {"trigger": "load", "source": ON_JOB, "dest": ON_JOB},
    {"trigger": "complete", "source": ON_JOB, "dest": AVAILABLE},
    {"trigger": "drop", "source": ON_JOB, "dest": AVAILABLE},
    {"trigger": "locate", "source": STATES, "dest": None},
    {"trigger": "status", "source": STATES, "dest": None},
]
MACHINE = Machine(model=None, states=STATES, transitions=TRANSITIONS, initial=OFFLINE, auto_transitions=False)

WORDS = {
    "on": "go_online", "online": "go_online", "on duty": "go_online",
    "off": "go_offline", "offline": "go_offline", "off duty": "go_offline",
    "arrived": "arrive", "here": "arrive", "im here": "arrive", "i'm here": "arrive",
    "omw": "drive", "on my way": "drive", "enroute": "drive", "en route": "drive",
    "loaded": "load", "done": "complete", "complete": "complete", "finished": "complete",
    "drop": "drop", "status": "status",
}
# What to show for each trigger in the "what works" list.
SHOWN = {"go_online": "ON", "go_offline": "OFF", "accept": "Y (accept)", "decline": "N (pass)",
         "arrive": "ARRIVED", "load": "LOADED", "complete": "DONE", "drop": "DROP",
         "locate": "AT <place> or a map pin", "status": "STATUS"}
ANSWER = re.compile(r"^(y|yes|yep|accept|ok|n|no|pass|nope)(?:\s+r?\s*(\d{3,6}))?$")
ACCEPT_WORDS = {"y", "yes", "yep", "accept", "ok"}


def commands_for(status: str) -> str:
    """The commands a driver in `status` can use, e.g. for an unknown text."""
    state = status if status in STATES else OFFLINE
    return ", ".join(SHOWN[t] for t in MACHINE.get_triggers(state) if t in SHOWN)


def step(driver: dict[str, Any], text: str, locator: Locator) -> list:
    normal = words.normalise(text)
    status = driver.get("status", OFFLINE)
    answer = ANSWER.match(normal)
    if answer and not (status == ON_JOB and not answer.group(2)):  # on a job, "ok" is for the rider
        name = "accept" if answer.group(1) in ACCEPT_WORDS else "decline"
        return [DriverCommand(name, code=answer.group(2))]  # late answers get an honest reply
    if normal in WORDS:
        trigger = WORDS[normal]
        if trigger in MACHINE.get_triggers(status if status in STATES else OFFLINE):
            return [DriverCommand(trigger)]
        return [Reply("driver_status", {"driver": driver})]
    try:
        if normal.startswith("at "):
            hits = locator.resolve(words.clean(text)[3:])
            found = hits[0] if hits else None  # the label goes back, so a wrong guess is seen
        else:
            found = locator.spot_in_message(text)
    except GeocoderUnavailable:
        found = None
    if found:
        return [DriverCommand("locate", place=found.to_json())]
    if normal.startswith("at "):
        return [Reply("driver_location_unknown")]
    if status == ON_JOB and normal:
        return [Relay(words.clean(text))]
    return [Reply("driver_unknown", {"commands": commands_for(status)})]
