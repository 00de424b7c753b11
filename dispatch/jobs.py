"""RQ jobs and the scheduler interface the business core uses to start them.

Every job may run twice (a worker killed mid-job is retried), so each is idempotent: it
re-reads MongoDB and acts only if the work is still to be done.

Two queues: workers drain `<RQ_QUEUE>-urgent` (conversation steps, dispatch, offer expiry)
before `<RQ_QUEUE>` (texts out, payment links), so a backlog of sends never delays an
offer or its expiry. A conversation step's job id is derived from its message, so the
sweeper can tell whether it is still waiting before it re-drives it. (Jobs that may be
enqueued again while they run, such as dispatch, keep random ids: RQ deletes a finished
job's hash by id, which would orphan a second copy queued under the same id.)
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import structlog
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.job import Job, JobStatus

log = structlog.get_logger(__name__)

SEND_RETRY_INTERVALS = [1, 3, 10, 30, 60]
PAYMENT_RETRY_INTERVALS = [2, 5, 15, 60, 300]
RESULT_TTL = 60  # results are only for a look at recent jobs; an hour cost Redis ~33 KB per conversation
FAILURE_TTL = 7 * 24 * 3600
APPLY_INBOUND = "conversations.jobs.apply_inbound"
DRAIN = "dispatch.jobs.send_pending"
# Triggers that can fire in bursts for one rescue (a driver freed, a decline, the sweeper):
# at most one such job waits per argument. Without this a backlog fed on its own duplicates.
COALESCED = {"dispatch.jobs.dispatch_rescue"}
PENDING_TTL_SECONDS = 30  # a lost job's mark blocks new ones at most this long
KICK_PREFIX = "sends:kick:"
KICK_TTL_SECONDS = 30
DRAIN_ROUNDS = 8  # batches per drain job before it yields the worker to urgent jobs
# Drained before the other queue: conversation steps, dispatch, expiry, and the outbox drain
# (offers and replies are texts). The other queue holds payment links and per-text retries.
URGENT = {APPLY_INBOUND, "dispatch.jobs.dispatch_rescue", "dispatch.jobs.expire_offer", DRAIN}
# A step takes milliseconds; one "started" longer probably lost its worker. If not, the
# second copy only waits for the number's lock and finds the text applied.
STARTED_STALE = timedelta(seconds=10)
WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}


def urgent_queue_name(queue_name: str) -> str:
    return f"{queue_name}-urgent"


class Jobs:
    """Starting background work. A Redis failure is logged, not raised: MongoDB still holds
    the state, and the sweeper starts whatever was not started."""

    def __init__(self, queue: Queue, urgent: Queue) -> None:
        self.queue, self.urgent = queue, urgent

    @property
    def queues(self) -> list[Queue]:
        """In the order workers take them."""
        return [self.urgent, self.queue]

    def now(self, func: str, *args, retry: Retry | None = None) -> None:
        """`func` names a job in this module, or is a dotted path to one elsewhere."""
        path = _path(func)
        try:
            if path in COALESCED and not self.urgent.connection.set(_pending_key(path, args), "1", nx=True,
                                                                   ex=PENDING_TTL_SECONDS):
                return  # one is queued and has not started: it will see whatever asked for this one
            self._queue(path).enqueue(path, *args, retry=retry, job_id=_job_id(path, args),
                                      result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)
        except RedisError as exc:
            log.warning("enqueue_failed", job=func, error=type(exc).__name__)

    def starting(self, func: str, *args) -> None:
        """A coalesced job clears its mark before it reads any state, so a trigger that
        arrives after this is queued anew and one before it is seen by this run."""
        self.urgent.connection.delete(_pending_key(_path(func), args))

    def later(self, seconds: float, func: str, *args, retry: Retry | None = None) -> None:
        path = _path(func)
        try:
            self._queue(path).enqueue_in(timedelta(seconds=seconds), path, *args, retry=retry,
                                         result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)
        except RedisError as exc:
            log.warning("enqueue_failed", job=func, error=type(exc).__name__)

    def waiting(self, func: str, arg: str) -> bool:
        """A job with a derived id is queued or running for `arg`: re-driving would repeat it."""
        job_id = _job_id(_path(func), (arg,))
        if job_id is None:
            return False
        try:
            job = Job.fetch(job_id, connection=self.urgent.connection)
        except Exception:  # no such job (finished, lost with Redis) or Redis unreachable
            return False
        status = job.get_status(refresh=False)
        if status == JobStatus.STARTED and job.started_at:  # its worker may have been killed mid-job
            return (datetime.now(timezone.utc) - job.started_at.replace(tzinfo=timezone.utc)) < STARTED_STALE
        return status in WAITING

    def send(self, message_id: str, delay: float = 0) -> None:
        """One text's own send job, with back-off retries: for a text that failed in a drain
        or that the sweeper found stuck."""
        retry = Retry(max=len(SEND_RETRY_INTERVALS), interval=SEND_RETRY_INTERVALS)
        if delay:
            self.later(delay, "send_text", message_id, retry=retry)
        else:
            self.now("send_text", message_id, retry=retry)

    def retry_send(self, message_id: str) -> None:
        self.send(message_id, delay=SEND_RETRY_INTERVALS[0])

    def kick_sends(self) -> None:
        """Queue a drain of the outbox unless one is already queued and has not yet looked.

        The drain deletes the kick key before each look at the outbox, and a text is stored
        before it kicks, so a text whose kick finds the key set is seen by that look: no
        text waits for the sweeper. The TTL bounds the damage if a drain job is lost.
        """
        key = f"{KICK_PREFIX}{self.queue.name}"
        try:
            if self.queue.connection.set(key, "1", nx=True, ex=KICK_TTL_SECONDS):
                try:
                    self.urgent.enqueue(DRAIN, self.queue.name, result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)
                except RedisError:
                    self.queue.connection.delete(key)
                    raise
        except RedisError as exc:
            log.warning("enqueue_failed", job="send_pending", error=type(exc).__name__)

    def payment_link(self, rescue_id: str) -> None:
        self.now("create_payment_link", rescue_id,
                 retry=Retry(max=len(PAYMENT_RETRY_INTERVALS), interval=PAYMENT_RETRY_INTERVALS))

    def _queue(self, path: str) -> Queue:
        return self.urgent if path in URGENT else self.queue


def _pending_key(path: str, args: tuple) -> str:
    return f"pending:{path.rsplit('.', 1)[-1]}:{args[0] if args else ''}"


def _path(func: str) -> str:
    return func if "." in func else f"dispatch.jobs.{func}"


def _job_id(path: str, args: tuple) -> str | None:
    if path == APPLY_INBOUND and args and str(args[0]).isalnum():
        return f"apply-{args[0]}"
    return None


def _svc():
    from dispatch.services import worker_services

    return worker_services()


def send_text(message_id: str) -> str:
    return _svc().delivery.deliver(message_id)


def send_pending(queue_name: str) -> str:
    """Drain the outbox: batch after batch until it is empty or DRAIN_ROUNDS have run, then
    hand over to a fresh drain job so urgent work gets the worker in between."""
    svc = _svc()
    sent = 0
    for _ in range(DRAIN_ROUNDS):
        svc.redis.delete(f"{KICK_PREFIX}{queue_name}")
        taken = svc.delivery.drain(svc.jobs.retry_send)
        sent += taken
        if not taken:
            return f"drained:{sent}"
    svc.jobs.kick_sends()
    return f"continued:{sent}"


def dispatch_rescue(rescue_id: str) -> str:
    svc = _svc()
    svc.jobs.starting("dispatch_rescue", rescue_id)
    return svc.dispatcher.dispatch(rescue_id)


def expire_offer(offer_id: str) -> str:
    return _svc().dispatcher.expire(offer_id)


def sweep() -> dict:
    return _svc().sweeper.sweep()


def create_payment_link(rescue_id: str) -> str:
    return _svc().payments.create_link(rescue_id)
