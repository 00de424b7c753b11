"""Prometheus metrics. Counters and histograms are multi-process safe under gunicorn and
RQ when PROMETHEUS_MULTIPROC_DIR is set (the launcher sets it); figures that MongoDB and
Redis already hold (rescues by status, queue depth, failed jobs) are read at scrape time.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from dispatch import events as ev
from dispatch.events import Event

if TYPE_CHECKING:
    from dispatch.services import Services

WEBHOOK_SECONDS = Histogram("supportcarr_webhook_seconds", "Webhook answer time", ["route"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
MESSAGES_IN = Counter("supportcarr_messages_in_total", "Inbound texts and call steps", ["channel", "outcome"])
MESSAGES_OUT = Counter("supportcarr_messages_out_total", "Outbound texts by final send status",
                       ["status", "error_code"])
OFFERS = Counter("supportcarr_offers_total", "Offers by outcome", ["outcome"])
TIME_TO_ASSIGN = Histogram("supportcarr_time_to_assign_seconds", "Rescue requested to driver assigned",
                           buckets=(5, 10, 20, 30, 60, 120, 300, 600, 900, 1800))
OFFER_OUTCOMES = {ev.OFFER_MADE: "made", ev.OFFER_DECLINED: "declined", ev.OFFER_EXPIRED: "expired",
                  ev.OFFER_WITHDRAWN: "withdrawn", ev.DRIVER_ASSIGNED: "accepted"}
CONTENT_TYPE = CONTENT_TYPE_LATEST


def outcome_label(outcome: str) -> str:
    """Inbound outcomes like "rider:ask_location" are few and fixed; anything else is folded."""
    return outcome if len(outcome) <= 40 else "other"


def subscribe(svc: "Services") -> None:
    def offers(event: Event) -> None:
        OFFERS.labels(OFFER_OUTCOMES[event.type]).inc()

    def assigned(event: Event) -> None:
        rescue = svc.rescues.get(event.rescue_id)
        if rescue:
            TIME_TO_ASSIGN.observe(max(0.0, (event.at - rescue.created_at) / 1000))

    for kind in OFFER_OUTCOMES:
        svc.events.subscribe(kind, offers)
    svc.events.subscribe(ev.DRIVER_ASSIGNED, assigned)


class _StoreCollector:
    """Gauges computed from the stores when Prometheus scrapes."""

    def __init__(self, svc: "Services") -> None:
        self.svc = svc

    def collect(self):
        from dispatch.rescues import STATUSES

        rescues = GaugeMetricFamily("supportcarr_rescues", "Rescues by status", labels=["status"])
        for status in STATUSES:
            rescues.add_metric([status], self.svc.db.rescues.count_documents({"status": status}))
        yield rescues
        depth = GaugeMetricFamily("supportcarr_queue_depth", "Jobs waiting in the RQ queue", labels=["queue"])
        failed = GaugeMetricFamily("supportcarr_failed_jobs", "Jobs in RQ's failed registry", labels=["queue"])
        for queue in self.svc.jobs.queues:
            depth.add_metric([queue.name], queue.count)
            failed.add_metric([queue.name], queue.failed_job_registry.count)
        yield depth
        yield failed


def render(svc: "Services") -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    stores = CollectorRegistry()
    stores.register(_StoreCollector(svc))
    return generate_latest(counted) + generate_latest(stores)
