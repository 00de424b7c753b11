"""The RQ worker class both the Procfile and `python app.py` run, and the job bodies:

    rq worker --with-scheduler --url $REDIS_URL --worker-class dispatch.worker.Worker default-urgent default

(`default` is RQ_QUEUE's default; the urgent queue is listed first so it is drained first.) A
`SimpleWorker` (no fork per job: about 3 ms to start a job instead of 10) that sets up
logging and Sentry once per process, and runs beside RQ's loop, in threads:

- the heartbeat, for /healthz;
- the sweeper: every worker process has one, a Redis lock lets one sweep at a time, and
  nothing in Redis has to survive for the sweeping to go on;
- one thread per drain (inbound texts, the outbox, rescues to search for, payment links), each
  blocked on its kick list (`RqScheduler.next_kick`) and running the drain when kicked (see
  dispatch.adapters.rq_scheduler for why drains are not RQ jobs). A warm shutdown lets a
  running drain finish.

The job and drain bodies build the process's services on first use.
"""
from __future__ import annotations

import threading
import time

import structlog
from rq import SimpleWorker
from rq.utils import import_attribute

from dispatch.adapters.logs import RQ_LOGGERS, adopt, setup_logging
from dispatch.adapters.rq_scheduler import (
    DISPATCH_BATCH,
    DRAIN_DISPATCH,
    DRAIN_LINKS,
    DRAIN_OUTBOX,
    DRAINS,
    HEARTBEAT_SECONDS,
    LINKS_BATCH,
    WorkerHeartbeats,
)
from dispatch.bootstrap import worker_services
from dispatch.config import settings_or_exit
from dispatch.messaging import SEND_BATCH

log = structlog.get_logger(__name__)

SWEEPER_LOCK = "lock:sweeper"
# RQ retakes a dead scheduler's lock only during maintenance (every 10 min by default): after a
# worker is killed, timers and retry back-offs would stall that long.
MAINTENANCE_SECONDS = 30
DRAIN_WAIT_SECONDS = 2  # how long a drain thread blocks on its kick list before it checks for a stop
DRAIN_STOP_SECONDS = 30  # a warm shutdown waits this long for running drains


