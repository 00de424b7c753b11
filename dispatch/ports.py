"""The interfaces the business rules talk to; `dispatch.adapters` implements them.

Stores return model objects (or plain dicts for messages and ledger entries, which the
rules only pass along), conditional updates are named for what they guard, and errors
are the ones defined here, so nothing in the rules knows which database, queue or vendor
is behind a port. In-memory fakes of these ports are in tests/dispatch/fakes.py.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from dispatch.model.driver import Driver
from dispatch.model.events import Event
from dispatch.model.geo import Point
from dispatch.model.help_request import HelpRequest
from dispatch.model.link import Link
from dispatch.model.offer import Offer
from dispatch.model.rescue import Rescue


class _Any:
    """Matches whatever the field holds (for the optional conditions of a conditional update)."""

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()


# -- errors ---------------------------------------------------------------------------------
class SendFailed(Exception):
    """A carrier error. `transient` ones are retried with backoff; the rest are final."""

    def __init__(self, message: str, *, code: int | None = None, transient: bool, opted_out: bool = False) -> None:
        super().__init__(message)
        self.code, self.transient, self.opted_out = code, transient, opted_out


class PaymentUnavailable(RuntimeError):
    """The payment provider could not be reached or refused; the job retries."""


class GeocoderUnavailable(RuntimeError):
    """A place lookup outside the service could not answer: the geocoder (timeout, error, rate
    limit) or the host of a short map link."""


class MapLinkUnreadable(GeocoderUnavailable):
    """A short map link that could not be followed to a location: its host did not answer in
    time, sent us somewhere we do not follow, or led to a page with no place in it."""


class RoutingUnavailable(RuntimeError):
    """The routing engine could not answer in time (down, slow, no route): estimate instead."""


class Busy(RuntimeError):
    """A lock could not be taken in time: somebody else is changing the same thing; retry."""


# -- stores ---------------------------------------------------------------------------------
class RescueRepository(Protocol):
    def next_seq(self) -> int: ...
    def add(self, rescue: Rescue) -> bool:
        """False when a rescue with the same request key exists."""
    def get(self, rescue_id: str) -> Rescue | None: ...
    def by_request_key(self, key: str) -> Rescue | None: ...
    def open_for_rider(self, phone: str) -> Rescue | None: ...
    def by_code(self, code: str) -> Rescue | None: ...
    def list(self, status: str | None = None, limit: int = 50, offset: int = 0) -> list[Rescue]: ...
    def count_open(self) -> int: ...
    def count_by_status(self) -> dict[str, int]: ...
    def on_board(self, unfulfilled_since: int, limit: int) -> list[Rescue]:
        """Open rescues, and those given up since `unfulfilled_since`, newest first."""
    def created_since(self, since: int) -> dict[str, int]:
        """Rescue id -> created_at for rescues created since `since`."""
    def compare_and_set(self, rescue_id: str, version: int, status: str, fields: dict[str, Any]) -> Rescue | None:
        """Set `fields` if the rescue still has this version and status; the rescue after, or None."""
    def set_fields(self, rescue_id: str, fields: dict[str, Any]) -> None:
        """Bookkeeping that is not a lifecycle change (payment totals, notices sent)."""
    def claim_next_dispatch(self, rescue_id: str, now: int, due: int) -> bool:
        """Book the follow-up dispatch at `due` unless one is already booked after `now`, while
        the rescue is still searching (a search that read it just before a cancel books nothing)."""
    def claim_rider_update(self, rescue_id: str, last: int | None, now: int) -> bool:
        """Take the rider's next "still searching" update, while the rescue is still searching."""
    def waiting_for_retry(self, now: int, limit: int) -> list[str]:
        """Searching rescues whose follow-up is booked after `now`, oldest first."""
    def overdue_searching(self, before: int, limit: int) -> list[str]: ...
    def completed_without_link(self, before: int, limit: int) -> list[str]: ...
    def claim_payment_link(self, rescue_id: str, current_session: str | None, payable: Collection[str],
                           fields: dict[str, Any]) -> bool: ...
    def bump_payment_attempt(self, rescue_id: str, expected: int | None, attempt: int) -> None: ...
    def rate(self, rescue_id: str, stars: int, comment: str, at: int) -> Rescue | None:
        """Record the rating unless the rescue has one; the rescue, or None."""
    def latest_completed(self, rider_phone: str, updated_since: int) -> Rescue | None: ...
    def claim_arriving(self, rescue_id: str, event_id: str, at: int) -> bool:
        """Mark the rescue's driver as arriving, by this location event, unless it already is."""


