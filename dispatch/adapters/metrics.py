"""The Metrics port on Prometheus. Counters and histograms are multi-process safe under
gunicorn and RQ when PROMETHEUS_MULTIPROC_DIR is set (the launcher sets it); figures the
stores already hold (rescues by status, queue depth, failed jobs) are read at scrape time.

Also the store round-trip counters: every MongoDB command (a pymongo `CommandListener`) and
every Redis command (a redis-py connection class, so pipelines count each queued command,
and so does whatever wraps the client above it), by kind, so /metrics and bench/rescue_cost.py
can say what one rescue costs the stores.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import redis
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from pymongo import monitoring
from rq import Queue

from dispatch.model import events as ev

WEBHOOK_SECONDS = Histogram("supportcarr_webhook_seconds", "Webhook answer time", ["route"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
MESSAGES_IN = Counter("supportcarr_messages_in_total", "Inbound texts and call steps", ["channel", "outcome"])
MESSAGES_OUT = Counter("supportcarr_messages_out_total", "Outbound texts by final send status",
                       ["status", "error_code"])
OFFERS = Counter("supportcarr_offers_total", "Offers by outcome", ["outcome"])
TIME_TO_ASSIGN = Histogram("supportcarr_time_to_assign_seconds", "Rescue requested to driver assigned",
                           buckets=(5, 10, 20, 30, 60, 120, 300, 600, 900, 1800))
OFFER_OUTCOMES = {ev.OfferMade: "made", ev.OfferDeclined: "declined", ev.OfferExpired: "expired",
                  ev.OfferWithdrawn: "withdrawn", ev.DriverAssigned: "accepted"}
MONGO_OPS = Counter("supportcarr_mongo_ops_total", "MongoDB commands sent", ["command", "collection"])
REDIS_COMMANDS = Counter("supportcarr_redis_commands_total", "Redis commands sent", ["command"])
CONTENT_TYPE = CONTENT_TYPE_LATEST
OUTCOME_LABEL_MAX = 40


class PrometheusMetrics:
    def text_out(self, status: str, error_code: str) -> None:
        MESSAGES_OUT.labels(status, error_code).inc()

    def text_in(self, channel: str, outcome: str) -> None:
        # Outcomes like "rider:ask_location" are few and fixed; anything else is folded.
        MESSAGES_IN.labels(channel, outcome if len(outcome) <= OUTCOME_LABEL_MAX else "other").inc()

    def offer_outcome(self, event: ev.Event) -> None:
        OFFERS.labels(OFFER_OUTCOMES[type(event)]).inc()

    def time_to_assign(self, seconds: float) -> None:
        TIME_TO_ASSIGN.observe(max(0.0, seconds))

    def webhook_seconds(self, route: str, seconds: float) -> None:
        WEBHOOK_SECONDS.labels(route).observe(seconds)


class MongoOpCounter(monitoring.CommandListener):
    """Counts each command pymongo sends (retries and getMores included: each is a round trip)."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str], object] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        key = (event.command_name, target if isinstance(target, str) else "")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = MONGO_OPS.labels(*key)
        child.inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


_redis_children: dict[bytes | str, object] = {}


def _count_redis(name: bytes | str) -> None:
    child = _redis_children.get(name)
    if child is None:
        label = name.decode() if isinstance(name, bytes) else str(name)
        child = _redis_children[name] = REDIS_COMMANDS.labels(label.upper())
    child.inc()


class _CountedCommands:
    """Mixed into the connection that talks to the server: single commands go through
    `send_command`, pipelines and transactions (MULTI and EXEC included) through `pack_commands`."""

    def send_command(self, *args, **kwargs):
        _count_redis(args[0])
        return super().send_command(*args, **kwargs)

    def pack_commands(self, commands):
        commands = list(commands)
        for command in commands:
            _count_redis(command[0])
        return super().pack_commands(commands)


class _CountedTcp(_CountedCommands, redis.connection.Connection):
    pass


class _CountedTls(_CountedCommands, redis.connection.SSLConnection):
    pass


class _CountedUnix(_CountedCommands, redis.connection.UnixDomainSocketConnection):
    pass


_COUNTED_BY_SCHEME = {"redis": _CountedTcp, "rediss": _CountedTls, "unix": _CountedUnix}


class CountedRedis(redis.Redis):
    """`redis.Redis` whose connections count their commands; also what
    `rq worker --connection-class` builds, so RQ's own round trips are counted too."""

    @classmethod
    def from_url(cls, url: str, **kwargs) -> CountedRedis:
        kwargs.setdefault("connection_class", _COUNTED_BY_SCHEME[url.split("://", 1)[0]])
        return super().from_url(url, **kwargs)


class _StoreCollector:
    """Gauges computed from the stores when Prometheus scrapes."""

    def __init__(self, count_by_status: Callable[[], dict[str, int]], queues: Iterable[Queue]) -> None:
        self.count_by_status, self.queues = count_by_status, list(queues)

    def collect(self):
        rescues = GaugeMetricFamily("supportcarr_rescues", "Rescues by status", labels=["status"])
        for status, count in self.count_by_status().items():
            rescues.add_metric([status], count)
        yield rescues
        depth = GaugeMetricFamily("supportcarr_queue_depth", "Jobs waiting in the RQ queue", labels=["queue"])
        failed = GaugeMetricFamily("supportcarr_failed_jobs", "Jobs in RQ's failed registry", labels=["queue"])
        for queue in self.queues:
            depth.add_metric([queue.name], queue.count)
            failed.add_metric([queue.name], queue.failed_job_registry.count)
        yield depth
        yield failed


def render(count_by_status: Callable[[], dict[str, int]], queues: Iterable[Queue]) -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    stores = CollectorRegistry()
    stores.register(_StoreCollector(count_by_status, queues))
    return generate_latest(counted) + generate_latest(stores)