class Worker(SimpleWorker):
    def __init__(self, *args, **kwargs) -> None:
        self._settings = settings_or_exit()
        setup_logging(self._settings.log_level, self._settings.sentry_dsn, process="worker")
        kwargs.setdefault("maintenance_interval", MAINTENANCE_SECONDS)
        self._beating, self._dead = threading.Lock(), False
        super().__init__(*args, **kwargs)

    def bootstrap(self, *args, **kwargs) -> None:
        super().bootstrap(*args, **kwargs)
        adopt(*RQ_LOGGERS)  # RQ sets its loggers' level here: LOG_LEVEL decides instead

    def execute_job(self, job, queue):
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(process="worker", job_id=job.id, job=job.func_name)
        return super().execute_job(job, queue)

    def work(self, *args, **kwargs):
        if kwargs.get("burst"):  # run the drains kicked so far, the queues, then the drains again
            self._drain_kicked()
            try:
                return super().work(*args, **kwargs)
            finally:
                self._drain_kicked()
        threading.Thread(target=self._beat_forever, name="heartbeat", daemon=True).start()
        threading.Thread(target=self._sweep_forever, name="sweeper", daemon=True).start()
        stopping = threading.Event()
        drains = [threading.Thread(target=self._drain_forever, args=(path, stopping), name=f"drain-{path}",
                                   daemon=True) for path in DRAINS]
        for thread in drains:
            thread.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            stopping.set()
            for thread in drains:
                thread.join(DRAIN_STOP_SECONDS)

    def _drain_forever(self, path: str, stopping: threading.Event) -> None:
        body = import_attribute(path)
        while not stopping.is_set():
            try:
                if worker_services().scheduler.next_kick(path, DRAIN_WAIT_SECONDS):
                    self._run_drain(path, body)
            except Exception:
                log.exception("drain_failed", drain=path)
                stopping.wait(1)

    def _drain_kicked(self) -> None:
        for path in DRAINS:
            while worker_services().scheduler.next_kick(path, 0):
                self._run_drain(path, import_attribute(path))

    @staticmethod
    def _run_drain(path: str, body) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(process="worker", job=path)
        body()

    def register_death(self, *args, **kwargs) -> None:
        with self._beating:  # no beat after this one: a late beat would count a dead worker
            self._dead = True
            try:
                svc = worker_services()
                WorkerHeartbeats(svc.redis, svc.keys).forget(self.name)
            except Exception:  # noqa: BLE001 - Redis gone: the missed beats tell /healthz soon enough
                log.warning("heartbeat_not_forgotten")
        super().register_death(*args, **kwargs)

    def _beat_forever(self) -> None:
        """Its own thread, so a long job or sweep never makes a live worker look dead."""
        while True:
            with self._beating:
                if self._dead:
                    return
                try:
                    svc = worker_services()
                    WorkerHeartbeats(svc.redis, svc.keys).beat(self.name)
                except Exception:  # noqa: BLE001 - Redis away: beat again when it is back
                    log.warning("heartbeat_failed")
            time.sleep(HEARTBEAT_SECONDS)

    def _sweep_forever(self) -> None:
        interval = self._settings.sweep_seconds
        while True:
            time.sleep(interval)
            try:
                svc = worker_services()
                if svc.redis.set(svc.keys(SWEEPER_LOCK), self.name, nx=True, px=int(interval * 900)):
                    svc.sweeper.sweep()
            except Exception:
                log.exception("sweep_failed")


# -- job bodies (dispatch.adapters.rq_scheduler names them) -----------------------------------
def send_text(message_id: str) -> str:
    return worker_services().delivery.deliver(message_id)


def send_pending() -> str:
    svc = worker_services()
    return svc.scheduler.drain(DRAIN_OUTBOX, svc.delivery.drain, SEND_BATCH)


def dispatch_rescue(rescue_id: str) -> str:
    """A search's retry timer."""
    return worker_services().dispatcher.dispatch(rescue_id)


def dispatch_waiting() -> str:
    """The dispatch drain: the rescues waiting for a search, one after another."""
    svc = worker_services()

    def batch() -> int:
        taken = svc.scheduler.waiting_dispatches(DISPATCH_BATCH)
        for rescue_id in taken:
            try:
                svc.dispatcher.dispatch(rescue_id)
            except Exception:  # one rescue's failure must not stop the others; the sweeper re-drives
                log.exception("dispatch_failed", rescue_id=rescue_id)
        return len(taken)

    return svc.scheduler.drain(DRAIN_DISPATCH, batch, DISPATCH_BATCH)


def expire_offer(offer_id: str) -> str:
    return worker_services().dispatcher.expire(offer_id)


def links_waiting() -> str:
    """The links drain: completed rescues waiting for their payment link. A link that fails
    here (Stripe down, the client's own retries spent) goes on as an RQ job with back-off."""
    svc = worker_services()

    def batch() -> int:
        taken = svc.scheduler.waiting_links(LINKS_BATCH)
        for rescue_id in taken:
            try:
                svc.payments.create_link(rescue_id)
            except Exception as exc:  # noqa: BLE001 - its RQ job retries it; the others go on
                log.warning("payment_link_retrying", rescue_id=rescue_id, error=type(exc).__name__)
                svc.scheduler.retry_payment_link(rescue_id)
        return len(taken)

    return svc.scheduler.drain(DRAIN_LINKS, batch, LINKS_BATCH)


def create_payment_link(rescue_id: str) -> str:
    """A link's RQ job, for the retries of one that failed in the drain."""
    return worker_services().payments.create_link(rescue_id)
