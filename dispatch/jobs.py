"""RQ jobs. Every job may run twice (a worker killed mid-job is retried), so each is
idempotent: it re-reads MongoDB and acts only if the work is still to be done."""
from __future__ import annotations

import structlog
from redis.exceptions import RedisError
from rq import Queue, Retry

log = structlog.get_logger(__name__)

SEND_RETRY_INTERVALS = [1, 3, 10, 30, 60]


def enqueue_send(queue: Queue, message_id: str) -> None:
    """Start a send job. If Redis is down the text stays `pending` in MongoDB for the sweeper."""
    try:
        queue.enqueue("dispatch.jobs.send_text", message_id, job_id=f"send-{message_id}",
                      retry=Retry(max=len(SEND_RETRY_INTERVALS), interval=SEND_RETRY_INTERVALS),
                      result_ttl=3600, failure_ttl=7 * 24 * 3600)
    except RedisError as exc:
        log.warning("enqueue_failed", job="send_text", message_id=message_id, error=type(exc).__name__)


def send_text(message_id: str) -> str:
    from dispatch.services import worker_services

    return worker_services().delivery.deliver(message_id)
