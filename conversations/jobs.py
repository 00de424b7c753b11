"""RQ jobs of the conversation engine."""
from __future__ import annotations


def apply_pending() -> str:
    """The inbound drain a recorded text kicks (the webhook only records it)."""
    from conversations.engine import Engine
    from dispatch.jobs import APPLY_PENDING, drain_rounds
    from dispatch.services import worker_services

    svc = worker_services()
    return drain_rounds(svc.jobs, APPLY_PENDING, Engine(svc).apply_pending, svc.jobs.kick_inbound)
