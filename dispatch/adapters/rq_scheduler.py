"""The Scheduler port on RQ: which job runs each kind of background work, on which queue.

Every job may run twice (a worker killed mid-job is retried), so each body in
`dispatch.worker` is idempotent: it re-reads the records and acts only if the work is
still to be done.

Two queues: workers take `<RQ_QUEUE>-urgent` (the offer timers, a search's retry timer)
before `<RQ_QUEUE>` (retries of payment links and of single texts), so slow or retried vendor
calls never delay an offer's expiry. Work that comes often and is short (inbound texts, texts
out, a search for a rescue now, a payment link) is written down (texts in MongoDB, rescues to
search or to bill in Redis sets) and "kicks" a drain that takes it in batches. A drain is not an RQ job: RQ spends about
60 Redis commands on the bookkeeping of each job, more than the work of a short drain, so
each worker process has a thread per drain blocked on the drain's kick list (`next_kick`),
and a kick is two commands. Dispatch triggers for one rescue coalesce in the set until a
drain takes it. A payment link that fails in its drain becomes an RQ job with back-off
retries: only failures pay RQ's bookkeeping, and the drain of links is its own thread, so a
slow Stripe call never holds up a search.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import structlog
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.job import Job

from dispatch.adapters.redis_keys import KeySpace

log = structlog.get_logger(__name__)

SEND_RETRY_INTERVALS = [1, 3, 10, 30, 60]
PAYMENT_RETRY_INTERVALS = [2, 5, 15, 60, 300]
RESULT_TTL = 60  # results are only for a look at recent jobs; an hour cost Redis ~33 KB per conversation
FAILURE_TTL = 7 * 24 * 3600
# The job bodies, by dotted path (RQ imports them in the worker).
SEND_TEXT = "dispatch.worker.send_text"
DRAIN_OUTBOX = "dispatch.worker.send_pending"
DISPATCH_RESCUE = "dispatch.worker.dispatch_rescue"
EXPIRE_OFFER = "dispatch.worker.expire_offer"
PAYMENT_LINK = "dispatch.worker.create_payment_link"
DRAIN_INBOUND = "conversations.jobs.apply_pending"
DRAIN_DISPATCH = "dispatch.worker.dispatch_waiting"
DRAIN_LINKS = "dispatch.worker.links_waiting"
# Run by each worker's drain threads, not queued (see above).
DRAINS = (DRAIN_INBOUND, DRAIN_OUTBOX, DRAIN_DISPATCH, DRAIN_LINKS)
DISPATCH_BATCH = 16  # rescues one look of the dispatch drain takes
LINKS_BATCH = 8  # completed rescues one look of the links drain takes (a Stripe call each)
# Taken before the other queue: the timers. The other queue holds the retries of payment links and of texts.
URGENT = {DISPATCH_RESCUE, EXPIRE_OFFER}
KICK_PREFIX = "kick:"
DRAIN_ROUNDS = 8  # batches per drain job before it yields the worker to urgent jobs
# KEYS: the kick list[, a work set]; ARGV: [the member to add].
KICK_SCRIPT = """
if KEYS[2] then redis.call('SADD', KEYS[2], ARGV[1]) end
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('LPUSH', KEYS[1], '1') end
return 1
"""
HEARTBEAT_KEY = "workers:heartbeat"
HEARTBEAT_SECONDS = 2.0
# A worker that missed this many beats is dead (killed, or its machine gone).
HEARTBEAT_MISSES = 3


def urgent_queue_name(queue_name: str) -> str:
    return f"{queue_name}-urgent"


class RqScheduler:
    """A Redis failure is logged, not raised: MongoDB still holds the state, and the sweeper
    starts whatever was not started."""

    def __init__(self, queue: Queue, urgent: Queue, keys: KeySpace) -> None:
        self.queue, self.urgent, self.keys = queue, urgent, keys
        self._kick_script = urgent.connection.register_script(KICK_SCRIPT)

    @property
    def queues(self) -> list[Queue]:
        """In the order workers take them."""
        return [self.urgent, self.queue]

    # -- the Scheduler port ------------------------------------------------------------------
    def dispatch(self, rescue_id: str, delay: float = 0) -> None:
        """Now: into the set the dispatch drain takes (triggers that fire in bursts for one
        rescue, a driver freed, a decline, the sweeper, fold into one); later: a timer job."""
        if delay:
            self._later(delay, DISPATCH_RESCUE, rescue_id)
            return
        self._kick(DRAIN_DISPATCH, into=(self._dispatch_key, rescue_id))

    def expire_offer(self, offer_id: str, after_seconds: float, rearm: bool = False) -> None:
        # The first timer has a known id, so an answered offer's timer can be taken back
        # (about 60 commands of RQ bookkeeping saved per offer); a re-armed one runs.
        self._later(after_seconds, EXPIRE_OFFER, offer_id, job_id=None if rearm else _timer_id(offer_id))

    def cancel_expiry(self, offer_id: str) -> None:
        job_id = _timer_id(offer_id)
        try:
            if self.urgent.scheduled_job_registry.remove(job_id):
                self.urgent.connection.delete(Job.key_for(job_id))
        except RedisError as exc:
            log.warning("cancel_failed", job=EXPIRE_OFFER, error=type(exc).__name__)

    def payment_link(self, rescue_id: str) -> None:
        """Into the set the links drain takes; a resend or a re-drive while one waits folds in."""
        self._kick(DRAIN_LINKS, into=(self._links_key, rescue_id))

    def retry_payment_link(self, rescue_id: str) -> None:
        """A link whose drain attempt failed: its own RQ job after the first back-off, then
        RQ's retries (as a text that failed in the outbox drain)."""
        self._later(PAYMENT_RETRY_INTERVALS[0], PAYMENT_LINK, rescue_id,
                    retry=Retry(max=len(PAYMENT_RETRY_INTERVALS) - 1, interval=PAYMENT_RETRY_INTERVALS[1:]))

    def send_text(self, message_id: str, delay: float = 0) -> None:
        """One text's own send job, with back-off retries: for a text that failed in a drain
        or that the sweeper found stuck."""
        retry = Retry(max=len(SEND_RETRY_INTERVALS), interval=SEND_RETRY_INTERVALS)
        if delay:
            self._later(delay, SEND_TEXT, message_id, retry=retry)
        else:
            self._now(SEND_TEXT, message_id, retry=retry)

    def retry_send(self, message_id: str) -> None:
        self.send_text(message_id, delay=SEND_RETRY_INTERVALS[0])

    def kick_outbox(self) -> None:
        self._kick(DRAIN_OUTBOX)

    def kick_inbound(self) -> None:
        self._kick(DRAIN_INBOUND)

    # -- for the job and drain bodies --------------------------------------------------------
    @property
    def _dispatch_key(self) -> str:
        return self.keys(f"dispatch:waiting:{self.queue.name}")

    @property
    def _links_key(self) -> str:
        return self.keys(f"links:waiting:{self.queue.name}")

    def waiting_dispatches(self, limit: int) -> list[str]:
        """Take up to `limit` rescues waiting for a search. A drain takes them before it reads
        any state, so a trigger after this puts the rescue back and one before it is seen."""
        return self._take(self._dispatch_key, limit)

    def waiting_links(self, limit: int) -> list[str]:
        """Take up to `limit` completed rescues waiting for their payment link (as above). A
        drain thread killed after taking one loses it to the sweeper's re-drive."""
        return self._take(self._links_key, limit)

    def _take(self, key: str, limit: int) -> list[str]:
        taken = self.urgent.connection.spop(key, limit) or []
        return [t.decode() if isinstance(t, bytes) else t for t in taken]

    def dispatch_waiting(self, rescue_id: str) -> bool:
        return bool(self.urgent.connection.sismember(self._dispatch_key, rescue_id))

    def next_kick(self, drain: str, wait_seconds: int) -> bool:
        """Wait up to `wait_seconds` (0: do not wait) for `drain` to be kicked; True once it was.
        One waiting drain thread, in whichever worker, takes each kick."""
        key = self.keys(_kick_list(drain, self.queue.name))
        if wait_seconds:
            return self.urgent.connection.brpop([key], timeout=wait_seconds) is not None
        return self.urgent.connection.rpop(key) is not None

    def kicks_waiting(self, drain: str) -> int:
        return int(self.urgent.connection.llen(self.keys(_kick_list(drain, self.queue.name))))

    def drain(self, drain: str, take_batch: Callable[[], int], batch_size: int) -> str:
        """Run a drain: batch after batch until a batch comes back short of `batch_size` or
        DRAIN_ROUNDS have run, then kick it again so the other drains and threads get their
        turn in between. The kick this drain took left the list empty, so work stored after
        it was taken has kicked again: no second, empty look is needed."""
        done = 0
        for _ in range(DRAIN_ROUNDS):
            taken = take_batch()
            done += taken
            if taken < batch_size:
                return f"drained:{done}"
        self._kick(drain)
        return f"continued:{done}"

    # -- RQ ----------------------------------------------------------------------------------
    def _now(self, path: str, arg: str, retry: Retry | None = None) -> None:
        try:
            self._queue(path).enqueue(path, arg, retry=retry, result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)
        except RedisError as exc:
            log.warning("enqueue_failed", job=path, error=type(exc).__name__)

    def _later(self, seconds: float, path: str, arg: str, retry: Retry | None = None,
               job_id: str | None = None) -> None:
        try:
            self._queue(path).enqueue_in(timedelta(seconds=seconds), path, arg, retry=retry, job_id=job_id,
                                         result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)
        except RedisError as exc:
            log.warning("enqueue_failed", job=path, error=type(exc).__name__)

    def _kick(self, drain: str, into: tuple[str, str] | None = None) -> None:
        """Wake a drain thread unless a kick is already waiting in the list for one (`into`:
        first add this member to this set, the drain's work list), in one round trip.

        Work is stored before it kicks, and a waiting kick has not yet been taken by a drain,
        so that drain's look will see the work: nothing waits for the sweeper. Taking the kick
        is the only mark that a drain is on its way, so a drain thread killed between taking a
        kick and looking loses that one kick, never the ones after it (the sweeper kicks for
        what it left)."""
        keys = [self.keys(_kick_list(drain, self.queue.name))]
        args: list[str] = []
        if into:
            keys.append(into[0])
            args.append(into[1])
        try:
            self._kick_script(keys=keys, args=args)
        except RedisError as exc:
            log.warning("enqueue_failed", job=drain, error=type(exc).__name__)

    def _queue(self, path: str) -> Queue:
        return self.urgent if path in URGENT else self.queue


