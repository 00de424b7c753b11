"""The periodic sweep: MongoDB is the record, so anything in flight that Redis lost (a
flush, a restart, a worker killed mid-job) is found there and driven on again."""
from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from dispatch.clock import now_ms
from dispatch.rescues import SEARCHING

if TYPE_CHECKING:
    from dispatch.services import Services

log = structlog.get_logger(__name__)

EXPIRY_GRACE_MS = 2000
ACCEPTING_STUCK_MS = 30_000
DISPATCH_OVERDUE_MS = 5000
PENDING_TEXT_MS = 15_000
# A send gives up after 10 s (dispatch.twilio_gateway); three times that and its worker is gone.
SENDING_STUCK_MS = 30_000
DRIVER_STUCK_MS = 30_000
LINK_OVERDUE_MS = 20_000  # the link job takes milliseconds; 20 s means it died
# An unapplied inbound text older than this lost its drain (or came in while Redis was down).
INBOUND_STUCK_MS = 5_000
EVENT_STUCK_MS = 5_000  # handlers take milliseconds; an event unhandled this long lost its process
BATCH = 200


class Sweeper:
    def __init__(self, svc: "Services") -> None:
        self.svc = svc

    def sweep(self) -> dict[str, int]:
        svc, db, now = self.svc, self.svc.db, now_ms()
        counts = {"geo_rebuilt": 0, "offers_expired": 0, "accepting_resolved": 0, "drivers_freed": 0,
                  "rescues_redriven": 0, "texts_requeued": 0, "texts_reconciled": 0, "links_redriven": 0,
                  "inbound_redriven": 0, "events_redelivered": 0}
        if not svc.redis.exists("geo:drivers:built"):
            svc.geo.rebuild()
            counts["geo_rebuilt"] = 1
        for offer in db.offers.find({"status": "open", "expires_at": {"$lt": now - EXPIRY_GRACE_MS}}).limit(BATCH):
            counts["offers_expired"] += svc.dispatcher.expire(offer["_id"]) == "expired"
        for offer in db.offers.find({"status": "accepting", "answered_at": {"$lt": now - ACCEPTING_STUCK_MS}}).limit(BATCH):
            svc.dispatcher.resolve_stuck_acceptance(offer)
            counts["accepting_resolved"] += 1
        counts["drivers_freed"] = svc.dispatcher.free_stranded_drivers(now - DRIVER_STUCK_MS)
        for rescue in db.rescues.find({"status": SEARCHING, "next_dispatch_at": {"$lt": now - DISPATCH_OVERDUE_MS}},
                                      {"_id": 1}).limit(BATCH):
            if not db.offers.count_documents({"rescue_id": rescue["_id"], "status": {"$in": ["open", "accepting"]}}):
                svc.jobs.now("dispatch_rescue", rescue["_id"])
                counts["rescues_redriven"] += 1
        # A completed rescue whose payment-link job died with its worker.
        for rescue in db.rescues.find({"status": "completed", "payment_status": "none",
                                       "updated_at": {"$lt": now - LINK_OVERDUE_MS}}, {"_id": 1}).limit(BATCH):
            svc.jobs.payment_link(rescue["_id"])
            counts["links_redriven"] += 1
        # Inbound texts recorded but not applied (the drain was lost with Redis or a killed
        # worker, or a number was busy): kick the inbound drain; a waiting one absorbs the kick.
        if db.messages.find_one({"direction": "in", "channel": "sms", "processed": False,
                                 "created_at": {"$lt": now - INBOUND_STUCK_MS}}, {"_id": 1}):
            svc.jobs.kick_inbound()
            counts["inbound_redriven"] = 1
        counts["events_redelivered"] = svc.events.redeliver(now - EVENT_STUCK_MS)
        counts["texts_requeued"] = svc.outbox.requeue_pending(now - PENDING_TEXT_MS)
        for msg in db.messages.find({"direction": "out", "status": "sending",
                                     "claimed_at": {"$lt": now - SENDING_STUCK_MS}}).limit(BATCH):
            svc.delivery.reconcile(msg)
            counts["texts_reconciled"] += 1
        if any(counts.values()):
            log.info("sweep", **counts)
        return counts
