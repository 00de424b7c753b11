"""Server-Sent Events from the change feed, with heartbeats and a bound on open streams per
web process (each open stream holds a server thread)."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, stream_with_context

HEARTBEAT_SECONDS = 15
# A stream ends after this; the browser's EventSource reconnects on its own.
STREAM_SECONDS = 300
MAX_STREAMS_PER_PROCESS = 4
RETRY_MS = 3000
_open = threading.BoundedSemaphore(MAX_STREAMS_PER_PROCESS)


def stream(feed, channels: list[str], event_name: str,
           render: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None) -> Response | None:
    """An SSE response naming each change `event_name`; None when this process has no stream to spare.

    With `render`, each change is sent as what `render` makes of it (a page's new state, say),
    or not at all when it makes None."""
    if not _open.acquire(blocking=False):
        return None

    def events() -> Iterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            until = time.monotonic() + STREAM_SECONDS
            for change in feed.listen(channels, HEARTBEAT_SECONDS, until):
                if change is None:
                    yield ": heartbeat\n\n"
                    continue
                data = render(change[1]) if render else change[1]
                if data is not None:
                    yield f"event: {event_name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        finally:
            _open.release()

    return Response(stream_with_context(events()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
