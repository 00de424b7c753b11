"""RQ jobs and the scheduler interface the business core uses to start them.

Every job may run twice (a worker killed mid-job is retried), so each is idempotent: it
re-reads MongoDB and acts only if the work is still to be done.

Two queues: workers drain `<RQ_QUEUE>-urgent` (conversation steps, dispatch, offer expiry,
the outbox drain) before `<RQ_QUEUE>` (payment links, retries of single texts), so slow or
retried vendor calls never delay an offer or its expiry. Work that arrives in floods (inbound texts, texts out) is recorded in
MongoDB and "kicks" a drain job that takes it in batches; dispatch triggers for one rescue
coalesce into the one job already waiting.
"""
from __future__ import annotations

from datetime import timedelta

import structlog
from redis.exceptions import RedisError
from rq import Queue, Retry

log = structlog.get_logger(__name__)

SEND_RETRY_INTERVALS = [1, 3, 10, 30, 60]
PAYMENT_RETRY_INTERVALS = [2, 5, 15, 60, 300]
RESULT_TTL = 60  # results are only for a look at recent jobs; an hour cost Redis ~33 KB per conversation
FAILURE_TTL = 7 * 24 * 3600
DRAIN = "dispatch.jobs.send_pending"
APPLY_PENDING = "conversations.jobs.apply_pending"
# Triggers that can fire in bursts for one rescue (a driver freed, a decline, the sweeper):
# at most one such job waits per argument. Without this a backlog fed on its own duplicates.
COALESCED = {"dispatch.jobs.dispatch_rescue"}
PENDING_TTL_SECONDS = 30  # a lost job's mark blocks new ones at most this long
KICK_PREFIX = "kick:"
KICK_TTL_SECONDS = 15
DRAIN_ROUNDS = 8  # batches per drain job before it yields the worker to urgent jobs
# Drained before the other queue: conversation steps, dispatch, expiry, and the outbox drain
# (offers and replies are texts). The other queue holds payment links and per-text retries.
URGENT = {APPLY_PENDING, "dispatch.jobs.dispatch_rescue", "dispatch.jobs.expire_offer", DRAIN}


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
            self._queue(path).enqueue(path, *args, retry=retry,
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
        self._kick(DRAIN)

    def kick_inbound(self) -> None:
        self._kick(APPLY_PENDING)

    def kicked(self, drain: str) -> None:
        """A drain clears its kick before each look at its work (see `_kick`)."""
        self.urgent.connection.delete(_kick_key(drain, self.queue.name))

    def _kick(self, drain: str) -> None:
        """Queue a drain unless one is already queued and has not yet looked.

        The drain deletes the kick key before each look at MongoDB, and work is stored
        before it kicks, so work whose kick finds the key set is seen by that look: nothing
        waits for the sweeper. The TTL bounds the damage if a drain job is lost.
        """
        key = _kick_key(drain, self.queue.name)
        try:
            if self.urgent.connection.set(key, "1", nx=True, ex=KICK_TTL_SECONDS):
                try:
                    self.urgent.enqueue(drain, result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)
                except RedisError:
                    self.urgent.connection.delete(key)
                    raise
        except RedisError as exc:
            log.warning("enqueue_failed", job=drain, error=type(exc).__name__)

    def payment_link(self, rescue_id: str) -> None:
        self.now("create_payment_link", rescue_id,
                 retry=Retry(max=len(PAYMENT_RETRY_INTERVALS), interval=PAYMENT_RETRY_INTERVALS))

    def _queue(self, path: str) -> Queue:
        return self.urgent if path in URGENT else self.queue


def _kick_key(drain: str, queue_name: str) -> str:
    return f"{KICK_PREFIX}{drain.rsplit('.', 1)[-1]}:{queue_name}"


def _pending_key(path: str, args: tuple) -> str:
    return f"pending:{path.rsplit('.', 1)[-1]}:{args[0] if args else ''}"


def _path(func: str) -> str:
    return func if "." in func else f"dispatch.jobs.{func}"


def _svc():
    from dispatch.services import worker_services

    return worker_services()


def send_text(message_id: str) -> str:
    return _svc().delivery.deliver(message_id)


def drain_rounds(jobs: Jobs, drain: str, take_batch, kick) -> str:
    """Run a drain: batch after batch until nothing is left or DRAIN_ROUNDS have run, then
    hand over to a fresh drain job so other urgent work gets the worker in between."""
    done = 0
    for _ in range(DRAIN_ROUNDS):
        jobs.kicked(drain)
        taken = take_batch()
        done += taken
        if not taken:
            return f"drained:{done}"
    kick()
    return f"continued:{done}"


def send_pending() -> str:
    svc = _svc()
    return drain_rounds(svc.jobs, DRAIN, lambda: svc.delivery.drain(svc.jobs.retry_send), svc.jobs.kick_sends)


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
