"""A dispatcher's shift by text (PRODUCT.md §8 "When the web is down, dispatchers text"): the
open rescues and help requests in brief, one rescue's standing, assigning and cancelling,
under the same roles as the page. Returns typed results; the dispatcher flow chooses the words.
"""
from __future__ import annotations

from dataclasses import dataclass

from dispatch.board import Board
from dispatch.dispatcher import Dispatcher
from dispatch.model import help_request as hr
from dispatch.model.account import DISPATCHER, Identity, may
from dispatch.model.driver import ON_JOB, Driver
from dispatch.model.errors import DomainError
from dispatch.model.rescue import Rescue, SearchTerms
from dispatch.ports import DriverRepository, HelpRequestStore, RescueRepository

LIST_RESCUES = 3
LIST_HELP = 2


@dataclass(frozen=True)
class Listing:
    rescues: list[dict]  # board rows: code, status, flags, driver; flagged first
    more: int
    help_requests: list[hr.HelpRequest]
    help_more: int


@dataclass(frozen=True)
class Standing:
    rescue: Rescue
    driver: Driver | None


@dataclass(frozen=True)
class Assigned:
    rescue: Rescue
    driver: Driver


@dataclass(frozen=True)
class Cancelled:
    rescue: Rescue


@dataclass(frozen=True)
class NotAllowed:
    role: str
    needed: str


@dataclass(frozen=True)
class UnknownRescue:
    code: str


@dataclass(frozen=True)
class DriverNotFound:
    who: str


@dataclass(frozen=True)
class DriverAmbiguous:
    who: str
    names: list[str]


@dataclass(frozen=True)
class Refused:
    code: str
    reason: str


DeskResult = (Listing | Standing | Assigned | Cancelled | NotAllowed | UnknownRescue | DriverNotFound
              | DriverAmbiguous | Refused)


class Shift:
    def __init__(self, board: Board, rescues: RescueRepository, drivers: DriverRepository, dispatcher: Dispatcher,
                 help_requests: HelpRequestStore) -> None:
        self.board, self.rescues, self.drivers = board, rescues, drivers
        self.dispatcher, self.help_requests = dispatcher, help_requests

    def listing(self) -> Listing:
        rows = self.board.board()["rescues"]  # flagged first, then the longest waiting
        waiting = self.help_requests.list(hr.OPEN, LIST_HELP + 1, 0)
        return Listing(rows[:LIST_RESCUES], max(0, len(rows) - LIST_RESCUES), waiting[:LIST_HELP],
                       max(0, len(waiting) - LIST_HELP))

    def _rescue(self, code: str) -> Rescue | None:
        terms = SearchTerms.of(code)
        return self.rescues.by_code(terms.code) if terms.code else None

    def standing(self, code: str) -> DeskResult:
        rescue = self._rescue(code)
        if rescue is None:
            return UnknownRescue(code)
        return Standing(rescue, self.drivers.get(rescue.driver_id) if rescue.driver_id else None)

    def assign(self, who: Identity, code: str, driver_words: str) -> DeskResult:
        if not may(who.role, DISPATCHER):
            return NotAllowed(who.role, DISPATCHER)
        rescue = self._rescue(code)
        if rescue is None:
            return UnknownRescue(code)
        found = self.find_driver(driver_words)
        if not isinstance(found, Driver):
            return found
        try:
            assigned = self.dispatcher.assign(rescue.id, found.id, by=who.by)
        except DomainError as exc:
            return Refused(rescue.code, str(exc))
        return Assigned(assigned, found)

    def cancel(self, who: Identity, code: str, reason: str) -> DeskResult:
        if not may(who.role, DISPATCHER):
            return NotAllowed(who.role, DISPATCHER)
        rescue = self._rescue(code)
        if rescue is None:
            return UnknownRescue(code)
        try:
            return Cancelled(self.dispatcher.cancel(rescue.id, reason or "cancelled by dispatcher", by=who.by))
        except DomainError as exc:
            return Refused(rescue.code, str(exc))

    def find_driver(self, words: str) -> Driver | DriverNotFound | DriverAmbiguous:
        """An active driver by the last 4+ digits of their phone, or by name (whole, or first
        name) when only one fits; free drivers win over ones on a job."""
        wanted = " ".join(words.lower().split())
        digits = "".join(c for c in wanted if c.isdigit())
        drivers = [d for d in self.drivers.all() if d.active]
        if len(digits) >= 4 and digits == wanted.replace(" ", ""):
            hits = [d for d in drivers if d.phone.endswith(digits)]
        else:
            hits = [d for d in drivers if d.name.lower() == wanted] or [
                d for d in drivers if d.name.lower().split()[:1] == [wanted]]
        if len(hits) > 1:
            free = [d for d in hits if d.status != ON_JOB]
            hits = free if len(free) == 1 else hits
        if not hits:
            return DriverNotFound(words)
        if len(hits) > 1:
            return DriverAmbiguous(words, sorted(d.name for d in hits))
        return hits[0]