def _timer_id(offer_id: str) -> str:
    return f"expire-{offer_id}"


def _kick_list(drain: str, queue_name: str) -> str:
    return f"{KICK_PREFIX}{drain.rsplit('.', 1)[-1]}:{queue_name}:waiting"


class WorkerHeartbeats:
    """Liveness for /healthz: this deployment's workers that beat within the last few beats.
    Not RQ's worker registry, which counts every deployment's workers on the Redis and a
    killed one until its key expires, and which Redis can lose."""

    def __init__(self, redis: Redis, keys: KeySpace) -> None:
        self.redis, self.key = redis, keys(HEARTBEAT_KEY)

    def beat(self, worker_name: str) -> None:
        now = time.time()
        pipe = self.redis.pipeline()
        pipe.zadd(self.key, {worker_name: now})
        pipe.zremrangebyscore(self.key, 0, now - HEARTBEAT_SECONDS * HEARTBEAT_MISSES)
        pipe.execute()

    def forget(self, worker_name: str) -> None:
        """A worker that stops cleanly is gone at once."""
        self.redis.zrem(self.key, worker_name)

    def alive(self) -> int:
        return int(self.redis.zcount(self.key, time.time() - HEARTBEAT_SECONDS * HEARTBEAT_MISSES, "+inf"))
