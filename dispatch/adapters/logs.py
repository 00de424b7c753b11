"""One JSON log stream on stdout for every process `python app.py` starts (PRODUCT.md §2):
our structlog events, RQ's worker and scheduler lines and gunicorn's error and access logs all
leave through one stdlib handler, one line per event, each with an ISO timestamp, a lower-case
level and the process role (web, worker, scheduler, launcher). Sentry when SENTRY_DSN is set.

Call sites pass masked phone numbers (`dispatch.model.phones.mask`) and never message bodies;
the text of other libraries' lines is scrubbed of anything shaped like a phone number.
"""
from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from gunicorn import glogging

_configured = False
_sentry = False
PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{8,}\d")
# A live link's token is its only credential (dispatch.model.link): never in a report.
LINK_TOKEN = re.compile(r"/([td])/[A-Za-z0-9_-]{22}(?![A-Za-z0-9_-])")
BODY_KEYS = {"Body", "body", "SpeechResult", "text", "problem_note", "data"}
ROLES = ("web", "worker", "scheduler", "launcher")
# RQ's own loggers; the CLI gives them plain-text handlers of their own before our worker exists.
RQ_LOGGERS = ("rq.worker", "rq.job", "rq.scheduler")
# RQ's lines about one job (picked up, OK, result kept, retried) and its periodic registry
# cleaning: most of a busy log. They are DEBUG here.
RQ_CHATTER = re.compile(r"\bjob\b|^Worker %s: %s: %s|cleaning registries", re.IGNORECASE)
# Other libraries whose INFO lines belong in the stream; the rest (transitions' callbacks, ...)
# show from WARNING up.
ADOPTED = ("rq.", "gunicorn.")
# In other libraries' free text a number is in our own E.164 form; the looser PHONE_LIKE would
# take "127.0.0.1:5000 (12125)" for one.
E164_LIKE = re.compile(r"\+\d{7,15}\b")


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


class _Stdout(logging.StreamHandler):
    """stdout as it is when a line is written (a test runner swaps it), never a closed old one."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def _role(process: str):
    def add(logger, method_name: str, event: dict[str, Any]) -> dict[str, Any]:
        # RQ's scheduler is a process forked from a worker: its lines say so.
        if event.get("logger") == "rq.scheduler":
            event["process"] = "scheduler"
        else:
            event.setdefault("process", process)
        return event
    return add


def _scrubbed(logger, method_name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in ("event", "exception"):
        if isinstance(event.get(key), str):
            text = LINK_TOKEN.sub(r"/\1/[token]", event[key])
            event[key] = E164_LIKE.sub(lambda m: "+*******" + m.group(0)[-4:], text)
    return event


class _Levels(logging.Filter):
    """LOG_LEVEL for our events and the adopted libraries (RQ's per-job lines at DEBUG);
    WARNING and up for any other library."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, dict):  # not one of ours: structlog hands its event dict over
            if record.name.startswith("rq.") and record.levelno == logging.INFO and RQ_CHATTER.search(str(record.msg)):
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            elif not record.name.startswith(ADOPTED) and record.levelno < logging.WARNING:
                return False
        return record.levelno >= self.threshold


def _numeric(level: str) -> int:
    numeric = logging.getLevelName(level.upper())
    return numeric if isinstance(numeric, int) else logging.INFO


def setup_logging(level: str = "INFO", sentry_dsn: str | None = None, process: str = "web") -> None:
    """Once per process: the one handler on the root logger, and structlog rendering through it."""
    global _configured, _sentry
    if not _configured:
        numeric = _numeric(level)
        shared = [structlog.contextvars.merge_contextvars, structlog.stdlib.add_logger_name,
                  structlog.stdlib.add_log_level, _role(process)]
        handler = _Stdout()
        handler.setFormatter(structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.TimeStamper(fmt="iso", utc=True),
                        structlog.processors.format_exc_info, _scrubbed,
                        structlog.processors.JSONRenderer()]))
        handler.addFilter(_Levels(numeric))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(numeric)
        adopt(*RQ_LOGGERS)
        structlog.configure(
            processors=[*shared, structlog.processors.format_exc_info,
                        structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.stdlib.LoggerFactory(),
            cache_logger_on_first_use=True,
        )
        structlog.contextvars.bind_contextvars(process=process)
        _configured = True
    if sentry_dsn and not _sentry:
        import sentry_sdk

        sentry_sdk.init(dsn=sentry_dsn, send_default_pii=False, traces_sample_rate=0.0,
                        max_request_body_size="never", before_send=_before_send)
        _sentry = True


def adopt(*names: str) -> None:
    """Another library's loggers into the one stream: their own handlers (which would print
    each line a second time, in their own format) removed, their level left to the root's."""
    for name in names:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


class GunicornLogger(glogging.Logger):
    """gunicorn's error log and access log as events of the one stream (`--logger-class`)."""

    def setup(self, cfg) -> None:
        self.cfg = cfg
        self._access_log_enabled = True
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        setup_logging(cfg.loglevel, process="web")
        adopt("gunicorn.error", "gunicorn.access")

    def access(self, resp, req, environ, request_time) -> None:
        """One event per request: method, path without its query (tokens live there), status,
        milliseconds and the request id; never the client's headers or body."""
        atoms = self.atoms(resp, req, environ, request_time)
        structlog.get_logger("gunicorn.access").info(
            "http_request", method=atoms.get("m"), path=scrub(environ.get("PATH_INFO", "")),
            status=getattr(resp, "status_code", None), ms=round(request_time.total_seconds() * 1000, 1),
            request_id=atoms.get("{x-request-id}o") or None)
