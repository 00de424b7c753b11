"""RQ jobs and the scheduler interface the business core uses to start them.

Every job may run twice (a worker killed mid-job is retried), so each is idempotent: it
re-reads MongoDB and acts only if the work is still to be done.
"""
from __future__ import annotations

from datetime import timedelta

import structlog
from redis.exceptions import RedisError
from rq import Queue, Retry

log = structlog.get_logger(__name__)

SEND_RETRY_INTERVALS = [1, 3, 10, 30, 60]
PAYMENT_RETRY_INTERVALS = [2, 5, 15, 60, 300]
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600


class Jobs:
    """Starting background work. A Redis failure is logged, not raised: MongoDB still holds
    the state, and the sweeper starts whatever was not started."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def now(self, func: str, *args, retry: Retry | None = None) -> None:
        """`func` names a job in this module, or is a dotted path to one elsewhere."""
        try:
            self.queue.enqueue(func if "." in func else f"dispatch.jobs.{func}", *args, retry=retry,
                               result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)
        except RedisError as exc:
            log.warning("enqueue_failed", job=func, error=type(exc).__name__)

    def later(self, seconds: float, func: str, *args) -> None:
        try:
            self.queue.enqueue_in(timedelta(seconds=seconds), f"dispatch.jobs.{func}", *args,
                                  result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)
        except RedisError as exc:
            log.warning("enqueue_failed", job=func, error=type(exc).__name__)

    def send(self, message_id: str) -> None:
        self.now("send_text", message_id,
                 retry=Retry(max=len(SEND_RETRY_INTERVALS), interval=SEND_RETRY_INTERVALS))


    def payment_link(self, rescue_id: str) -> None:
        self.now("create_payment_link", rescue_id,
                 retry=Retry(max=len(PAYMENT_RETRY_INTERVALS), interval=PAYMENT_RETRY_INTERVALS))


def _svc():
    from dispatch.services import worker_services

    return worker_services()


def send_text(message_id: str) -> str:
    return _svc().delivery.deliver(message_id)


def dispatch_rescue(rescue_id: str) -> str:
    return _svc().dispatcher.dispatch(rescue_id)


def expire_offer(offer_id: str) -> str:
    return _svc().dispatcher.expire(offer_id)


def sweep() -> dict:
    return _svc().sweeper.sweep()


def create_payment_link(rescue_id: str) -> str:
    return _svc().payments.create_link(rescue_id)

