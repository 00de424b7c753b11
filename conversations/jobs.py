"""RQ jobs of the conversation engine (dispatch.adapters.rq_scheduler names them)."""
from __future__ import annotations


def apply_pending() -> str:
    """The inbound drain a recorded text kicks (the webhook only records it)."""
    from conversations.engine import INBOUND_BATCH, Engine
    from dispatch.adapters.rq_scheduler import DRAIN_INBOUND
    from dispatch.bootstrap import worker_services

    svc = worker_services()
    return svc.scheduler.drain(DRAIN_INBOUND, Engine(svc).apply_pending, INBOUND_BATCH)
