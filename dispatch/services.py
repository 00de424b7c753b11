"""Wiring: one `Services` per process, built from `Settings`, shared by web and jobs."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import redis as redis_lib
from pymongo.database import Database
from rq import Queue

from dispatch.config import Settings, load_settings
from dispatch.drivers import DriverStore
from dispatch.geocoding import Gazetteer, Locator, NominatimGeocoder
from dispatch.messaging import Delivery, OptOuts, Outbox
from dispatch.pricing import Quote, quote, surge_multiplier
from dispatch.rescue_store import RescueStore
from dispatch.storage import connect, ensure_indexes
from dispatch import jobs


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: redis_lib.Redis

    @cached_property
    def queue(self) -> Queue:
        return Queue(self.settings.queue_name, connection=self.redis)

    @cached_property
    def rescues(self) -> RescueStore:
        return RescueStore(self.db)

    @cached_property
    def drivers(self) -> DriverStore:
        return DriverStore(self.db)

    @cached_property
    def optouts(self) -> OptOuts:
        return OptOuts(self.db)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.db, enqueue_send=lambda message_id: jobs.enqueue_send(self.queue, message_id))

    @cached_property
    def locator(self) -> Locator:
        geocoder = NominatimGeocoder(self.settings, self.redis) if self.settings.geocoder == "nominatim" else None
        return Locator(Gazetteer.builtin(), geocoder)

    @cached_property
    def delivery(self) -> Delivery:
        from dispatch.twilio_gateway import SandboxSender, TwilioSender

        sender = SandboxSender() if self.settings.sandbox else TwilioSender(self.settings)
        callback = f"{self.settings.public_base_url}/twilio/status"
        return Delivery(self.db, sender, self.optouts, callback)

    def current_quote(self, trip_miles: float) -> Quote:
        surge = surge_multiplier(self.rescues.count_open() + 1, self.drivers.count_online(),
                                 self.settings.pricing.surge_cap)
        return quote(self.settings.pricing, trip_miles, surge)


def redis_client(settings: Settings) -> redis_lib.Redis:
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (python app.py starts an embedded server)")
    # RQ stores pickled bytes, so responses are not decoded.
    return redis_lib.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5,
                                    health_check_interval=30)


def build_services(settings: Settings) -> Services:
    db = connect(settings)
    ensure_indexes(db)
    return Services(settings=settings, db=db, redis=redis_client(settings))


_worker_services: Services | None = None


def worker_services() -> Services:
    """The services of a worker process, built on first use from its environment."""
    global _worker_services
    if _worker_services is None:
        _worker_services = build_services(load_settings())
    return _worker_services
