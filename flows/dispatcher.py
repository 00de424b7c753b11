"""A dispatcher's commands by text (PRODUCT.md §8): `LIST`, `STATUS R1004`,
`ASSIGN R1004 <driver name or last 4 digits>`, `CANCEL R1004 <reason>`, `HELP`.

No state of its own: each text is one command. The step turns a text into an effect; the
engine has `dispatch.shift` act under the sender's role, and `reply_for` puts the result into
words. Spanish verbs work too (LISTA, ESTADO, ASIGNAR, CANCELAR, AYUDA).
"""
from __future__ import annotations

import re

from dispatch import shift as s
from flows import words
from flows.effects import DeskCommand, Effect, Reply

VERBS = {
    "list": "list", "lista": "list", "l": "list",
    "status": "status", "estado": "status",
    "assign": "assign", "asignar": "assign", "asigna": "assign",
    "cancel": "cancel", "cancelar": "cancel", "cancela": "cancel",
    "help": "help", "ayuda": "help", "info": "help", "?": "help",
}
NEEDS_CODE = ("status", "assign", "cancel")
CODE = re.compile(r"^#?r?(\d{3,})$", re.IGNORECASE)
REASON_MAX = 200


def step(text: str) -> list[Effect]:
    parts = words.clean(text).split()
    verb = VERBS.get(parts[0].lower()) if parts else None
    if verb is None:
        return [Reply("desk_unknown")]
    if verb == "help":
        return [Reply("desk_help")]
    if verb == "list":
        return [DeskCommand("list")]
    code = CODE.match(parts[1]) if len(parts) > 1 else None
    if code is None:
        return [Reply("desk_needs_code", {"verb": verb.upper()})]
    rest = " ".join(parts[2:])
    if verb == "assign" and not rest:
        return [Reply("desk_needs_driver", {"code": f"R{code.group(1)}"})]
    return [DeskCommand(verb, f"R{code.group(1)}", rest[:REASON_MAX])]


def reply_for(result: s.DeskResult) -> Reply:
    match result:
        case s.Listing():
            return Reply("desk_list", {"listing": result})
        case s.Standing(rescue, driver):
            return Reply("desk_status", {"rescue": rescue, "driver": driver})
        case s.Assigned(rescue, driver):
            return Reply("desk_assigned", {"rescue": rescue, "driver": driver})
        case s.Cancelled(rescue):
            return Reply("desk_cancelled", {"rescue": rescue})
        case s.NotAllowed(role, needed):
            return Reply("desk_not_allowed", {"role": role, "needed": needed})
        case s.UnknownRescue(code):
            return Reply("desk_unknown_rescue", {"code": code})
        case s.DriverNotFound(who):
            return Reply("desk_driver_not_found", {"who": who})
        case s.DriverAmbiguous(who, names):
            return Reply("desk_driver_ambiguous", {"who": who, "names": names})
        case s.Refused(code, reason):
            return Reply("desk_refused", {"code": code, "reason": reason})
    raise TypeError(f"no words for {result!r}")
