"""`python app.py` with its embedded stores, as a new user runs it (sandbox, no REDIS_URL or
MONGO_URL), under process faults of its own children:

- the embedded redis-server, then the nx-27017 MongoDB-wire server, SIGKILLed between a
  rider's texts: due is the launcher starting each again (same port, same files), the service
  carrying on without a restart of `python app.py`, and the rider's booking finishing;
- an RQ worker SIGKILLed, and the whole service stopped and started again: due is /healthz
  counting only workers that are alive (within a few missed heartbeats), never the dead ones;
- gunicorn's control socket under DATA_DIR, not the machine-wide default path.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from app import _free_port
from dispatch.adapters.rq_scheduler import HEARTBEAT_MISSES, HEARTBEAT_SECONDS
from tests.conftest import ROOT, new_number
from tests.reliability.support import wait_until

WORKERS = 2
DEAD_WORKER_GRACE = HEARTBEAT_SECONDS * HEARTBEAT_MISSES + 1.5  # s: missed beats, plus a poll or two


class Service:
    def __init__(self, data: Path) -> None:
        self.data, self.port = data, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MONGO_URL", "ADMIN_TOKEN", "APP_ENV")
               and not k.startswith(("TWILIO_", "STRIPE_"))}
        env.update({"DATA_DIR": str(self.data), "PORT": str(self.port), "HOST": "127.0.0.1",
                    "RQ_WORKERS": str(WORKERS), "SWEEP_SECONDS": "1", "PYTHONUNBUFFERED": "1"})
        with open(self.data / "out.log", "ab") as out, open(self.data / "err.log", "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=err)
        assert wait_until(lambda: self.health()[0] == 200 or self.proc.poll() is not None, 60), self.tail()
        assert self.proc.poll() is None, self.tail()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def health(self) -> tuple[int, dict]:
        try:
            r = httpx.get(f"{self.url}/healthz", timeout=5)
            return r.status_code, r.json()
        except (httpx.HTTPError, ValueError) as exc:
            return 0, {"error": type(exc).__name__}

    @property
    def token(self) -> str:
        return (self.data / "admin_token").read_text().strip()

    def text(self, sender: str, body: str, sid: str) -> int:
        return httpx.post(f"{self.url}/twilio/sms", data={"MessageSid": sid, "From": sender, "Body": body},
                          timeout=20).status_code

    def outbox(self) -> str:
        return httpx.get(f"{self.url}/sandbox/outbox", params={"token": self.token}, timeout=10).text

    def store_pid(self, which: str) -> int:
        return int((self.data / which).read_text().strip())

    def worker_pids(self) -> list[int]:
        """The launcher's own `rq worker` children (not the RQ scheduler each forks, same command line)."""
        alive = []
        for p in psutil.Process(self.proc.pid).children(recursive=False):
            try:
                cmd = " ".join(p.cmdline())
                if "rq" in cmd and " worker " in f" {cmd} " and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p.pid)
            except psutil.Error:
                pass
        return alive

    def tail(self) -> str:
        return "".join((self.data / name).read_text(errors="replace")[-2000:] for name in ("out.log", "err.log")
                       if (self.data / name).exists())


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = Service(tmp_path_factory.mktemp("embedded"))
    svc.start()
    yield svc
    svc.stop()


def _kill_store(service: Service, pid_file: str) -> dict:
    """SIGKILL a store; how long /healthz said which store was down, and when it was back."""
    pid = service.store_pid(pid_file)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    seen_down: set[str] = set()

    def back() -> bool:
        status, body = service.health()
        seen_down.update(body.get("down", []))
        return status == 200
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 5)
    healthy = wait_until(back, 60, interval=0.1)
    return {"old": pid, "new": service.store_pid(pid_file), "back_after": time.monotonic() - killed,
            "healthy": bool(healthy), "down": sorted(seen_down)}


