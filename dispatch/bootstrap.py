"""Wiring: one `Services` per process, built from `Settings`, shared by web and jobs; and
the one table of which handlers each domain event has.

Everything is constructed here and handed its dependencies as ports, so the business
rules never reach for a database, a queue or a vendor themselves, and tests build the same
rules (`Core`) over in-memory fakes (tests/dispatch/fakes.py).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import cached_property

import redis as redis_lib
import structlog
from pymongo.database import Database
from pymongo.errors import PyMongoError
from rq import Queue

from dispatch.adapters.metrics import CountedRedis, MongoOpCounter, PrometheusMetrics
from dispatch.adapters.mongo import connect, ensure_indexes
from dispatch.adapters.mongo.accounts import MongoAccounts
from dispatch.adapters.mongo.conversations import MongoConversations, MongoVoiceSteps
from dispatch.adapters.mongo.drivers import MongoDrivers
from dispatch.adapters.mongo.events import MongoEventStore
from dispatch.adapters.mongo.help_requests import MongoHelpRequests
from dispatch.adapters.mongo.ledger import MongoLedger, MongoStripeEvents
from dispatch.adapters.mongo.links import MongoLinks
from dispatch.adapters.mongo.messages import MongoMessages, MongoOptOuts
from dispatch.adapters.mongo.offers import MongoOffers
from dispatch.adapters.mongo.personal_data import MongoPersonalData
from dispatch.adapters.mongo.rescues import MongoRescues, MongoRiders
from dispatch.adapters.osrm import OsrmRouter
from dispatch.adapters.redis_feed import RedisFeed
from dispatch.adapters.redis_geo import RedisGeoIndex
from dispatch.adapters.redis_guards import RedisLimits, RedisLocks
from dispatch.adapters.redis_held import RedisHeldTexts
from dispatch.adapters.redis_keys import KeySpace
from dispatch.adapters.rq_scheduler import RqScheduler, urgent_queue_name
from dispatch.announcer import Announcer
from dispatch.board import Board
from dispatch.bus import EventBus, Handler
from dispatch.config import Settings, load_settings
from dispatch.dispatcher import Dispatcher
from dispatch.help_desk import HelpDesk
from dispatch.lifecycle import Lifecycle
from dispatch.links import Links
from dispatch.matching import Matcher
from dispatch.messaging import Delivery, Outbox
from dispatch.model import events as ev
from dispatch.model.pricing import Quote, quote, surge_multiplier
from dispatch.model.street_grid import StreetGrid
from dispatch.notifications import Notifier
from dispatch.payments import Payments
from dispatch.places import Gazetteer, Locator
from dispatch.ports import (
    ChangeFeed,
    DriverRepository,
    EventStore,
    GeoIndex,
    HeldTexts,
    HelpRequestStore,
    Ledger,
    LinkStore,
    Locks,
    MessageStore,
    Metrics,
    OfferRepository,
    OptOutRegistry,
    PaymentGateway,
    PersonalData,
    RescueRepository,
    RiderRepository,
    Router,
    Scheduler,
    Sender,
    StripeEventLog,
)
from dispatch.privacy import Privacy
from dispatch.shift import Shift
from dispatch.sweeper import Sweeper
from dispatch.tracking import Tracking

log = structlog.get_logger(__name__)


def event_handlers(svc: Core) -> dict[type[ev.Event], Sequence[Handler]]:
    """Everything that follows from each kind of change, in the order it runs."""
    d, n, p, m, t = svc.dispatcher, svc.notifier, svc.payments, svc.metrics, svc.tracking
    assigned = time_to_assign(svc.handling_rescues, m)
    table: dict[type[ev.Event], list[Handler]] = {
        ev.RescueRequested: [d.dispatch_soon],
        ev.OfferMade: [d.schedule_expiry, n.offer_made, m.offer_outcome],
        ev.OfferDeclined: [d.dispatch_soon, m.offer_outcome],
        ev.OfferExpired: [d.dispatch_soon, n.offer_expired, m.offer_outcome],
        ev.OfferWithdrawn: [n.offer_withdrawn, m.offer_outcome],
        ev.DriverAssigned: [t.refresh, n.driver_assigned, m.offer_outcome, assigned],
        ev.DriverReassigned: [t.refresh, n.driver_reassigned],
        ev.DriverLocationUpdated: [t.refresh, t.check_arriving],
        ev.DriverArriving: [n.driver_arriving],
        ev.DriverArrived: [n.driver_arrived],
        ev.DriverDropped: [d.dispatch_soon, n.driver_dropped],
        ev.RescueCompleted: [n.completed, p.link_soon],
        ev.RescueCancelled: [d.release_everyone, n.cancelled],
        ev.RescueUnfulfilled: [d.release_everyone, n.unfulfilled],
        ev.StillSearching: [n.still_searching],
        ev.PaymentLinkSent: [n.payment_link],
        ev.PaymentLinkExpired: [n.payment_link_expired],
        ev.PaymentPaid: [n.paid],
        ev.PaymentFailed: [n.payment_failed],
        ev.PaymentRefunded: [n.refunded],
        ev.HelpRequested: [svc.help_desk.alert],
    }
    # Every change is announced to open pages, after its own handlers.
    return {kind: [*table.get(kind, ()), svc.announcer.event] for kind in ev.EVENT_TYPES.values()}


def time_to_assign(rescues: RescueRepository, metrics: Metrics) -> Callable[[ev.DriverAssigned], None]:
    def observe(event: ev.DriverAssigned) -> None:
        rescue = rescues.get(event.rescue_id)
        if rescue:
            metrics.time_to_assign((event.at - rescue.created_at) / 1000)
    return observe


class Core:
    """The business rules wired over a set of ports: the real adapters (`Services`), or the
    in-memory fakes of tests/dispatch/fakes.py. Construction does no I/O."""

    def __init__(self, settings: Settings, *, rescues: RescueRepository, riders: RiderRepository,
                 drivers: DriverRepository, offers: OfferRepository, messages: MessageStore, optouts: OptOutRegistry,
                 ledger: Ledger, stripe_events: StripeEventLog, events: EventStore, geo: GeoIndex, locks: Locks,
                 scheduler: Scheduler, metrics: Metrics, gateway: PaymentGateway, sender: Sender,
                 help_requests: HelpRequestStore, feed: ChangeFeed, links: LinkStore,
                 router: Router | None = None, held: HeldTexts | None = None,
                 personal_data: PersonalData | None = None) -> None:
        self.settings = settings
        self.rescues, self.riders, self.drivers, self.offers = rescues, riders, drivers, offers
        self.messages, self.optouts, self.ledger, self.stripe_events = messages, optouts, ledger, stripe_events
        self.events, self.locks, self.scheduler, self.metrics, self.sender = events, locks, scheduler, metrics, sender
        self.bus = EventBus(events)
        self.feed, self.announcer = feed, Announcer(feed)
        self.lifecycle = Lifecycle(rescues, riders, self.bus)
        self.matcher = Matcher(geo, drivers)
        self.outbox = Outbox(messages, scheduler)
        self.delivery = Delivery(messages, sender, optouts, metrics, f"{settings.public_base_url}/twilio/status",
                                 scheduler)
        self.links = Links(settings, links, rescues, drivers)
        # The readers among the event handlers read an event's rescue and drivers once (dispatch.bus).
        self.handling_rescues, handling_drivers = self.bus.reads.rescues(rescues), self.bus.reads.drivers(drivers)
        self.tracking = Tracking(settings, self.handling_rescues, handling_drivers, self.bus, router)
        self.dispatcher = Dispatcher(settings, self.lifecycle, rescues, drivers, offers, self.matcher, self.bus,
                                     scheduler, locks, self.links)
        self.notifier = Notifier(settings, self.outbox, self.handling_rescues, handling_drivers, offers, self.tracking,
                                 self.links)
        self.payments = Payments(rescues, drivers, ledger, stripe_events, self.bus, scheduler, locks, gateway)
        self.board = Board(settings, rescues, drivers, events, self.tracking, messages, offers)
        self.help_desk = HelpDesk(settings, help_requests, rescues, self.outbox, self.bus)
        self.privacy = Privacy(settings.retention_days, personal_data, rescues) if personal_data else None
        self.shift = Shift(self.board, rescues, drivers, self.dispatcher, help_requests)
        self.sweeper = Sweeper(self.matcher, self.dispatcher, rescues, offers, messages, self.outbox, self.delivery,
                               self.bus, scheduler, held, self.privacy)
        self.held = held
        self.bus.handlers = event_handlers(self)
        self.outbox.changed = self.dispatcher.changed = self.announcer.changed

    @property
    def geo(self) -> GeoIndex:
        return self.matcher.geo

    def current_quote(self, trip_miles: float) -> Quote:
        surge = surge_multiplier(self.rescues.count_open() + 1, self.drivers.count_online(),
                                 self.settings.pricing.surge_cap)
        return quote(self.settings.pricing, trip_miles, surge)

    def driver_pay(self, quote_cents: int) -> int:
        return int(quote_cents * self.settings.driver_share + 0.5)


class Services(Core):
    """The core over MongoDB, Redis, RQ and the vendors, plus what the conversation engine
    and the HTTP entry points need besides. One per process."""

    def __init__(self, settings: Settings, db: Database, redis: redis_lib.Redis) -> None:
        from dispatch.adapters.stripe import SandboxGateway, StripeGateway
        from dispatch.adapters.twilio import SandboxSender, TwilioSender

        self.db, self.redis = db, redis
        self.keys = keys = KeySpace(settings.redis_prefix)
        self.limits = RedisLimits(redis, keys)
        self.accounts = MongoAccounts(db)
        self.conversations, self.voice_steps = MongoConversations(db), MongoVoiceSteps(db)
        super().__init__(
            settings, rescues=MongoRescues(db), riders=MongoRiders(db), drivers=MongoDrivers(db),
            offers=MongoOffers(db), messages=MongoMessages(db), optouts=MongoOptOuts(db), ledger=MongoLedger(db),
            stripe_events=MongoStripeEvents(db), events=MongoEventStore(db), geo=RedisGeoIndex(redis, keys),
            locks=RedisLocks(redis, keys),
            scheduler=RqScheduler(Queue(settings.queue_name, connection=redis),
                                  Queue(urgent_queue_name(settings.queue_name), connection=redis), keys),
            metrics=PrometheusMetrics(),
            gateway=StripeGateway(settings) if settings.stripe_secret_key else SandboxGateway(settings),
            sender=SandboxSender() if settings.sandbox else TwilioSender(settings),
            help_requests=MongoHelpRequests(db), feed=RedisFeed(redis, keys), links=MongoLinks(db),
            router=OsrmRouter(settings) if settings.routing_url else None, held=RedisHeldTexts(redis, keys),
            personal_data=MongoPersonalData(db))

    @cached_property
    def locator(self) -> Locator:
        from dispatch.adapters.geocoders import build_geocoder
        from dispatch.adapters.map_links import MapLinkResolver

        area = self.settings.service_area
        return Locator(Gazetteer.builtin(), streets=StreetGrid.builtin(),
                       geocoder=build_geocoder(self.settings, self.redis),
                       links=MapLinkResolver(self.settings, self.redis), near=(area.lat, area.lng))


def redis_client(settings: Settings) -> redis_lib.Redis:
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (python app.py starts an embedded server)")
    # RQ stores pickled bytes, so responses are not decoded. Every command is counted (/metrics).
    return CountedRedis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5,
                                    health_check_interval=30)


def build_services(settings: Settings) -> Services:
    """Connect and make sure the indexes exist. A process that starts while MongoDB is down
    (a web worker replaced mid-outage, say) still starts: it answers 503s and /healthz until
    the store is back, and the next process to start creates whatever index is missing."""
    db = connect(settings, listeners=[MongoOpCounter()])
    try:
        ensure_indexes(db)
    except PyMongoError as exc:
        log.warning("indexes_not_checked", error=type(exc).__name__)
    return Services(settings=settings, db=db, redis=redis_client(settings))


_worker_services: Services | None = None
_worker_services_lock = threading.Lock()


def worker_services() -> Services:
    """The services of a worker process, built on first use from its environment (once, though
    the job loop, the sweeper and the drain threads may all ask first)."""
    global _worker_services
    if _worker_services is None:
        with _worker_services_lock:
            if _worker_services is None:
                _worker_services = build_services(load_settings())
    return _worker_services