class RiderRepository(Protocol):
    def count_rescue(self, phone: str, at: int) -> None: ...


class DriverRepository(Protocol):
    def add(self, driver: Driver) -> None:
        """Raises DuplicateDriver when the phone is registered."""
    def get(self, driver_id: str) -> Driver | None: ...
    def by_phone(self, phone: str) -> Driver | None: ...
    def many(self, ids: Iterable[str]) -> dict[str, Driver]: ...
    def all(self) -> list[Driver]: ...
    def list(self, limit: int = 100, offset: int = 0) -> list[Driver]: ...
    def available(self) -> list[Driver]: ...
    def count_online(self, active_only: bool = True) -> int: ...
    def update_profile(self, driver_id: str, fields: dict[str, Any]) -> Driver | None: ...
    def move(self, driver_id: str, sources: Collection[str] | None, *, holding_offer: Any = ANY,
             on_rescue: Any = ANY, **fields: Any) -> Driver | None:
        """Set `fields` if the driver's status is one of `sources` (None: any) and they hold
        that offer / rescue (ANY: whatever they hold); the driver after, or None."""
    def set_location(self, driver_id: str, location: dict[str, Any], at: int) -> Driver | None: ...
    def unchanged_since(self, status: str, before: int) -> list[Driver]: ...
    def add_rating(self, driver_id: str, stars: int) -> None: ...


class OfferRepository(Protocol):
    def add(self, offer: Offer) -> None: ...
    def get(self, offer_id: str) -> Offer | None: ...
    def move(self, offer_id: str, sources: Collection[str] | None, **fields: Any) -> Offer | None:
        """Set `fields` if the offer's status is one of `sources` (None: any); the offer after, or None."""
    def claim_unexpired(self, offer_id: str, now: int) -> Offer | None:
        """open -> accepting, if it has not run out."""
    def count_live(self, rescue_id: str) -> int: ...
    def for_rescue(self, rescue_id: str, status: str | None = None) -> list[Offer]: ...
    def latest_for_driver(self, driver_id: str, rescue_code: str | None = None) -> Offer | None: ...
    def recent_for_driver(self, driver_id: str, since: int, limit: int) -> list[Offer]:
        """The driver's offers made since `since`, newest first."""
    def drop_accepted(self, rescue_id: str, driver_id: str) -> None: ...
    def expired_open(self, before: int, limit: int) -> list[Offer]: ...
    def stuck_accepting(self, before: int, limit: int) -> list[Offer]: ...


class EventStore(Protocol):
    def append(self, event: Event, handled: bool) -> None: ...
    def mark_handled(self, event_id: str) -> None: ...
    def unhandled(self, older_than: int, limit: int) -> list[tuple[Event, int]]:
        """Events whose handlers did not all finish, each with how often it was handed out again."""
    def count_redelivery(self, event_id: str) -> None: ...
    def give_up(self, event_id: str) -> None: ...
    def timeline(self, rescue_id: str) -> list[dict[str, Any]]: ...
    def of_types_since(self, types: Collection[str], since: int) -> list[Event]: ...


