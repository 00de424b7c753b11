"""RQ jobs of the conversation engine."""
from __future__ import annotations

from rq import Retry

APPLY_RETRY = Retry(max=5, interval=[2, 5, 10, 30, 60])


def apply_inbound(message_id: str) -> str:
    """One inbound text's conversation step (the webhook only records and queues it)."""
    from conversations.engine import Engine
    from dispatch.services import worker_services

    return Engine(worker_services()).apply_recorded(message_id)
