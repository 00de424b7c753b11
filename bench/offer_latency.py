"""Offer latency: a rider's confirming "Y" -> the offer text accepted by the (fake) Twilio API.

Runs the real service (`python app.py`: gunicorn + RQ workers) on embedded stores, with
the real `twilio` client talking to a local fake of the Twilio API that timestamps each
send. The baseline, measured in the same run, is the plain round trip of one inbound
text to its reply reaching the fake (webhook + send job): the offer's extra cost is the
dispatch job (rescue created -> candidates from the GEO index -> offer -> send job).

With `--drivers` above `--api-drivers` (the issue's case: 10,000 online), the first
`--api-drivers` are registered through the admin API and text ON like real ones; the rest
are written straight to MongoDB as available drivers with a fresh location (the same
document shape `DriverStore.register` + `go_online` + a location update leave), and the
GEO index is rebuilt from MongoDB the way the app rebuilds it after losing Redis.

    .venv/bin/python bench/offer_latency.py [--rounds 100] [--drivers 10000] [--api-drivers 50]
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import Supervisor, _free_port, start_embedded_mongo, start_embedded_redis  # noqa: E402
from tests.conftest import ADMIN_TOKEN, RESCUE_NUMBER, TWILIO_SID, TWILIO_TOKEN, new_number, sign  # noqa: E402
from tests.fakes.twilio_api import FakeTwilio  # noqa: E402

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def text(base: str, sender: str, body: str) -> float:
    params = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": TWILIO_SID, "From": sender,
              "To": RESCUE_NUMBER, "Body": body}
    url = f"{base}/twilio/sms"
    started = time.time()
    r = httpx.post(url, data=params, headers={"X-Twilio-Signature": sign(url, params)}, timeout=30)
    assert r.status_code == 200, r.text
    return started


def arrival(fake: FakeTwilio, phone: str, fragment: str, after: float, timeout: float = 20) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for t in fake.texts_to(phone):
            if t.at >= after and fragment in t.body:
                return t.at
        time.sleep(0.002)
    raise TimeoutError(f"no {fragment!r} to {phone}")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--drivers", type=int, default=10_000)
    ap.add_argument("--api-drivers", type=int, default=50, help="drivers registered through the API (rest bulk)")
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="sc-bench-"))
    sup = Supervisor()
    fake = FakeTwilio(TWILIO_SID, TWILIO_TOKEN).start()
    service = None
    try:
        env = dict(os.environ)
        redis_url = start_embedded_redis(sup, data, env)
        mongo_url = start_embedded_mongo(sup, data, env)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env.update({"REDIS_URL": redis_url, "MONGO_URL": mongo_url, "PORT": str(port), "HOST": "127.0.0.1",
                    "PUBLIC_BASE_URL": base, "DATA_DIR": str(data), "TWILIO_ACCOUNT_SID": TWILIO_SID,
                    "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "TWILIO_PHONE_NUMBER": RESCUE_NUMBER,
                    "TWILIO_API_BASE": fake.url, "ADMIN_TOKEN": ADMIN_TOKEN, "LOG_LEVEL": "WARNING",
                    "INBOUND_RATE_LIMIT": "1000"})
        service = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        rng = random.Random(7)
        for i in range(min(args.drivers, args.api_drivers)):
            r = httpx.post(f"{base}/api/drivers", headers=AUTH, timeout=10,
                           json={"phone": new_number(), "name": f"Driver {i}", "vehicle": "Van"}).json()
            lat, lng = 40.70 + rng.random() * 0.12, -74.02 + rng.random() * 0.08
            httpx.patch(f"{base}/api/drivers/{r['id']}", headers=AUTH, json={"location": {"lat": lat, "lng": lng}})
            text(base, r["phone"], "ON")
        bulk = max(0, args.drivers - args.api_drivers)
        if bulk:
            import pymongo
            import redis

            from dispatch.adapters.mongo.drivers import MongoDrivers
            from dispatch.adapters.redis_geo import RedisGeoIndex
            from dispatch.adapters.redis_keys import KeySpace
            from dispatch.matching import Matcher

            db = pymongo.MongoClient(mongo_url)["supportcarr"]
            now_ms = int(time.time() * 1000)
            docs = []
            for i in range(bulk):
                lat, lng = 40.70 + rng.random() * 0.12, -74.02 + rng.random() * 0.08
                docs.append({"_id": uuid.uuid4().hex, "phone": new_number(), "name": f"Bulk {i}", "vehicle": "Van",
                             "status": "available", "active": True, "idle_since": now_ms,
                             "location": {"lat": lat, "lng": lng, "label": None}, "location_updated_at": now_ms,
                             "created_at": now_ms, "updated_at": now_ms})
            for k in range(0, bulk, 1000):
                db.drivers.insert_many(docs[k:k + 1000])
            geo = RedisGeoIndex(redis.Redis.from_url(redis_url), KeySpace("default"))  # RQ_QUEUE's default
            indexed = Matcher(geo, MongoDrivers(db)).rebuild()
            print(f"{bulk} drivers written to MongoDB; GEO index rebuilt with {indexed} available drivers", flush=True)
        time.sleep(1.0)
        baseline, offers = [], []
        for _ in range(args.rounds):
            rider = new_number()
            t0 = text(base, rider, "hi")
            baseline.append(arrival(fake, rider, "Where are you?", t0) - t0)
            text(base, rider, "flat tire at Union Square")
            arrival(fake, rider, "Where should we take you", t0)
            text(base, rider, "skip")
            arrival(fake, rider, "Reply Y", t0)
            t1 = text(base, rider, "y")
            offer_at = None
            deadline = time.time() + 20
            while offer_at is None and time.time() < deadline:
                hits = [t.at for t in list(fake.sent) if t.at >= t1 and t.body.startswith("SupportCarr offer")]
                offer_at = min(hits) if hits else None
                time.sleep(0.002)
            if offer_at is None:
                raise TimeoutError("no offer")
            offers.append(offer_at - t1)
            rescues = httpx.get(f"{base}/api/rescues?status=searching", headers=AUTH).json()["rescues"]
            for r in rescues:
                httpx.post(f"{base}/api/rescues/{r['id']}/cancel", headers=AUTH, json={"reason": "bench"})
        b50, o50 = statistics.median(baseline), statistics.median(offers)
        print(f"offer latency, {args.drivers} drivers online, {args.rounds} rounds (ms)")
        print(f"{'':24}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
        for name, xs in (("baseline: text -> reply", baseline), ("rider Y -> offer sent", offers)):
            print(f"{name:24}{pct(xs, 50) * 1000:8.1f}{pct(xs, 90) * 1000:8.1f}{pct(xs, 99) * 1000:8.1f}"
                  f"{max(xs) * 1000:8.1f}")
        print(f"ratio offer/baseline p50: {o50 / b50:.2f}x")
        o99 = pct(offers, 99)
        print(f"target p50 <= 100 ms: {'met' if o50 <= 0.1 else 'MISSED'} ({o50 * 1000:.0f} ms); "
              f"p99 <= 500 ms: {'met' if o99 <= 0.5 else 'MISSED'} ({o99 * 1000:.0f} ms)")
    finally:
        if service:
            service.send_signal(signal.SIGINT)
            service.wait(timeout=60)
        sup.stop_all()
        fake.stop()


if __name__ == "__main__":
    main()