def test_a_killed_embedded_store_is_started_again_and_the_service_carries_on(service, table):
    assert (service.data / "gunicorn.ctl").exists(), "gunicorn's control socket is not under DATA_DIR"
    launcher = service.proc.pid
    rider = new_number()
    assert service.text(rider, "flat tire at Union Square", "SMstore1") == 200
    redis = _kill_store(service, "redis/redis.pid")
    assert service.text(rider, "skip", "SMstore2") == 200
    mongo = _kill_store(service, "mongo/nx-27017.pid")
    assert service.text(rider, "y", "SMstore3") == 200
    booked = wait_until(lambda: "Booked! Rescue" in service.outbox(), 30)
    rescues = httpx.get(f"{service.url}/api/rescues", headers={"Authorization": f"Bearer {service.token}"}).json()
    mine = [r for r in rescues["rescues"] if r["rider_phone"] == rider]
    carried_on = service.proc.poll() is None and service.proc.pid == launcher
    restarted = [s for s in (redis, mongo) if s["healthy"] and s["new"] != s["old"]]
    table.record("Embedded store killed under `python app.py`", "SIGKILL of the embedded redis-server, then of "
                 "nx-27017, between a sandbox rider's three booking texts", times=2, expected=2 + 1,
                 lost=(2 - len(restarted)) + (0 if booked and len(mine) == 1 else 1), duplicated=max(0, len(mine) - 1),
                 counted="stores started again by the launcher (new pid, healthy), the booking's rescue")
    table.figure("Embedded stores killed", f"redis-server back (healthy /healthz) {redis['back_after']:.1f} s after "
                 f"SIGKILL, nx-27017 {mongo['back_after']:.1f} s; /healthz named as down meanwhile: "
                 f"{redis['down'] or 'nothing seen'} / {mongo['down'] or 'nothing seen'}; app.py never restarted")
    assert carried_on, f"APP BUG: python app.py stopped when a store died: {service.tail()}"
    assert len(restarted) == 2, f"APP BUG: a killed store was not started again: {redis} {mongo} {service.tail()}"
    assert booked and len(mine) == 1 and mine[0]["status"] == "searching", (mine, service.tail())


def test_healthz_counts_only_live_workers(service, table):
    assert wait_until(lambda: service.health()[1].get("workers") == WORKERS, 20), service.health()
    victim = service.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    overcount_until = 0.0  # the last moment /healthz counted more workers than were alive
    while time.monotonic() - killed < DEAD_WORKER_GRACE + 6:
        alive = len(service.worker_pids())
        workers = service.health()[1].get("workers", 0)
        if workers > alive:
            overcount_until = time.monotonic() - killed
        time.sleep(0.2)
    after_kill = overcount_until

    service.stop()
    service.start()
    restarted = time.monotonic()
    first = service.health()[1].get("workers")
    overcount_until = 0.0
    while time.monotonic() - restarted < 4:
        if service.health()[1].get("workers", 0) > len(service.worker_pids()):
            overcount_until = time.monotonic() - restarted
        time.sleep(0.2)
    after_restart = overcount_until
    table.record("Dead workers in /healthz", "SIGKILL of one of 2 RQ workers of `python app.py`, then Ctrl-C and a "
                 "fresh start on the same DATA_DIR, polling /healthz against the live worker processes", times=2,
                 expected=2, lost=0, duplicated=int(after_kill > DEAD_WORKER_GRACE) + int(after_restart > 0.5),
                 counted=f"/healthz counting a dead worker longer than {DEAD_WORKER_GRACE:.1f} s (kill) or at all "
                 "(restart)")
    table.figure("Live workers in /healthz", f"a SIGKILLed worker was counted for {after_kill:.1f} s "
                 f"({HEARTBEAT_MISSES} missed beats of {HEARTBEAT_SECONDS:.0f} s); after a restart the first healthy "
                 f"/healthz said {first} workers, over-counting for {after_restart:.1f} s")
    assert after_kill <= DEAD_WORKER_GRACE, f"APP BUG: a dead worker counted for {after_kill:.1f} s"
    assert first <= WORKERS and after_restart <= 0.5, f"APP BUG: stopped workers counted after a restart ({first})"
