"""Who hears what when a rescue changes: texts that follow from domain events.

Each text is keyed on the event id and the recipient's role, so re-running a handler
never texts anyone twice.
"""
from __future__ import annotations

from typing import Any

from pymongo.database import Database

from dispatch import events as ev
from dispatch.config import Settings
from dispatch.dispatcher import eta_minutes
from dispatch.events import Event, EventLog
from dispatch.messaging import Outbox
from dispatch.rescue_store import RescueStore
from dispatch.rescues import Rescue
from dispatch.texts import say


class Notifier:
    def __init__(self, settings: Settings, db: Database, outbox: Outbox, rescues: RescueStore) -> None:
        self.settings, self.db, self.outbox, self.rescues = settings, db, outbox, rescues

    def subscribe(self, events: EventLog) -> None:
        for kind, handler in {
            ev.OFFER_MADE: self.offer_made, ev.OFFER_EXPIRED: self.offer_expired,
            ev.OFFER_WITHDRAWN: self.offer_withdrawn, ev.DRIVER_ASSIGNED: self.driver_assigned,
            ev.DRIVER_REASSIGNED: self.driver_reassigned, ev.DRIVER_ARRIVED: self.driver_arrived,
            ev.DRIVER_DROPPED: self.driver_dropped, ev.RESCUE_COMPLETED: self.completed,
            ev.RESCUE_CANCELLED: self.cancelled, ev.RESCUE_UNFULFILLED: self.unfulfilled,
            ev.STILL_SEARCHING: self.still_searching,
            ev.PAYMENT_LINK_SENT: self.payment_link, ev.PAYMENT_LINK_EXPIRED: self.payment_link_expired,
            ev.PAYMENT_PAID: self.paid, ev.PAYMENT_FAILED: self.payment_failed,
            ev.PAYMENT_REFUNDED: self.refunded,
        }.items():
            events.subscribe(kind, handler)

    # -- helpers ---------------------------------------------------------------------------
    def _driver(self, driver_id: str | None) -> dict[str, Any] | None:
        return self.db.drivers.find_one({"_id": driver_id}) if driver_id else None

    def _text(self, event: Event, role: str, phone: str | None, template: str, **context: Any) -> None:
        if phone:
            self.outbox.queue_text(phone, say(template, **context), key=f"evt:{event.id}:{role}",
                                   rescue_id=event.rescue_id, kind=template)

    def _rescue(self, event: Event) -> Rescue:
        return self.rescues.get(event.rescue_id)

    def _tell_rider_assigned(self, event: Event, rescue: Rescue, driver: dict[str, Any]) -> None:
        self._text(event, "rider", rescue.rider_phone, "rider_driver_assigned", rescue=rescue, driver=driver,
                   eta=eta_minutes(driver, rescue, self.settings.eta_speed_kmh))

    # -- handlers --------------------------------------------------------------------------
    def offer_made(self, event: Event) -> None:
        if event.redelivered and not self.db.offers.find_one({"_id": event.data.get("offer_id"), "status": "open"}):
            return  # an offer that ran out before its text went: texting it now would mislead
        rescue, driver = self._rescue(event), self._driver(event.data["driver_id"])
        self._text(event, "driver", driver and driver["phone"], "driver_offer", rescue=rescue,
                   distance_km=event.data["distance_km"], seconds=self.settings.offer_timeout_seconds)

    def offer_expired(self, event: Event) -> None:
        driver = self._driver(event.data["driver_id"])
        self._text(event, "driver", driver and driver["phone"], "driver_offer_expired", rescue=self._rescue(event))

    def offer_withdrawn(self, event: Event) -> None:
        driver = self._driver(event.data["driver_id"])
        self._text(event, "driver", driver and driver["phone"], "offer_taken",
                   code=self._rescue(event).code)

    def driver_assigned(self, event: Event) -> None:
        rescue, driver = self._rescue(event), self._driver(event.data["driver_id"])
        self._tell_rider_assigned(event, rescue, driver)
        if event.by == "dispatcher":  # a driver who accepted already got the details as a reply
            self._text(event, "driver", driver["phone"], "job_details", rescue=rescue)

    def driver_reassigned(self, event: Event) -> None:
        rescue, driver = self._rescue(event), self._driver(event.data["driver_id"])
        previous = self._driver(event.data.get("previous_driver_id"))
        self._tell_rider_assigned(event, rescue, driver)
        self._text(event, "driver", driver["phone"], "job_details", rescue=rescue)
        self._text(event, "previous", previous and previous["phone"], "driver_taken_off", rescue=rescue)

    def driver_arrived(self, event: Event) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue.rider_phone, "rider_driver_arrived", rescue=rescue,
                   driver=self._driver(rescue.driver_id))

    def driver_dropped(self, event: Event) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue.rider_phone, "rider_driver_dropped", rescue=rescue)

    def completed(self, event: Event) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue.rider_phone, "rider_completed", rescue=rescue)

    def cancelled(self, event: Event) -> None:
        rescue = self._rescue(event)
        if not event.by.startswith("rider"):  # riders who cancel get the flow's own reply
            self._text(event, "rider", rescue.rider_phone, "rider_cancelled_by_dispatch", rescue=rescue)
        driver = self._driver(rescue.driver_id)
        self._text(event, "driver", driver and driver["phone"], "driver_job_cancelled", rescue=rescue)

    def unfulfilled(self, event: Event) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue.rider_phone, "rider_unfulfilled", rescue=rescue)

    def still_searching(self, event: Event) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue.rider_phone, "rider_still_searching", rescue=rescue,
                   minutes=event.data.get("minutes"))

    def payment_link(self, event: Event) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue.rider_phone, "payment_link", rescue=rescue, url=event.data["url"],
                   amount_cents=event.data["amount_cents"])

    def payment_link_expired(self, event: Event) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue.rider_phone, "payment_link_expired", rescue=rescue)

    def paid(self, event: Event) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue.rider_phone, "payment_receipt", rescue=rescue,
                   amount_cents=event.data["amount_cents"])

    def payment_failed(self, event: Event) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue.rider_phone, "payment_failed", rescue=rescue)

    def refunded(self, event: Event) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue.rider_phone, "payment_refunded", rescue=rescue,
                   amount_cents=event.data["amount_cents"])
