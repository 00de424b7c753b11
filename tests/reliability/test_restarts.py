"""Restarts: the MongoDB-wire server unreachable mid-traffic (killed or frozen), and a gunicorn web worker
SIGKILLed mid-request.

MongoDB restart -- the session's `stores` are shared by every test, so this file starts a
private stack of its own (module scope): its own redis-server and nx-27017 (the launcher's
`start_embedded_redis` / `start_embedded_mongo`, under a tmp dir) and its own `python app.py`
pointed at them and at the session's fake Twilio, Stripe and Nominatim. Redis is private too:
the service keeps some keys that are not named after RQ_QUEUE (`lock:sweeper`,
`workers:heartbeat`, `geo:*`), so on the shared Redis the suite's workers would share this
stack's sweep lock and /healthz would count the suite's workers as this stack's. Riders text
from three threads while nx-27017 is killed (SIGKILL, SIGTERM) and started again on the same
port with the same data dir, or frozen (SIGSTOP) and thawed. Due (PRODUCT.md §7): every SMS
webhook answered 200 within Twilio's 15 s while MongoDB is unreachable (the text is kept in
Redis); texts recorded before the outage kept and answered; every text answered exactly once
once MongoDB is back, redeliveries (same MessageSid) included; recovery without restarting
app.py.

Web worker killed -- the suite's `live_service` (gunicorn master + 2 gthread workers). Some
webhooks are sent with their last bytes held back, so they are certainly inside a worker
(blocked reading the body) when that worker is SIGKILLed; others are posted whole from threads
at the same moment. Whatever lost its connection is redelivered with the same MessageSid.
Due: one inbound record per MessageSid, one reply per text, and gunicorn replaces the worker.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import pymongo
import pytest

from app import Child, Supervisor, _free_port, start_embedded_mongo, start_embedded_redis
from tests.conftest import ROOT, new_number, sign
from tests.reliability.support import at_once, reps, signed_post, sms_params, tally, wait_until

FIRST_TEXT = "flat tire at Union Square"  # a new rider's first text: exactly one reply ("where to?")
SECOND_TEXT = "skip"                       # the next step: exactly one reply, the quote
TRAFFIC_THREADS = 3
REPLY_PATIENCE = 60.0  # s: covers RQ's retry back-offs (2, 5, 10 s) and the sweeper's 5 s
SETTLE = 6.5           # s: past the sweeper's INBOUND_STUCK_MS (5 s), so a doubled text would show


def _mask(number: str) -> str:
    return f"{number[:5]}...{number[-2:]}"


# -- the private stack -------------------------------------------------------------------------
@dataclass
class Mongo:
    """The private nx-27017, started by the launcher's own helper; restarted with the very
    same command line (same port, same data dir)."""
    child: Child
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.child.proc.pid

    def stop(self, sig: int) -> None:
        os.kill(self.child.proc.pid, sig)
        try:
            self.child.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.child.proc.kill()
            self.child.proc.wait()

    def start(self) -> None:
        out = open(self.log, "ab")
        self.child.proc = subprocess.Popen(self.child.cmd, env=self.child.env, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        out.close()


@dataclass
class Stack:
    url: str
    proc: subprocess.Popen
    log_path: Path
    mongo: Mongo
    db: pymongo.database.Database
    env: dict[str, str]

    def health(self, timeout: float = 15) -> tuple[int, dict]:
        try:
            r = httpx.get(f"{self.url}/healthz", timeout=timeout)
        except httpx.HTTPError as exc:
            return 0, {"error": type(exc).__name__}
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, {"error": "not JSON", "body": r.text[:200]}

    def post_sms(self, params: dict[str, str]) -> httpx.Response:
        return signed_post(self.url, self.url, "/twilio/sms", params)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@pytest.fixture(scope="module")
def restart_stack(service_env, fake_twilio, fake_geocoder, fake_stripe, tmp_path_factory):
    data = tmp_path_factory.mktemp("restart_stack")
    sup = Supervisor()
    proc = None
    client = None
    try:
        base_env = dict(os.environ)
        redis_url = start_embedded_redis(sup, data, base_env)
        mongo_url = start_embedded_mongo(sup, data, base_env)
        mongo_child = next(c for c in sup.children if c.name == "mongo")
        mongo = Mongo(mongo_child, mongo_url, data / "mongo" / "nx-27017.out")
        port = _free_port()
        tag = uuid.uuid4().hex[:8]
        env = dict(service_env)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the launcher makes one under DATA_DIR
        env.update({"PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                    "DATA_DIR": str(data / "app"), "REDIS_URL": redis_url, "MONGO_URL": mongo_url,
                    "MONGO_DB": f"sc_restart_{tag}", "RQ_QUEUE": f"q_restart_{tag}", "PYTHONUNBUFFERED": "1"})
        log_path = data / "service.log"
        log = open(log_path, "wb")
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        url = env["PUBLIC_BASE_URL"]
        client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
        stack = Stack(url, proc, log_path, mongo, client[env["MONGO_DB"]], env)
        deadline = time.time() + 90
        while stack.health(2)[0] != 200:
            if proc.poll() is not None:
                raise RuntimeError(f"private service exited: {stack.log_tail()}")
            if time.time() > deadline:
                raise RuntimeError(f"private service did not become healthy: {stack.log_tail()}")
            time.sleep(0.3)
        yield stack
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if client is not None:
            client.close()
        sup.stop_all()


# -- traffic -----------------------------------------------------------------------------------
@dataclass
class Sent:
    number: str
    sid: str
    body: str
    started: float
    ended: float = 0.0
    status: int | None = None   # None: the connection failed or timed out
    error: str = ""
    redelivered: list[int | str] = field(default_factory=list)


def _deliver(stack: Stack, number: str, body: str, sid: str | None = None) -> Sent:
    params = sms_params(number, body, sid)
    sent = Sent(number, params["MessageSid"], body, time.time())
    try:
        sent.status = stack.post_sms(params).status_code
    except httpx.HTTPError as exc:
        sent.error = type(exc).__name__
    sent.ended = time.time()
    return sent


def _redeliver(stack: Stack, sent: Sent, attempts: int = 5) -> None:
    """Twilio's retry: the same MessageSid, posted again until it is answered 200."""
    for _ in range(attempts):
        again = _deliver(stack, sent.number, sent.body, sent.sid)
        sent.redelivered.append(again.status if again.status is not None else again.error)
        if again.status == 200:
            return
        time.sleep(1.0)


