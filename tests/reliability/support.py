"""Shared machinery of the reliability suite: repetition counts, the fault table, the
registries the last checks read (STOPs, canary bodies), and small helpers for driving
the live service, its workers and the fakes.

Nothing here replaces project code: faults are injected at the edges only (the fake
Twilio, Stripe and Nominatim servers, SIGKILL of real worker processes, deleting real
Redis keys, unreachable Redis, signed and forged HTTP requests).
"""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import RESCUE_NUMBER, TWILIO_SID, Phone, new_number, sign

# -- repetition -------------------------------------------------------------------------------
# RELIABILITY_LONG=1 multiplies every repetition count (default x5; RELIABILITY_REPEAT=N sets it).
LONG = os.environ.get("RELIABILITY_LONG", "").strip() not in ("", "0", "false", "no")
REPEAT = int(os.environ.get("RELIABILITY_REPEAT") or (5 if LONG else 1))


def reps(n: int) -> int:
    """A repetition count, multiplied in the long variant."""
    return max(1, n * REPEAT)


# -- the fault table ---------------------------------------------------------------------------
@dataclass
class Row:
    fault: str
    injected: str
    times: int = 0
    expected: int = 0
    lost: int = 0
    duplicated: int = 0
    counted: str = ""


@dataclass
class FaultTable:
    """One row per fault, filled from the run's real counts (rows with the same fault add up)."""
    rows: dict[str, Row] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, fault: str, injected: str, *, times: int, expected: int, lost: int, duplicated: int,
               counted: str) -> None:
        with self.lock:
            row = self.rows.setdefault(fault, Row(fault, injected, counted=counted))
            row.times += times
            row.expected += expected
            row.lost += lost
            row.duplicated += duplicated

    def figure(self, name: str, text: str) -> None:
        with self.lock:
            self.figures[name] = text

    def markdown(self) -> str:
        lines = ["| Fault | How it was injected | Times | What was lost | What was duplicated | What was counted |",
                 "| --- | --- | ---: | --- | --- | --- |"]

        def amount(n: int, of: int) -> str:
            return f"nothing (0 of {of})" if n == 0 else f"**{n} of {of}**"

        for row in self.rows.values():
            lines.append(f"| {row.fault} | {row.injected} | {row.times} | {amount(row.lost, row.expected)} | "
                         f"{amount(row.duplicated, row.expected)} | {row.counted} |")
        return "\n".join(lines)


def tally(expected: int, actual: int) -> tuple[int, int]:
    """(lost, duplicated) when `expected` effects were due and `actual` happened."""
    return max(0, expected - actual), max(0, actual - expected)


# -- registries the final checks read -----------------------------------------------------------
@dataclass
class StopRecord:
    number: str
    sent_at: float          # just before the STOP webhook was posted
    answered_at: float      # when it answered 200: the opt-out is recorded
    restarted_at: float | None = None  # a later START


STOPS: list[StopRecord] = []
CANARIES: set[str] = set()
CAPTURED: list[tuple[str, str, str]] = []  # (nodeid, phase, text): what the pytest process wrote (conftest hook)
_registry_lock = threading.Lock()


def canary(label: str) -> str:
    """A distinctive message body the logs must never show."""
    text = f"{label} canary {uuid.uuid4().hex[:10]}"
    with _registry_lock:
        CANARIES.add(text)
    return text


def text_stop(phone: Phone, word: str = "STOP") -> StopRecord:
    sent = time.time()
    r = phone.text(word)
    assert r.status_code == 200, r.text
    record = StopRecord(phone.number, sent, time.time())
    with _registry_lock:
        STOPS.append(record)
    return record


def text_start(phone: Phone, record: StopRecord, word: str = "START") -> None:
    record.restarted_at = time.time()
    r = phone.text(word)
    assert r.status_code == 200, r.text


# -- waiting -----------------------------------------------------------------------------------
def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """The first truthy value of `check()`, or the last (falsy) one after `timeout`."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value or time.time() >= deadline:
            return value
        time.sleep(interval)


def quiesce(services, timeout: float = 60.0) -> None:
    """Wait until no outbound text is waiting or being sent, so injected vendor failures hit
    only the sends a test makes next."""
    def idle() -> bool:
        return services.db.messages.count_documents(
            {"direction": "out", "status": {"$in": ["pending", "sending"]}}) == 0
    wait_until(idle, timeout, 0.05)


def clear_failures(fake) -> None:
    with fake.lock:
        fake.failures.clear()


def fresh_rate_window(settings, need_seconds: float) -> None:
    """The inbound rate limit counts per fixed window: start a flood where it fits in one."""
    window = settings.inbound_rate_window_seconds
    left = window - (time.time() % window)
    if left < need_seconds:
        time.sleep(left + 0.05)


def at_once(fns: list[Callable[[], Any]]) -> list[Any]:
    """Run the callables in threads released together; results (or exceptions) in order."""
    barrier = threading.Barrier(len(fns))
    results: list[Any] = [None] * len(fns)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fns[i]()
        except Exception as exc:  # noqa: BLE001 - reported by the caller's assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    return results


# -- the live service --------------------------------------------------------------------------
def clear_dispatch(services) -> None:
    """What the `slate` fixture does, for module-scoped scenarios."""
    for doc in services.db.rescues.find({"status": {"$in": ["searching", "assigned", "en_route", "arrived",
                                                             "in_transit"]}}, {"_id": 1}):
        try:
            services.dispatcher.cancel(doc["_id"], "test cleanup", by="test")
        except Exception:  # noqa: BLE001 - closed meanwhile: nothing to clean
            pass
    services.db.drivers.update_many({}, {"$set": {"status": "offline", "active": False, "offer_id": None,
                                                   "rescue_id": None}})
    services.matcher.rebuild()


def worker_pids(live_service) -> list[int]:
    """The launcher's RQ worker processes (and their scheduler children); zombies skipped."""
    import psutil

    pids = []
    for p in psutil.Process(live_service.pid).children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
            if "worker" in cmd and "rq" in cmd and p.status() != psutil.STATUS_ZOMBIE:
                pids.append(p.pid)
        except psutil.Error:
            continue
    return pids