class MessageStore(Protocol):
    """Texts in and out, as plain dicts; receipts are delivery callbacks kept by carrier sid."""
    def add(self, doc: dict[str, Any]) -> bool:
        """False when a text with the same key exists."""
    def add_many(self, docs: list[dict[str, Any]]) -> list[bool]:
        """`add` for each doc, in order, in one round trip (a doc whose key an earlier doc of
        the same call took is a duplicate too)."""
    def by_key(self, key: str) -> dict[str, Any] | None: ...
    def get(self, message_id: str) -> dict[str, Any] | None: ...
    def unsent(self, limit: int) -> list[dict[str, Any]]:
        """Never-tried pending outbound texts, oldest first (id, phone, created_at)."""
    def unfinished(self, limit: int) -> list[dict[str, Any]]:
        """Outbound texts still pending or sending, to any number, in the order they were queued."""
    def unfinished_to(self, phone: str, limit: int) -> list[dict[str, Any]]:
        """Outbound texts to `phone` still pending or sending, in the order they were queued."""
    def stale_pending(self, older_than: int, limit: int) -> list[str]: ...
    def touch(self, message_id: str) -> None: ...
    def claim(self, message_id: str, at: int) -> dict[str, Any] | None:
        """pending -> sending, counting the attempt; the text, or None if it was not pending."""
    def finish(self, message_id: str, expect: str, status: str, **fields: Any) -> dict[str, Any] | None:
        """`expect` -> `status`; the text as it was (with its `waited_on` and `receipt_early`
        marks), or None if it was not `expect`."""
    def withdraw_queued(self, phone: str, error_code: str | None) -> int:
        """pending -> suppressed for every text out to `phone` (its number opted out); how many."""
    def wait_behind(self, message_id: str) -> bool:
        """Mark a text mid-send so its lane looks again after finishing it; False when it is no
        longer mid-send (the caller looks again itself)."""
    def expect_receipt(self) -> None:
        """Mark every text mid-send: a receipt came for a sid no text has yet, so each of them
        reads its receipt once its sid is stored."""
    def stuck_sending(self, claimed_before: int, limit: int) -> list[dict[str, Any]]: ...
    def has_sid(self, twilio_sid: str) -> bool: ...
    def keep_receipt(self, twilio_sid: str, fields: dict[str, Any]) -> None: ...
    def receipt(self, twilio_sid: str) -> dict[str, Any] | None: ...
    def advance(self, twilio_sid: str, fields: dict[str, Any]) -> bool:
        """Apply a delivery status unless the text already has a later one."""
    def unapplied_before(self, before: int) -> bool: ...