def _replies(fake_twilio, number: str) -> int:
    return len(fake_twilio.texts_to(number))


def _wait_for_replies(fake_twilio, due: dict[str, int], timeout: float) -> bool:
    return bool(wait_until(lambda: all(_replies(fake_twilio, n) >= k for n, k in due.items()), timeout, 0.2))


TWILIO_PATIENCE = 15.0  # s: Twilio gives up on a webhook after this


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGSTOP"])
def test_texts_survive_a_mongodb_outage_mid_traffic(how, restart_stack, fake_twilio, table):
    stack, sig = restart_stack, getattr(signal, how)
    app_pid = stack.proc.pid
    frozen = sig == signal.SIGSTOP  # the server is there but answers nothing, as on a hung host

    # -- before: riders whose first text is recorded and answered before the outage -------------
    early = [new_number() for _ in range(3)]
    early_sent = [_deliver(stack, n, FIRST_TEXT) for n in early]
    assert [s.status for s in early_sent] == [200] * len(early), [(s.status, s.error) for s in early_sent]
    assert _wait_for_replies(fake_twilio, {n: 1 for n in early}, 20), "no first reply before the outage"

    # -- mid-traffic: three threads text from new numbers until the outage is over ---------------
    traffic: list[Sent] = []
    stop_traffic = threading.Event()
    lock = threading.Lock()

    def rider_thread() -> None:
        while not stop_traffic.is_set():
            sent = _deliver(stack, new_number(), FIRST_TEXT)
            with lock:
                traffic.append(sent)
            time.sleep(0.05)

    threads = [threading.Thread(target=rider_thread, daemon=True) for _ in range(TRAFFIC_THREADS)]
    [t.start() for t in threads]
    redelivered_while_down: list[Sent] = []
    try:
        wait_until(lambda: sum(1 for s in list(traffic) if s.status == 200) >= 4, 20, 0.05)
        killed_at = time.time()
        if frozen:
            os.kill(stack.mongo.pid, signal.SIGSTOP)
        else:
            stack.mongo.stop(sig)
        down_at = time.time()  # from here on nothing posted can reach MongoDB

        # -- while MongoDB is down: Twilio's redelivery of a text already kept (same MessageSid) --
        wait_until(lambda: sum(1 for s in list(traffic) if s.started >= down_at) >= TRAFFIC_THREADS, 40, 0.1)
        for s in [s for s in list(traffic) if s.started >= down_at][:2]:
            redelivered_while_down.append(_deliver(stack, s.number, s.body, s.sid))
        app_alive_while_down = stack.proc.poll() is None
        restarted_at = time.time()
        if frozen:
            os.kill(stack.mongo.pid, signal.SIGCONT)
        else:
            stack.mongo.start()

        # -- after: recovery without restarting app.py -----------------------------------------
        recovered = wait_until(lambda: stack.health(5)[0] == 200, 60, 0.2)
        recovered_in = time.time() - restarted_at
        time.sleep(1.5)  # riders keep texting for a moment after the recovery
    finally:
        stop_traffic.set()
        [t.join(40) for t in threads]
    assert recovered, (f"APP BUG: /healthz of the private service is not 200 within 60 s of nx-27017 being "
                       f"back ({how}): {stack.health()}; log: {stack.log_tail(1500)}")
    assert stack.proc.poll() is None and stack.proc.pid == app_pid and app_alive_while_down, \
        f"app.py exited when MongoDB went away: {stack.log_tail()}"

    keys = lambda sents: [f"in:{s.sid}" for s in sents]  # noqa: E731
    answered_before = [s for s in traffic if s.status == 200 and s.ended <= killed_at]
    posted_when_down = [s for s in traffic if s.started >= down_at and s.started < restarted_at]
    # Texts recorded before the outage are still there.
    kept = stack.db.messages.count_documents({"key": {"$in": keys(early_sent + answered_before)}})

    # Twilio redelivers a dropped connection (same MessageSid); a 5xx is never redelivered.
    failed = [s for s in traffic if s.status is None]
    for s in failed:
        _redeliver(stack, s)
    refused = [(s.status, round(s.started - down_at, 1)) for s in traffic + redelivered_while_down
               if s.status is not None and s.status != 200]
    slow = [round(s.ended - s.started, 1) for s in traffic + redelivered_while_down
            if s.ended - s.started >= TWILIO_PATIENCE]

    # -- after: the early riders go on with their conversations; new riders start one ------------
    second = [_deliver(stack, n, SECOND_TEXT) for n in early]
    late = [_deliver(stack, new_number(), FIRST_TEXT) for _ in range(2)]
    assert [s.status for s in second + late] == [200] * (len(second) + len(late)), \
        f"APP BUG: texts after the outage answered {[(s.status, s.error) for s in second + late]}"

    due = {n: 2 for n in early}
    due.update({s.number: 1 for s in traffic + late})
    _wait_for_replies(fake_twilio, due, REPLY_PATIENCE)
    time.sleep(SETTLE)
    all_sent = early_sent + second + traffic + late
    expected = lost = duplicated = 0
    short, doubled = [], []
    for number, want in due.items():
        got = _replies(fake_twilio, number)
        miss, dup = tally(want, got)
        expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
        if miss:
            short.append(f"{_mask(number)}: {got} of {want}")
        if dup:
            doubled.append(f"{_mask(number)}: {got} for {want}")
    records = {s.sid: stack.db.messages.count_documents({"key": f"in:{s.sid}"}) for s in all_sent}
    unrecorded = [sid for sid, n in records.items() if n == 0]
    multi = [sid for sid, n in records.items() if n > 1]
    unapplied = stack.db.messages.count_documents({"key": {"$in": [f"in:{sid}" for sid in records]},
                                                   "processed": False})
    second_replies = [fake_twilio.texts_to(n)[1].body for n in early if _replies(fake_twilio, n) >= 2]

    in_flight = [s for s in traffic if s.started < down_at and s.ended > killed_at]
    took = [s.ended - s.started for s in posted_when_down]
    injected = {"SIGKILL": "SIGKILLed, then started again on the same port and data dir",
                "SIGTERM": "SIGTERMed, then started again on the same port and data dir",
                "SIGSTOP": "SIGSTOPped (a hung server: connections open, no answer), then SIGCONTed"}[how]
    table.record(f"MongoDB unreachable mid-traffic ({how})",
                 f"nx-27017 of a private `python app.py` stack {injected} while three threads texted; "
                 "two texts redelivered during the outage with the same MessageSid",
                 times=1, expected=expected, lost=lost, duplicated=duplicated,
                 counted="replies at the fake Twilio per rider (texts recorded before, in flight, posted during "
                         "and after the outage), inbound records per MessageSid, webhook answers (200 within 15 s)")
    table.figure(f"MongoDB outage ({how})",
                 f"{len(traffic)} texts from {TRAFFIC_THREADS} threads around the outage: "
                 f"{len(answered_before)} answered before it, {len(in_flight)} in flight as it began, "
                 f"{len(posted_when_down)} posted during it, all answered 200 (in "
                 f"{min(took, default=0):.1f}-{max(took, default=0):.1f} s); "
                 f"{len(failed)} dropped connections redelivered; /healthz 200 again "
                 f"{recovered_in:.1f} s after MongoDB was back, app.py not restarted")

    assert kept == len(early_sent) + len(answered_before), \
        (f"APP BUG: texts answered 200 before the outage are gone after it: {kept} of "
         f"{len(early_sent) + len(answered_before)} inbound records left")
    assert posted_when_down, f"no text was posted while MongoDB was down: {[(s.status, s.error) for s in traffic]}"
    assert not refused, f"APP BUG: the SMS webhook answered (status, s into the outage) {refused}: 200 due"
    assert not slow, f"APP BUG: webhooks took {slow} s: Twilio gives up at {TWILIO_PATIENCE:.0f} s"
    assert all(s.status == 200 for s in redelivered_while_down), \
        f"APP BUG: redeliveries during the outage answered {[s.status for s in redelivered_while_down]}"
    not_taken = [(s.sid[:10], s.redelivered) for s in failed if not s.redelivered or s.redelivered[-1] != 200]
    assert not not_taken, f"APP BUG: redeliveries after the outage not answered 200: {not_taken}"
    assert not unrecorded and not multi, \
        f"APP BUG: inbound records per MessageSid: {len(unrecorded)} missing, {len(multi)} more than once"
    assert not short and not doubled, (
        f"APP BUG: after nx-27017 was back ({how}): replies missing {short}, doubled {doubled}; "
        f"{unapplied} inbound texts still unapplied")
    assert all(body.startswith("Rescue quote:") for body in second_replies), \
        f"APP BUG: the early riders' conversations did not go on after the MongoDB outage: {second_replies}"


