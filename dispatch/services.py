"""Wiring: one `Services` per process, built from `Settings`, shared by web and jobs."""
from __future__ import annotations

from functools import cached_property

import redis as redis_lib
import structlog
from pymongo.database import Database
from pymongo.errors import PyMongoError
from rq import Queue

from dispatch import metrics
from dispatch.config import Settings, load_settings
from dispatch.dispatcher import Dispatcher
from dispatch.drivers import DriverStore
from dispatch.events import EventLog
from dispatch.geocoding import Gazetteer, Locator, NominatimGeocoder
from dispatch.jobs import Jobs, urgent_queue_name
from dispatch.matching import GeoIndex
from dispatch.messaging import Delivery, OptOuts, Outbox
from dispatch.notifications import Notifier
from dispatch.payments import Payments
from dispatch.pricing import Quote, quote, surge_multiplier
from dispatch.rescue_store import RescueStore
from dispatch.storage import connect, ensure_indexes
from dispatch.sweeper import Sweeper

log = structlog.get_logger(__name__)


class Services:
    """Everything a request or a job needs, wired once. Construction does no I/O."""

    def __init__(self, settings: Settings, db: Database, redis: redis_lib.Redis) -> None:
        self.settings, self.db, self.redis = settings, db, redis
        self.queue = Queue(settings.queue_name, connection=redis)
        self.jobs = Jobs(self.queue, Queue(urgent_queue_name(settings.queue_name), connection=redis))
        self.events = EventLog(db)
        self.rescues = RescueStore(db, self.events)
        self.drivers = DriverStore(db)
        self.optouts = OptOuts(db)
        self.outbox = Outbox(db, kick=self.jobs.kick_sends, enqueue_send=self.jobs.send)
        self.geo = GeoIndex(redis, db.drivers)
        self.dispatcher = Dispatcher(settings, db, redis, self.rescues, self.geo, self.events, self.jobs)
        self.notifier = Notifier(settings, db, self.outbox, self.rescues)
        self.payments = Payments(db, redis, self.rescues, self.events, self.jobs, self._gateway())
        self.dispatcher.subscribe()
        self.notifier.subscribe(self.events)
        self.payments.subscribe()
        metrics.subscribe(self)

    def _gateway(self):
        from dispatch.stripe_gateway import SandboxGateway, StripeGateway

        return StripeGateway(self.settings) if self.settings.stripe_secret_key else SandboxGateway(self.settings)

    @cached_property
    def locator(self) -> Locator:
        geocoder = NominatimGeocoder(self.settings, self.redis) if self.settings.geocoder == "nominatim" else None
        return Locator(Gazetteer.builtin(), geocoder)

    @cached_property
    def sender(self):
        from dispatch.twilio_gateway import SandboxSender, TwilioSender

        return SandboxSender() if self.settings.sandbox else TwilioSender(self.settings)

    @cached_property
    def delivery(self) -> Delivery:
        return Delivery(self.db, self.sender, self.optouts, f"{self.settings.public_base_url}/twilio/status")

    @cached_property
    def sweeper(self) -> Sweeper:
        return Sweeper(self)

    def current_quote(self, trip_miles: float) -> Quote:
        surge = surge_multiplier(self.rescues.count_open() + 1, self.drivers.count_online(),
                                 self.settings.pricing.surge_cap)
        return quote(self.settings.pricing, trip_miles, surge)

    def driver_pay(self, quote_cents: int) -> int:
        return int(quote_cents * self.settings.driver_share + 0.5)


def redis_client(settings: Settings) -> redis_lib.Redis:
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (python app.py starts an embedded server)")
    # RQ stores pickled bytes, so responses are not decoded.
    return redis_lib.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5,
                                    health_check_interval=30)


def build_services(settings: Settings) -> Services:
    """Connect and make sure the indexes exist. A process that starts while MongoDB is down
    (a web worker replaced mid-outage, say) still starts: it answers 503s and /healthz until
    the store is back, and the next process to start creates whatever index is missing."""
    db = connect(settings)
    try:
        ensure_indexes(db)
    except PyMongoError as exc:
        log.warning("indexes_not_checked", error=type(exc).__name__)
    return Services(settings=settings, db=db, redis=redis_client(settings))


_worker_services: Services | None = None


def worker_services() -> Services:
    """The services of a worker process, built on first use from its environment."""
    global _worker_services
    if _worker_services is None:
        _worker_services = build_services(load_settings())
    return _worker_services
