"""The Sender port on Twilio: the real `twilio` client (pointed at TWILIO_API_BASE), and the
sandbox stand-in used without credentials."""
from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from dispatch.config import Settings
from dispatch.model.message import OPTED_OUT_CODE
from dispatch.ports import SendFailed

SEND_TIMEOUT_SECONDS = 10
# Opted out, or not a number that can get texts: sending again cannot help.
NEVER_RETRY_CODES = {OPTED_OUT_CODE, 21211, 21614, 21408, 21612}
CLOCK_SKEW_SECONDS = 5


class _BaseUrlHttpClient(TwilioHttpClient):
    """The client has no base-URL setting: rewrite scheme and host of every request."""

    def __init__(self, base_url: str, **kwargs) -> None:
        super().__init__(**kwargs)
        parts = urlsplit(base_url)
        self._scheme, self._netloc = parts.scheme, parts.netloc

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        url = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, url, *args, **kwargs)


def twilio_client(settings: Settings) -> Client:
    http = None
    if settings.twilio_api_base != "https://api.twilio.com":
        http = _BaseUrlHttpClient(settings.twilio_api_base, timeout=SEND_TIMEOUT_SECONDS)
    else:
        http = TwilioHttpClient(timeout=SEND_TIMEOUT_SECONDS)
    return Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http)


class TwilioSender:
    """One client per thread: a send job delivers a batch on a thread pool, and the client's
    HTTP session (and its last_request/last_response) is not safe to share."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._from = settings.twilio_phone_number
        self._local = threading.local()

    @property
    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = twilio_client(self._settings)
        return client

    def send(self, to: str, body: str, status_callback: str | None) -> str:
        try:
            kwargs = {"to": to, "from_": self._from, "body": body}
            if status_callback:
                kwargs["status_callback"] = status_callback
            return self._client.messages.create(**kwargs).sid
        except (TwilioRestException, TwilioServiceException) as exc:
            # 9.x raises TwilioServiceException for problem-details bodies; both carry status and code.
            status, code = int(getattr(exc, "status", 0) or 0), getattr(exc, "code", None)
            transient = code not in NEVER_RETRY_CODES and (status == 429 or status >= 500)
            raise SendFailed(str(exc), code=code or status, transient=transient,
                             opted_out=code == OPTED_OUT_CODE) from exc
        except TwilioException as exc:  # connection errors, timeouts, 9.x service exceptions
            raise SendFailed(str(exc), code=None, transient=True) from exc
        except OSError as exc:
            raise SendFailed(str(exc), code=None, transient=True) from exc

    def find_sent(self, to: str, body: str, since_ms: int) -> list[str]:
        # Twilio filters DateSent by day; the day before covers a send just after midnight.
        since = datetime.fromtimestamp(since_ms / 1000, tz=UTC) - timedelta(days=1)
        # Only a text created after this one was claimed can be it (less a little clock skew).
        claimed = datetime.fromtimestamp(since_ms / 1000, tz=UTC) - timedelta(seconds=CLOCK_SKEW_SECONDS)
        try:
            return [m.sid for m in self._client.messages.list(to=to, date_sent_after=since, limit=50)
                    if m.body == body and (m.date_created is None or m.date_created >= claimed)]
        except (TwilioException, OSError) as exc:
            raise SendFailed(str(exc), code=None, transient=True) from exc


class SandboxSender:
    """No credentials: the message records are the outbox, shown at /sandbox/outbox."""

    def send(self, to: str, body: str, status_callback: str | None) -> str:
        return f"SANDBOX{uuid.uuid4().hex}"

    def find_sent(self, to: str, body: str, since_ms: int) -> list[str]:
        return []  # nothing leaves the machine, so a half-done send is simply done again
