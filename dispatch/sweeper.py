"""The periodic sweep: the MongoDB records are the truth, so anything in flight that Redis
lost (a flush, a restart, a worker killed mid-job) is found there and driven on again."""
from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from dispatch.bus import EventBus
from dispatch.dispatcher import Dispatcher
from dispatch.holding import release
from dispatch.matching import Matcher
from dispatch.messaging import CLAIM_DEAD_MS, Delivery, Outbox
from dispatch.model.clock import now_ms
from dispatch.ports import HeldTexts, MessageStore, OfferRepository, RescueRepository, Scheduler
from dispatch.privacy import Privacy

log = structlog.get_logger(__name__)

EXPIRY_GRACE_MS = 2000
ACCEPTING_STUCK_MS = 30_000
DISPATCH_OVERDUE_MS = 5000
PENDING_TEXT_MS = 15_000
# A send gives up after 10 s (the Twilio adapter's timeout); three times that and its worker is gone.
SENDING_STUCK_MS = 30_000
DRIVER_STUCK_MS = 30_000
LINK_OVERDUE_MS = 20_000  # the link job takes milliseconds; 20 s means it died
# An unapplied inbound text older than this lost its drain (or came in while Redis was down).
INBOUND_STUCK_MS = 5_000
EVENT_STUCK_MS = 5_000  # handlers take milliseconds; an event unhandled this long lost its process
BATCH = 200
RETENTION_EVERY_MS = 60_000  # erasure by age is a matter of days: once a minute per process is plenty


@dataclass
class Sweeper:
    matcher: Matcher
    dispatcher: Dispatcher
    rescues: RescueRepository
    offers: OfferRepository
    messages: MessageStore
    outbox: Outbox
    delivery: Delivery
    bus: EventBus
    scheduler: Scheduler
    held: HeldTexts | None = None
    privacy: Privacy | None = None
    _retention_due: int = field(default=0, init=False)

    def sweep(self) -> dict[str, int]:
        now = now_ms()
        counts = {"geo_rebuilt": 0, "offers_expired": 0, "accepting_resolved": 0, "drivers_freed": 0,
                  "rescues_redriven": 0, "texts_requeued": 0, "texts_reconciled": 0, "links_redriven": 0,
                  "inbound_redriven": 0, "events_redelivered": 0, "held_recorded": 0,
                  "lanes_unblocked": 0}
        if self.held is not None:  # first: the rest of the sweep needs MongoDB anyway
            counts["held_recorded"] = release(self.held, self.messages)
            if counts["held_recorded"]:
                self.scheduler.kick_inbound()
        if not self.matcher.geo.is_built():
            self.matcher.rebuild()
            counts["geo_rebuilt"] = 1
        for offer in self.offers.expired_open(now - EXPIRY_GRACE_MS, BATCH):
            counts["offers_expired"] += self.dispatcher.expire(offer.id) == "expired"
        for offer in self.offers.stuck_accepting(now - ACCEPTING_STUCK_MS, BATCH):
            self.dispatcher.resolve_stuck_acceptance(offer)
            counts["accepting_resolved"] += 1
        counts["drivers_freed"] = self.dispatcher.free_stranded_drivers(now - DRIVER_STUCK_MS)
        for rescue_id in self.rescues.overdue_searching(now - DISPATCH_OVERDUE_MS, BATCH):
            if not self.offers.count_live(rescue_id):
                self.scheduler.dispatch(rescue_id)
                counts["rescues_redriven"] += 1
        # A completed rescue whose payment-link job died with its worker.
        for rescue_id in self.rescues.completed_without_link(now - LINK_OVERDUE_MS, BATCH):
            self.scheduler.payment_link(rescue_id)
            counts["links_redriven"] += 1
        # Inbound texts recorded but not applied (the drain was lost with Redis or a killed
        # worker, or a number was busy): kick the inbound drain; a waiting one absorbs the kick.
        if self.messages.unapplied_before(now - INBOUND_STUCK_MS):
            self.scheduler.kick_inbound()
            counts["inbound_redriven"] = 1
        counts["events_redelivered"] = self.bus.redeliver(now - EVENT_STUCK_MS)
        if self.privacy is not None and now >= self._retention_due:
            self._retention_due = now + RETENTION_EVERY_MS
            counts["personal_data_erased"] = self.privacy.erase_expired(now)
        counts["texts_requeued"] = self.outbox.requeue_pending(now - PENDING_TEXT_MS)
        for msg in self.messages.stuck_sending(now - CLAIM_DEAD_MS, BATCH):
            if int(msg.get("claimed_at") or 0) < now - SENDING_STUCK_MS:
                self.delivery.reconcile(msg)
                counts["texts_reconciled"] += 1
            else:  # the texts after it need not wait for the reconciling
                counts["lanes_unblocked"] += self.delivery.unblock(msg["phone"])
        if any(counts.values()):
            log.info("sweep", **counts)
        return counts
