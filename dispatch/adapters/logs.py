"""Structured JSON logs for web and worker processes; Sentry when SENTRY_DSN is set.

Call sites pass masked phone numbers (`dispatch.model.phones.mask`) and never message bodies.
"""
from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_configured = False
PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{8,}\d")
# A live link's token is its only credential (dispatch.model.link): never in a report.
LINK_TOKEN = re.compile(r"/([td])/[A-Za-z0-9_-]{22}(?![A-Za-z0-9_-])")
BODY_KEYS = {"Body", "body", "SpeechResult", "text", "problem_note", "data"}


def scrub(value: Any) -> Any:
    """Mask anything shaped like a phone number or a live link's token and drop message bodies, recursively."""
    if isinstance(value, str):
        value = LINK_TOKEN.sub(r"/\1/[token]", value)
        return PHONE_LIKE.sub(lambda m: "+*******" + re.sub(r"\D", "", m.group(0))[-4:], value)
    if isinstance(value, dict):
        return {k: ("[scrubbed]" if k in BODY_KEYS else scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def _before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("query_string", None)
    return scrub(event)


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
                        max_request_body_size="never", before_send=_before_send)
    _configured = True