# -- the web worker kill -----------------------------------------------------------------------
def _gunicorn(live_service):
    import psutil

    for p in psutil.Process(live_service.pid).children():
        try:
            if "gunicorn" in " ".join(p.cmdline()):
                return p
        except psutil.Error:
            continue
    raise AssertionError("no gunicorn master under the launcher")


def _web_workers(master) -> list[int]:
    import psutil

    pids = []
    for p in master.children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                pids.append(p.pid)
        except psutil.Error:
            continue
    return pids


def _connections(pid: int, port: int) -> int:
    """Established connections the process holds on the service's port (accepted requests)."""
    import psutil

    try:
        return sum(1 for c in psutil.Process(pid).net_connections(kind="tcp")
                   if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)
    except psutil.Error:
        return 0


@dataclass
class HeldRequest:
    """A signed webhook whose last bytes are held back: a gunicorn thread is blocked reading it."""
    number: str
    params: dict[str, str]
    sock: socket.socket
    rest: bytes
    status: int | None = None
    error: str = ""

    @property
    def sid(self) -> str:
        return self.params["MessageSid"]

    def finish(self) -> None:
        try:
            self.sock.sendall(self.rest)
            data = b""
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            if not data:
                self.error = "closed without an answer"
            else:
                self.status = int(data.split(b" ", 2)[1])
        except OSError as exc:
            self.error = type(exc).__name__
        finally:
            self.sock.close()


