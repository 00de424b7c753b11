"""Structured JSON logs for web and worker processes; Sentry when SENTRY_DSN is set.

Call sites pass masked phone numbers (`dispatch.phones.mask`) and never message bodies.
"""
from __future__ import annotations

import logging
import sys

import structlog

_configured = False


def setup_logging(level: str = "INFO", sentry_dsn: str | None = None, process: str = "web") -> None:
    global _configured
    if _configured:
        return
    numeric = logging.getLevelName(level.upper())
    numeric = numeric if isinstance(numeric, int) else logging.INFO
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr,
                        format='{"level":"%(levelname)s","logger":"%(name)s","event":"%(message)s"}')
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(process=process)
    if sentry_dsn:
        import sentry_sdk

        sentry_sdk.init(dsn=sentry_dsn, send_default_pii=False, traces_sample_rate=0.0,
                        max_request_body_size="never")
    _configured = True
