"""Shared plumbing for the benchmarks in bench/ (not a benchmark itself).

Each benchmark starts what it measures itself, the way `bench/offer_latency.py` does:
embedded stores (the launcher's own `start_embedded_redis` / `start_embedded_mongo`),
local fakes of Twilio from `tests/fakes/`, and the service (`python app.py`, or gunicorn
with the Procfile's settings). Everything binds to 127.0.0.1 and everything started is
stopped again by its pid (process group), never by name.
"""
from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import Supervisor, _free_port, start_embedded_mongo, start_embedded_redis  # noqa: E402
from tests.conftest import ADMIN_TOKEN, RESCUE_NUMBER, TWILIO_SID, TWILIO_TOKEN, sign  # noqa: E402
from tests.fakes.twilio_api import FakeTwilio  # noqa: E402

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BIN = Path(sys.executable).parent
# The Procfile's web process: `gunicorn --workers ${WEB_CONCURRENCY:-2} --worker-class gthread --threads 8`.
WEB_WORKERS, WEB_THREADS = 2, 8


def pct(values: Iterable[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def machine_line() -> str:
    load = os.getloadavg()
    return (f"{time.strftime('%Y-%m-%d %H:%M')}  {os.cpu_count()} cores  Python {platform.python_version()}  "
            f"load avg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start")


class Numbers:
    """Distinct valid US mobile-style numbers, deterministic per seed (no two benches clash)."""

    def __init__(self, seed: int = 0) -> None:
        import phonenumbers

        self._pn = phonenumbers
        self._i = seed * 1_000_003

    def next(self) -> str:
        while True:
            i = self._i
            self._i += 1
            area = ("212", "646", "917", "347", "718", "929")[i % 6]
            exchange = 200 + (i // 6 // 10000) % 800
            line = (i // 6) % 10000
            number = f"+1{area}{exchange}{line:04d}"
            if self._pn.is_valid_number(self._pn.parse(number)):
                return number


def text_params(sender: str, body: str) -> dict[str, str]:
    sid = "SM" + uuid.uuid4().hex
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": TWILIO_SID, "From": sender, "To": RESCUE_NUMBER,
            "Body": body, "NumMedia": "0"}


def text(base: str, sender: str, body: str, client: httpx.Client | None = None) -> float:
    """One signed inbound text, as Twilio delivers it; returns when it was sent (epoch s)."""
    params = text_params(sender, body)
    url = f"{base}/twilio/sms"
    started = time.time()
    post = client.post if client else httpx.post
    r = post(url, data=params, headers={"X-Twilio-Signature": sign(url, params)}, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text)
    return started


class Stack:
    """Embedded stores + a fake Twilio + whatever else a bench starts; `close()` stops it all."""

    def __init__(self, twilio_delay: float = 0.0, prefix: str = "sc-bench-") -> None:
        self.data = Path(tempfile.mkdtemp(prefix=prefix))
        self.sup = Supervisor()
        self.fake = FakeTwilio(TWILIO_SID, TWILIO_TOKEN)
        self.fake.delay = twilio_delay
        self.fake.start()
        self.procs: list[subprocess.Popen] = []
        env = dict(os.environ)
        self.redis_url = start_embedded_redis(self.sup, self.data, env)
        self.mongo_url = start_embedded_mongo(self.sup, self.data, env)

    def env(self, port: int | None = None, **extra: str) -> dict[str, str]:
        port = port or _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "STRIPE_"))}
        env.update({"REDIS_URL": self.redis_url, "MONGO_URL": self.mongo_url, "PORT": str(port),
                    "HOST": "127.0.0.1", "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                    "DATA_DIR": str(self.data), "TWILIO_ACCOUNT_SID": TWILIO_SID,
                    "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "TWILIO_PHONE_NUMBER": RESCUE_NUMBER,
                    "TWILIO_API_BASE": self.fake.url, "ADMIN_TOKEN": ADMIN_TOKEN, "LOG_LEVEL": "WARNING",
                    "INBOUND_RATE_LIMIT": "1000", "PYTHONUNBUFFERED": "1"})
        env.update(extra)
        return env

    def spawn(self, cmd: list[str], env: dict[str, str], log_name: str | None = None,
              cwd: Path = ROOT) -> subprocess.Popen:
        out = open(self.data / log_name, "ab") if log_name else subprocess.DEVNULL
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_app(self, env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen:
        """`python app.py` (of the tree at `cwd`): gunicorn (2 gthread workers x 8 threads) + 2 RQ
        workers with the scheduler."""
        proc = self.spawn([sys.executable, "app.py"], env, "app.log", cwd=cwd)
        wait_healthy(env["PUBLIC_BASE_URL"], proc, self.data / "app.log")
        return proc

    def start_gunicorn(self, env: dict[str, str], wsgi: str = "app:app", workers: int = WEB_WORKERS,
                       threads: int = WEB_THREADS, log_name: str = "gunicorn.log") -> subprocess.Popen:
        """The Procfile's `web:` line, bound to 127.0.0.1."""
        cmd = [str(BIN / "gunicorn"), "--workers", str(workers), "--worker-class", "gthread",
               "--threads", str(threads), "--bind", f"127.0.0.1:{env['PORT']}", "--graceful-timeout", "5",
               "--chdir", str(ROOT), wsgi]
        proc = self.spawn(cmd, env, log_name)
        wait_listening(env["PUBLIC_BASE_URL"], proc, self.data / log_name)
        return proc

    def start_rq_worker(self, env: dict[str, str], burst: bool = False, scheduler: bool = True,
                        log_name: str = "worker.log") -> subprocess.Popen:
        """The Procfile's `worker:` line."""
        cmd = [str(BIN / "rq"), "worker", "--url", env["REDIS_URL"], "--worker-class", "dispatch.worker.Worker",
               "--connection-class", "dispatch.adapters.metrics.CountedRedis",
               "--path", str(ROOT)]
        if scheduler:
            cmd.append("--with-scheduler")
        if burst:
            cmd.append("--burst")
        name = env.get("RQ_QUEUE", "default")
        cmd += [f"{name}-urgent", name]  # as the Procfile: the urgent queue first
        return self.spawn(cmd, env, log_name)

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def close(self) -> None:
        for proc in reversed(self.procs):
            # app.py stops its own children on SIGINT (its Ctrl-C path).
            self.stop(proc, signal.SIGINT if proc.args[-1] == "app.py" else signal.SIGTERM, timeout=60)
        self.sup.stop_all()
        self.fake.stop()
        if not os.environ.get("SC_BENCH_KEEP"):  # SC_BENCH_KEEP=1 keeps the stores' files and logs
            import shutil

            shutil.rmtree(self.data, ignore_errors=True)


def wait_healthy(base: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"service exited: {log.read_text()[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"service not healthy in {timeout}s: {log.read_text()[-3000:]}")


def wait_listening(base: str, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            httpx.get(f"{base}/", timeout=1)
            return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"server not listening in {timeout}s: {log.read_text()[-3000:]}")


def add_drivers(base: str, count: int, numbers: Numbers, seed: int = 7,
                box: tuple[float, float, float, float] = (40.70, -74.02, 0.12, 0.08)) -> list[dict]:
    """Register drivers through the admin API, place them in `box` (lat, lng, dlat, dlng), text ON."""
    import random

    rng = random.Random(seed)
    drivers = []
    with httpx.Client(timeout=30) as client:
        for i in range(count):
            d = client.post(f"{base}/api/drivers", headers=AUTH,
                            json={"phone": numbers.next(), "name": f"Driver {i}", "vehicle": "Van"}).json()
            lat, lng = box[0] + rng.random() * box[2], box[1] + rng.random() * box[3]
            client.patch(f"{base}/api/drivers/{d['id']}", headers=AUTH, json={"location": {"lat": lat, "lng": lng}})
            text(base, d["phone"], "ON", client)
            drivers.append(d)
    return drivers


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20