def _hold(base_url: str, public_url: str, number: str) -> HeldRequest:
    params = sms_params(number, FIRST_TEXT)
    body = urlencode(params).encode()
    signature = sign(public_url + "/twilio/sms", params)
    host = urlsplit(base_url)
    head = (f"POST /twilio/sms HTTP/1.1\r\nHost: {host.netloc}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
            f"X-Twilio-Signature: {signature}\r\nConnection: close\r\n\r\n").encode()
    sock = socket.create_connection((host.hostname, host.port), timeout=30)
    sock.sendall(head + body[:-8])
    return HeldRequest(number, params, sock, body[-8:])


def test_every_text_applied_once_when_a_web_worker_is_sigkilled_mid_request(live_service, services, settings,
                                                                           fake_twilio, table):
    import psutil

    port = urlsplit(live_service.url).port
    master = _gunicorn(live_service)
    rounds = reps(1)
    expected = lost = duplicated = kills = dropped = dropped_held = recorded_when_dropped = 0
    replaced_in: list[float] = []
    problems: list[str] = []
    for _ in range(rounds):
        workers = _web_workers(master)
        assert len(workers) >= 2, f"gunicorn runs {len(workers)} workers"
        # 12 webhooks held inside the workers (body not complete), 8 posted whole at the kill.
        held = [_hold(live_service.url, settings.public_base_url, new_number()) for _ in range(12)]
        # The workers have accepted them (threads blocked reading the bodies); kill the busier one.
        wait_until(lambda: sum(_connections(w, port) for w in workers) >= len(held), 10, 0.05)
        per_worker = {w: _connections(w, port) for w in workers}
        victim = max(per_worker, key=per_worker.get)
        assert per_worker[victim] > 0, f"no request inside a web worker: {per_worker}"
        whole_numbers = [new_number() for _ in range(8)]
        whole_params = [sms_params(n, FIRST_TEXT) for n in whole_numbers]

        def post_whole(i: int) -> int | str:
            try:
                r = signed_post(live_service.url, settings.public_base_url, "/twilio/sms", whole_params[i])
                return r.status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__

        def kill() -> str:
            time.sleep(0.01)
            os.kill(victim, signal.SIGKILL)
            return "killed"

        killed_at = time.time()
        results = at_once([kill] + [lambda i=i: post_whole(i) for i in range(len(whole_params))])
        kills += 1
        whole_status = results[1:]
        for h in held:
            h.finish()
        # Twilio redelivers what lost its connection (same MessageSid).
        deliveries: list[tuple[str, dict[str, str], int | str]] = \
            [(h.number, h.params, h.status if h.status is not None else h.error) for h in held] + \
            [(n, p, s) for n, p, s in zip(whole_numbers, whole_params, whole_status, strict=False)]
        dropped_held += sum(1 for h in held if h.status != 200)
        assert any(h.status != 200 for h in held), \
            f"the kill hit no request in flight: {[(h.status, h.error) for h in held]}"
        odd = [s for _, _, s in deliveries if isinstance(s, int) and s != 200]
        assert not odd, f"APP BUG: webhooks answered {odd} around the worker kill (200 or a dropped connection due)"
        for _number, params, status in deliveries:
            if status == 200:
                continue
            dropped += 1
            recorded_when_dropped += services.db.messages.count_documents({"key": f"in:{params['MessageSid']}"})
            again = None
            for _ in range(5):
                try:
                    again = signed_post(live_service.url, settings.public_base_url, "/twilio/sms", params).status_code
                except httpx.HTTPError as exc:
                    again = type(exc).__name__
                if again == 200:
                    break
                time.sleep(0.5)
            assert again == 200, f"APP BUG: the redelivery after the worker kill was answered {again}"

        # gunicorn replaces the worker.
        def replaced() -> list[int] | None:
            now = _web_workers(master)
            return now if len(now) >= len(workers) and victim not in now else None
        new_workers = wait_until(replaced, 30, 0.1)
        replaced_in.append(time.time() - killed_at)
        assert new_workers, f"gunicorn did not replace the killed web worker: {_web_workers(master)}"
        assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE

        numbers = [n for n, _, _ in deliveries]
        _wait_for_replies(fake_twilio, {n: 1 for n in numbers}, REPLY_PATIENCE)
        time.sleep(SETTLE)
        counts = {n: _replies(fake_twilio, n) for n in numbers}
        records = {p["MessageSid"]: services.db.messages.count_documents({"key": f"in:{p['MessageSid']}"})
                   for _, p, _ in deliveries}
        for _n, got in counts.items():
            miss, dup = tally(1, got)
            expected, lost, duplicated = expected + 1, lost + miss, duplicated + dup
        health = httpx.get(f"{live_service.url}/healthz", timeout=15)
        bad_replies = {_mask(n): got for n, got in counts.items() if got != 1}
        bad_records = {sid[:10]: k for sid, k in records.items() if k != 1}
        if bad_records:
            problems.append(f"APP BUG: inbound records per MessageSid after the worker kill: {bad_records}")
        if bad_replies:
            problems.append(f"APP BUG: replies per text after the worker kill (1 due): {bad_replies}")
        if health.status_code != 200:
            problems.append(f"/healthz after the worker kill: {health.status_code} {health.text}")
    table.record("gunicorn web worker SIGKILLed mid-request",
                 "SIGKILL of one of the two gunicorn workers of `python app.py` while 12 signed SMS webhooks sat "
                 "inside the workers (bodies held back) and 8 more were posted at once; dropped connections "
                 "redelivered with the same MessageSid", times=kills, expected=expected, lost=lost,
                 duplicated=duplicated, counted="replies at the fake Twilio per text, inbound records per MessageSid")
    table.figure("Web worker killed",
                 f"{kills} kill(s): {dropped} of {20 * kills} webhooks lost their connection and were redelivered "
                 f"({dropped_held} held inside the killed worker, {dropped - dropped_held} posted whole at the "
                 f"kill; {recorded_when_dropped} of them already recorded, "
                 f"the redelivery answered 200 without a second "
                 f"record); gunicorn had a new worker {max(replaced_in):.1f} s after the kill")
    assert not problems, "\n".join(problems)
