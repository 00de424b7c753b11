"""All configuration, read from the environment in one place.

Every other module takes a `Settings` rather than reading `os.environ`, so tests and the
launcher can build one explicitly and nothing drifts between web and worker processes.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from dispatch.model.geo import ServiceArea
from dispatch.model.phones import normalise
from dispatch.model.pricing import Pricing

__all__ = ["CONFIG_ERROR_EXIT", "ConfigError", "Pricing", "ServiceArea", "Settings", "load_settings",
           "settings_or_exit"]


OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
# `none`: coordinates, map links, the gazetteer and the street grid only; the others through geopy.
GEOCODERS = ("none", "nominatim", "mapbox", "google")
KEYED_GEOCODERS = ("mapbox", "google")
APP_ENVS = ("development", "production")
# What APP_ENV=production needs (PRODUCT.md §2): without any of them riders would get nothing,
# or the sandbox pages would be live.
PRODUCTION_NEEDS = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER", "ADMIN_TOKEN",
                    "PUBLIC_BASE_URL", "MONGO_URL", "REDIS_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")


CONFIG_ERROR_EXIT = 2  # a process refused to start: its settings are wrong


class ConfigError(RuntimeError):
    """Raised when the environment cannot produce a safe configuration."""


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    host: str = "127.0.0.1"
    port: int = 5000
    data_dir: str = "./var"
    mongo_url: str | None = None
    mongo_db: str = "supportcarr"
    redis_url: str | None = None
    queue_name: str = "default"
    # RQ worker processes `python app.py` starts (the Procfile scales them by process count).
    rq_workers: int = 2
    public_base_url: str = "http://127.0.0.1:5000"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_phone_number: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    admin_token: str | None = None
    # Signs the status page's session cookie; derived from ADMIN_TOKEN when not set.
    secret_key: str | None = None
    offer_timeout_seconds: int = 90
    # How many drivers hold an offer for one rescue at once (PRODUCT.md §5: one by default).
    offer_fanout: int = 1
    search_window_seconds: int = 15 * 60
    search_retry_seconds: int = 20
    rider_update_seconds: int = 180
    driver_share: float = 0.75
    sweep_seconds: float = 10.0
    # Van speed through city traffic, for the ETA quoted to riders when no routing engine answers.
    eta_speed_kmh: float = 20.0
    # An OSRM-compatible routing engine (its /route API) for ETAs by road; unset: by distance.
    routing_url: str | None = None
    routing_timeout_seconds: float = 1.5
    # Tile URL template for the maps (status page, live links).
    map_tiles_url: str = OSM_TILES
    # Unknown live-link tokens one client address may try per minute before it is refused (429).
    link_misses_per_minute: int = 30
    service_area: ServiceArea = field(default_factory=lambda: ServiceArea(40.7580, -73.9855, 15.0))
    max_trip_miles: float = 10.0
    geocoder: str = "none"
    geocoder_url: str | None = None
    geocoder_api_key: str | None = None
    geocoder_timeout_seconds: float = 3.0
    # Short map links (maps.app.goo.gl/...) are followed to the place they point at, within this.
    map_link_timeout_seconds: float = 3.0
    # Where short map links are fetched instead of their own host (a local fake in tests); the
    # link's own host is still what the allowed-host check and the Host header see.
    map_links_base_url: str | None = None
    pricing: Pricing = field(default_factory=Pricing)
    default_region: str = "US"
    sentry_dsn: str | None = None
    log_level: str = "INFO"
    # Per-number inbound flood guard: at most this many texts per window.
    inbound_rate_limit: int = 20
    inbound_rate_window_seconds: int = 60
    # Wrong admin tokens one client address may try per minute before it is refused (429).
    admin_token_tries_per_minute: int = 10
    # The on-call dispatcher's phone, texted when a help request opens (E.164).
    dispatch_alert_phone: str | None = None
    # How long a message from one number waits for the previous one from that number.
    phone_lock_wait_seconds: float = 8.0
    # Operations (PRODUCT.md §2, §7): the start of every Redis key and channel of this
    # deployment (dispatch.adapters.redis_keys), so two deployments can share one Redis.
    redis_prefix: str = "default"
    # How long the SMS webhook waits on MongoDB before keeping the text in Redis instead,
    # and the budget of a call's step (Twilio hangs up on a webhook at 15 s).
    webhook_store_timeout_seconds: float = 3.0
    voice_store_timeout_seconds: float = 10.0
    # Message bodies and rider numbers of closed rescues are erased after this many days.
    retention_days: int = 365

    @property
    def sandbox(self) -> bool:
        """No Twilio credentials: texts go to the local outbox instead of Twilio. Never in
        production, whatever the credentials (the simulator and outbox pages check this)."""
        return not self.production and not (self.twilio_account_sid and self.twilio_auth_token)

    @property
    def sandbox_payments(self) -> bool:
        """No Stripe key: payment links open the local test-payment page. Never in production."""
        return not self.production and not self.stripe_secret_key

    @property
    def production(self) -> bool:
        return self.app_env == "production"


def _float_tuple(raw: str, n: int, name: str) -> tuple[float, ...]:
    try:
        parts = tuple(float(p) for p in raw.split(","))
    except ValueError as exc:
        raise ConfigError(f"{name} must be {n} comma-separated numbers") from exc
    if len(parts) != n:
        raise ConfigError(f"{name} must be {n} comma-separated numbers")
    return parts


def _phone(raw: str | None, name: str) -> str | None:
    if raw is None:
        return None
    phone = normalise(raw)
    if phone is None:
        raise ConfigError(f"{name} must be a phone number, e.g. +12125550123")
    return phone


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from `env` (default: the process environment) and refuse unsafe ones."""
    env = os.environ if env is None else env

    def get(name: str, default: str | None = None) -> str | None:
        value = env.get(name)
        return value if value not in (None, "") else default

    if get("APP_ENV", "development") not in APP_ENVS:
        raise ConfigError(f"APP_ENV must be development or production, not {get('APP_ENV')!r}")
    host = get("HOST", "127.0.0.1")
    port = int(get("PORT", "5000"))
    area = ServiceArea(*_float_tuple(get("SERVICE_AREA", "40.7580,-73.9855,15"), 3, "SERVICE_AREA"))
    pricing = Pricing(
        base_cents=int(get("PRICE_BASE_CENTS", "2500")),
        per_mile_cents=int(get("PRICE_PER_MILE_CENTS", "300")),
        min_miles=float(get("PRICE_MIN_MILES", "1")),
        surge_cap=float(get("SURGE_CAP", "2.5")),
    )
    settings = Settings(
        app_env=get("APP_ENV", "development"),
        host=host,
        port=port,
        data_dir=get("DATA_DIR", "./var"),
        mongo_url=get("MONGO_URL"),
        mongo_db=get("MONGO_DB", "supportcarr"),
        redis_url=get("REDIS_URL"),
        queue_name=get("RQ_QUEUE", "default"),
        rq_workers=max(1, int(get("RQ_WORKERS", "2"))),
        public_base_url=(get("PUBLIC_BASE_URL") or f"http://{host}:{port}").rstrip("/"),
        twilio_account_sid=get("TWILIO_ACCOUNT_SID"),
        twilio_auth_token=get("TWILIO_AUTH_TOKEN"),
        twilio_phone_number=get("TWILIO_PHONE_NUMBER"),
        twilio_api_base=get("TWILIO_API_BASE", "https://api.twilio.com").rstrip("/"),
        stripe_secret_key=get("STRIPE_SECRET_KEY"),
        stripe_webhook_secret=get("STRIPE_WEBHOOK_SECRET"),
        stripe_api_base=get("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/"),
        admin_token=get("ADMIN_TOKEN"),
        secret_key=get("SECRET_KEY"),
        offer_timeout_seconds=int(get("OFFER_TIMEOUT_SECONDS", "90")),
        offer_fanout=max(1, int(get("OFFER_FANOUT", "1"))),
        search_window_seconds=int(get("SEARCH_WINDOW_SECONDS", str(15 * 60))),
        search_retry_seconds=int(get("SEARCH_RETRY_SECONDS", "20")),
        rider_update_seconds=int(get("RIDER_UPDATE_SECONDS", "180")),
        driver_share=float(get("DRIVER_SHARE", "0.75")),
        eta_speed_kmh=float(get("ETA_SPEED_KMH", "20")),
        routing_url=(get("ROUTING_URL") or "").rstrip("/") or None,
        routing_timeout_seconds=float(get("ROUTING_TIMEOUT_SECONDS", "1.5")),
        map_tiles_url=get("MAP_TILES_URL", OSM_TILES),
        link_misses_per_minute=int(get("LINK_MISSES_PER_MINUTE", "30")),
        sweep_seconds=float(get("SWEEP_SECONDS", "10")),
        service_area=area,
        max_trip_miles=float(get("MAX_TRIP_MILES", "10")),
        geocoder=(get("GEOCODER", "none") or "none").lower(),
        geocoder_url=get("GEOCODER_URL"),
        geocoder_api_key=get("GEOCODER_API_KEY"),
        geocoder_timeout_seconds=float(get("GEOCODER_TIMEOUT_SECONDS", "3")),
        map_link_timeout_seconds=float(get("MAP_LINK_TIMEOUT_SECONDS", "3")),
        map_links_base_url=(get("MAP_LINKS_BASE_URL") or "").rstrip("/") or None,
        pricing=pricing,
        default_region=get("DEFAULT_REGION", "US"),
        sentry_dsn=get("SENTRY_DSN"),
        log_level=(get("LOG_LEVEL", "INFO") or "INFO").upper(),
        inbound_rate_limit=int(get("INBOUND_RATE_LIMIT", "20")),
        inbound_rate_window_seconds=int(get("INBOUND_RATE_WINDOW_SECONDS", "60")),
        phone_lock_wait_seconds=float(get("PHONE_LOCK_WAIT_SECONDS", "8")),
        admin_token_tries_per_minute=int(get("ADMIN_TOKEN_TRIES_PER_MINUTE", "10")),
        dispatch_alert_phone=_phone(get("DISPATCH_ALERT_PHONE"), "DISPATCH_ALERT_PHONE"),
        redis_prefix=get("REDIS_PREFIX") or get("RQ_QUEUE", "default"),
        webhook_store_timeout_seconds=float(get("WEBHOOK_STORE_TIMEOUT_SECONDS", "3")),
        voice_store_timeout_seconds=float(get("VOICE_STORE_TIMEOUT_SECONDS", "10")),
        retention_days=int(get("RETENTION_DAYS", "365")),
    )
    if settings.production:
        missing = [name for name in PRODUCTION_NEEDS if not get(name)]
        if "PUBLIC_BASE_URL" not in missing and not settings.public_base_url.startswith("https://"):
            missing.append("an https:// PUBLIC_BASE_URL")
        if missing:
            raise ConfigError("APP_ENV=production refuses to start without " + ", ".join(missing))
    if settings.geocoder not in GEOCODERS:
        raise ConfigError("GEOCODER must be one of " + ", ".join(GEOCODERS))
    if settings.geocoder in KEYED_GEOCODERS and not settings.geocoder_api_key:
        raise ConfigError(f"GEOCODER={settings.geocoder} needs GEOCODER_API_KEY")
    return settings


def settings_or_exit() -> Settings:
    """The settings of a starting process (the launcher, gunicorn, an RQ worker): a bad one
    stops it with one line an operator can act on (PRODUCT.md §2), not a traceback."""
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"supportcarr: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(CONFIG_ERROR_EXIT) from None