def kill_workers(live_service) -> list[int]:
    pids = worker_pids(live_service)
    assert pids, "no RQ workers to kill"
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def wait_for_new_workers(live_service, old: list[int], timeout: float = 20.0) -> list[int]:
    def fresh():
        pids = worker_pids(live_service)
        return pids if pids and not (set(pids) & set(old)) else None
    pids = wait_until(fresh, timeout, 0.1)
    assert pids, "the launcher did not restart the killed workers"
    return pids


def scheduler_pids(live_service) -> list[int]:
    """The RQ scheduler runs as a child process of the worker that holds the scheduler lock."""
    import psutil

    workers = set(worker_pids(live_service))
    found = []
    for pid in workers:
        try:
            if psutil.Process(pid).ppid() in workers:
                found.append(pid)
        except psutil.Error:
            continue
    return found


SCHEDULER_REPAIRS: list[float] = []


def ensure_scheduler(live_service, services, settings) -> None:
    """Delayed jobs (RQ Retry back-offs, enqueue_in timers) need a live RQ scheduler. After
    the workers are SIGKILLed (here or by another test file) none runs for up to 10 minutes
    (see the APP BUG in test_process_faults.py): for tests about something else, clear the
    dead scheduler's lock and restart the workers so one starts."""
    if scheduler_pids(live_service):
        return
    quiesce(services)
    for queue in services.scheduler.queues:
        services.redis.delete(f"rq:scheduler-lock:{queue.name}")
    old = kill_workers(live_service)
    wait_for_new_workers(live_service, old)
    assert wait_until(lambda: scheduler_pids(live_service), 20, 0.2), "no RQ scheduler after restarting the workers"
    SCHEDULER_REPAIRS.append(time.time())


def delete_redis_keys(services, patterns=("rq:*", "geo:*", "lock:*", "kick:*", "dispatch:*")) -> int:
    """Lose what the service keeps in Redis: RQ's keys, and the deployment's own under its
    prefix. Only these patterns: never FLUSHDB (shared Redis)."""
    deleted = 0
    for pattern in patterns:
        keys = list(services.redis.scan_iter(pattern if pattern.startswith("rq:") else services.keys(pattern)))
        if keys:
            deleted += services.redis.delete(*keys)
    return deleted


def rider_messages(services, number: str, **query) -> list[dict]:
    return list(services.db.messages.find({"phone": number, **query}).sort("created_at", 1))


def texts_with(fake_twilio, number: str, fragment: str) -> list[str]:
    return [t.body for t in fake_twilio.texts_to(number) if fragment in t.body]


def new_phone(live_service, fake_twilio, number: str | None = None) -> Phone:
    return Phone(number or new_number(), live_service.url, fake_twilio)


# -- signed requests ---------------------------------------------------------------------------
def signed_post(base_url: str, public_base_url: str, path: str, params: dict[str, str],
                token: str | None = None) -> httpx.Response:
    url = public_base_url + path
    signature = sign(url, params, token) if token else sign(url, params)
    return httpx.post(base_url + path, data=params, headers={"X-Twilio-Signature": signature}, timeout=30)


def sms_params(sender: str, body: str, sid: str | None = None) -> dict[str, str]:
    sid = sid or "SM" + uuid.uuid4().hex
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": TWILIO_SID, "From": sender, "To": RESCUE_NUMBER,
            "Body": body, "NumMedia": "0"}


def call_params(call_sid: str, caller: str, **form: str) -> dict[str, str]:
    return {"CallSid": call_sid, "AccountSid": TWILIO_SID, "From": caller, "To": RESCUE_NUMBER,
            "CallStatus": "in-progress", **form}


class _LiveResponse:
    """The slice of a Flask test response that `Caller` reads, over a real HTTP answer."""

    def __init__(self, r: httpx.Response) -> None:
        self.status_code = r.status_code
        self.mimetype = r.headers.get("content-type", "").split(";")[0].strip()
        self._text = r.text

    def get_data(self, as_text: bool = False):
        return self._text if as_text else self._text.encode()


class LiveClient:
    """Lets the voice suite's `Caller` call the running service (gunicorn) instead of an
    in-process app: same signing, real HTTP, both web processes."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def post(self, path: str, data=None, headers=None) -> _LiveResponse:
        return _LiveResponse(httpx.post(self.base_url + path, data=data, headers=headers, timeout=30))
