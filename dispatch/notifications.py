"""Who hears what when a rescue changes: texts that follow from domain events.

Each text is keyed on the event id and the recipient's role, so re-running a handler
never texts anyone twice.
"""
from __future__ import annotations

from typing import Any

from dispatch.config import Settings
from dispatch.links import Links
from dispatch.messaging import Outbox
from dispatch.model import events as ev
from dispatch.model import offer as of
from dispatch.model.driver import Driver
from dispatch.model.rescue import Rescue
from dispatch.ports import DriverRepository, OfferRepository, RescueRepository
from dispatch.texts import say
from dispatch.tracking import Tracking


class Notifier:
    def __init__(self, settings: Settings, outbox: Outbox, rescues: RescueRepository,
                 drivers: DriverRepository, offers: OfferRepository, tracking: Tracking, links: Links) -> None:
        self.settings, self.outbox = settings, outbox
        self.rescues, self.drivers, self.offers = rescues, drivers, offers
        self.tracking, self.links = tracking, links

    # -- helpers ---------------------------------------------------------------------------
    def _driver(self, driver_id: str | None) -> Driver | None:
        return self.drivers.get(driver_id) if driver_id else None

    def _text(self, event: ev.Event, role: str, to: Rescue | Driver | None, template: str, *, key: str | None = None,
              **context: Any) -> None:
        """To the rider (`to` their rescue) or a driver, in their own language; once per event
        and role unless `key` says what makes it one text."""
        if to is None:
            return
        phone = to.rider_phone if isinstance(to, Rescue) else to.phone
        self.outbox.queue_text(phone, say(template, lang=to.language, **context), key=key or f"evt:{event.id}:{role}",
                               rescue_id=event.rescue_id, kind=template)

    def _rescue(self, event: ev.Event) -> Rescue:
        return self.rescues.get(event.rescue_id)

    def _tell_rider_assigned(self, event: ev.Event, rescue: Rescue, driver: Driver) -> None:
        self._text(event, "rider", rescue, "rider_driver_assigned", rescue=rescue, driver=driver,
                   eta=self.tracking.eta_minutes(rescue, driver), track_url=self.links.track_url(rescue))

    def _job_details(self, event: ev.Event, rescue: Rescue, driver: Driver | None) -> None:
        if driver is not None:
            self._text(event, "driver", driver, "job_details", rescue=rescue,
                       job_url=self.links.job_url(rescue, driver.id))

    # -- handlers --------------------------------------------------------------------------
    def offer_made(self, event: ev.OfferMade) -> None:
        if event.redelivered:
            offer = self.offers.get(event.offer_id)
            if offer is None or offer.status != of.OPEN:
                return  # an offer that ran out before its text went: texting it now would mislead
        rescue, driver = self._rescue(event), self._driver(event.driver_id)
        self._text(event, "driver", driver, "driver_offer", rescue=rescue,
                   distance_km=event.distance_km, seconds=self.settings.offer_timeout_seconds)

    def offer_expired(self, event: ev.OfferExpired) -> None:
        driver = self._driver(event.driver_id)
        if event.taken_offline:
            self._text(event, "driver", driver, "driver_offline_missed", rescue=self._rescue(event),
                       missed=of.MISSED_IN_A_ROW_OFFLINE)
        else:
            self._text(event, "driver", driver, "driver_offer_expired", rescue=self._rescue(event))

    def offer_withdrawn(self, event: ev.OfferWithdrawn) -> None:
        driver = self._driver(event.driver_id)
        self._text(event, "driver", driver, "offer_taken", code=self._rescue(event).code)

    def driver_assigned(self, event: ev.DriverAssigned) -> None:
        rescue, driver = self._rescue(event), self._driver(event.driver_id)
        self._tell_rider_assigned(event, rescue, driver)
        if not event.by.startswith("driver:"):  # a driver who accepted already got the details as a reply
            self._job_details(event, rescue, driver)

    def driver_reassigned(self, event: ev.DriverReassigned) -> None:
        rescue, driver = self._rescue(event), self._driver(event.driver_id)
        previous = self._driver(event.previous_driver_id)
        self._tell_rider_assigned(event, rescue, driver)
        self._job_details(event, rescue, driver)
        self._text(event, "previous", previous, "driver_taken_off", rescue=rescue)

    def driver_arriving(self, event: ev.DriverArriving) -> None:
        """Once per rescue (the key), even if the event were ever made twice."""
        rescue = self._rescue(event)
        self._text(event, "rider", rescue, "rider_driver_arriving", key=f"arriving:{rescue.id}", rescue=rescue,
                   driver=self._driver(event.driver_id))

    def driver_arrived(self, event: ev.DriverArrived) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue, "rider_driver_arrived", rescue=rescue,
                   driver=self._driver(rescue.driver_id))

    def driver_dropped(self, event: ev.DriverDropped) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue, "rider_driver_dropped", rescue=rescue)

    def completed(self, event: ev.RescueCompleted) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue, "rider_completed", rescue=rescue)

    def cancelled(self, event: ev.RescueCancelled) -> None:
        rescue = self._rescue(event)
        if not event.by.startswith("rider"):  # riders who cancel get the flow's own reply
            self._text(event, "rider", rescue, "rider_cancelled_by_dispatch", rescue=rescue)
        driver = self._driver(rescue.driver_id)
        self._text(event, "driver", driver, "driver_job_cancelled", rescue=rescue)

    def unfulfilled(self, event: ev.RescueUnfulfilled) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue, "rider_unfulfilled", rescue=rescue)

    def still_searching(self, event: ev.StillSearching) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue, "rider_still_searching", rescue=rescue, minutes=event.minutes)

    def payment_link(self, event: ev.PaymentLinkSent) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue, "payment_link", rescue=rescue, url=event.url,
                   amount_cents=event.amount_cents)

    def payment_link_expired(self, event: ev.PaymentLinkExpired) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue, "payment_link_expired", rescue=rescue)

    def paid(self, event: ev.PaymentPaid) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue, "payment_receipt", rescue=rescue,
                   amount_cents=event.amount_cents)

    def payment_failed(self, event: ev.PaymentFailed) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue, "payment_failed", rescue=rescue)

    def refunded(self, event: ev.PaymentRefunded) -> None:
        rescue = self._rescue(event)
        self._text(event, "rider", rescue, "payment_refunded", rescue=rescue,
                   amount_cents=event.amount_cents)
