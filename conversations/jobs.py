"""RQ jobs of the conversation engine."""
from __future__ import annotations

from rq import Retry

APPLY_INBOUND = "conversations.jobs.apply_inbound"
APPLY_RETRY = Retry(max=5, interval=[2, 5, 10, 30, 60])


def apply_inbound(message_id: str) -> str:
    """An inbound text whose webhook could not wait for its number's lock, applied in turn."""
    from conversations.engine import Engine
    from dispatch.services import worker_services

    return Engine(worker_services()).apply_recorded(message_id)