class HeldTexts(Protocol):
    """Inbound texts kept outside MongoDB while it is unreachable, oldest first."""
    def hold(self, sid: str, doc: dict[str, Any]) -> bool:
        """False when a text with this MessageSid is already held."""
    def oldest(self, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """(entry id, the inbound record) pairs, in the order they were held."""
    def drop(self, entry_id: str) -> None: ...


class PersonalData(Protocol):
    """Erasure across the stores: bodies and full numbers go, the accounting record stays."""
    def forget(self, phone: str) -> dict[str, int]:
        """One rider's, at once; counts per kind of record."""
    def erase_before(self, before: int, limit: int) -> dict[str, int]:
        """Records older than `before` (epoch ms), at most `limit` of each kind."""


class HelpRequestStore(Protocol):
    def add(self, request: HelpRequest) -> bool:
        """False when the phone already has an open request."""
    def get(self, request_id: str) -> HelpRequest | None: ...
    def open_for(self, phone: str) -> HelpRequest | None: ...
    def list(self, status: str | None, limit: int, offset: int) -> list[HelpRequest]:
        """Newest first."""
    def resolve(self, request_id: str, by: str, note: str, at: int) -> HelpRequest | None:
        """Resolve it if it is open; the request after, or None."""


class LinkStore(Protocol):
    """Live links (dispatch.model.link): one per key, found by the hash of their token."""
    def add(self, link: Link) -> Link:
        """Keep `link` unless its key has one already; the key's link either way."""
    def for_key(self, key: str) -> Link | None: ...
    def by_hash(self, token_hash: str) -> Link | None: ...
    def replace(self, key: str, old_hash: str, link: Link) -> Link | None:
        """Give the key's link a new token if it still has the old one; the link after, or None."""


class OptOutRegistry(Protocol):
    def is_opted_out(self, phone: str) -> bool: ...
    def opt_out(self, phone: str, source: str) -> None: ...
    def opt_in(self, phone: str, source: str) -> None: ...


class Ledger(Protocol):
    """Payment sessions and refunds, as plain dicts."""
    def add(self, entry: dict[str, Any]) -> bool:
        """False when the entry (or its key) is already there."""
    def get(self, entry_id: str) -> dict[str, Any] | None: ...
    def update(self, entry_id: str, fields: dict[str, Any]) -> None: ...
    def entries(self, rescue_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Oldest first."""
    def session_for_intent(self, payment_intent: str) -> dict[str, Any] | None: ...
    def request_parts(self, request_key: str) -> list[dict[str, Any]]:
        """The refund entries of one refund request, in key order."""


class StripeEventLog(Protocol):
    def applied(self, event_id: str) -> bool: ...
    def mark_applied(self, event_id: str, fields: dict[str, Any]) -> None: ...
    def for_rescue(self, rescue_id: str) -> list[dict[str, Any]]: ...


# -- Redis-shaped helpers -------------------------------------------------------------------
class GeoIndex(Protocol):
    def put(self, driver_id: str, lat: float, lng: float) -> None: ...
    def remove(self, driver_id: str) -> None: ...
    def replace(self, positions: dict[str, tuple[float, float]]) -> None:
        """The whole index at once, marked as built."""
    def is_built(self) -> bool: ...
    def nearby(self, lat: float, lng: float, radius_km: float) -> list[tuple[str, float]]:
        """Driver ids and distances in km, nearest first."""


class ChangeFeed(Protocol):
    def publish(self, channel: str, payload: dict[str, Any]) -> None:
        """Tell whoever listens on `channel` (open pages) that something changed."""


class Locks(Protocol):
    def hold(self, name: str, ttl_seconds: float, wait_seconds: float) -> AbstractContextManager[bool]:
        """A lock across every process; yields whether it was taken within `wait_seconds`."""


class Scheduler(Protocol):
    """Background work, by what it is for. Failing to start a job is not an error: the
    records hold the state, and the sweeper starts whatever was not started."""
    def dispatch(self, rescue_id: str, delay: float = 0) -> None: ...
    def expire_offer(self, offer_id: str, after_seconds: float, rearm: bool = False) -> None:
        """The offer's timer (`rearm`: another one, from a timer that ran early)."""
    def cancel_expiry(self, offer_id: str) -> None:
        """The offer was answered: its first timer need not run (one that runs anyway, or a
        re-armed one, finds the offer closed and does nothing)."""
    def payment_link(self, rescue_id: str) -> None: ...
    def send_text(self, message_id: str, delay: float = 0) -> None: ...
    def retry_send(self, message_id: str) -> None:
        """A text that failed for now, again after the first back-off."""
    def kick_outbox(self) -> None: ...
    def kick_inbound(self) -> None: ...


# -- vendors --------------------------------------------------------------------------------
class Sender(Protocol):
    def send(self, to: str, body: str, status_callback: str | None) -> str:
        """Hand one text to the carrier; returns the carrier's message id. Raises SendFailed."""
    def find_sent(self, to: str, body: str, since_ms: int) -> list[str]:
        """Ids of texts the carrier has to `to` with this body since the claim (a send whose
        worker died may be among them)."""


class PaymentGateway(Protocol):
    def create_checkout(self, *, rescue_id: str, code: str, amount_cents: int,
                        idempotency_key: str) -> dict[str, Any]:
        """A checkout session: id, url, amount_total, expires_at. Raises PaymentUnavailable."""
    def refund(self, *, payment_intent: str, amount_cents: int, idempotency_key: str) -> dict[str, Any]:
        """A refund: id, amount, status. Raises PaymentUnavailable."""


class Router(Protocol):
    def drive_seconds(self, origin: Point, destination: Point) -> float:
        """Driving time by road. Raises RoutingUnavailable."""


class Geocoder(Protocol):
    def search(self, query: str) -> list[Point]:
        """Places matching `query` in the service area. Raises GeocoderUnavailable."""
    def reverse(self, point: Point) -> str | None:
        """A readable name for a point ("Broadway & W 14th St, Manhattan"), or None when the
        geocoder has none. Raises GeocoderUnavailable."""


class LinkResolver(Protocol):
    def resolve(self, url: str) -> str | None:
        """The URL a short map link (maps.app.goo.gl/...) redirects to, followed only through
        the map services' own hosts; None when it leads nowhere we follow. Raises
        GeocoderUnavailable when the link's host does not answer in time."""


class Metrics(Protocol):
    def text_out(self, status: str, error_code: str) -> None: ...
    def text_in(self, channel: str, outcome: str) -> None: ...
    def offer_outcome(self, event: Event) -> None: ...
    def time_to_assign(self, seconds: float) -> None: ...
