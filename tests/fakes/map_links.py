"""A local stand-in for the map services' short-link hosts (maps.app.goo.gl, goo.gl, maps.apple):
each known short link answers with the redirect the real host sends. The host is read from the
Host header, as the resolver keeps the link's own host there."""
from __future__ import annotations

import time

from tests.fakes.http import FakeServer


class FakeMapLinks(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.redirects: dict[tuple[str, str], tuple[int, str]] = {}
        self.requests: list[tuple[str, str]] = []  # (host, path with query)
        self.delay = 0.0

    def add(self, host: str, path: str, location: str, status: int = 302) -> None:
        self.redirects[(host, path)] = (status, location)

    def handle(self, h) -> None:
        host = (h.headers.get("Host") or "").split(":")[0].lower()
        self.requests.append((host, h.path))
        if self.delay:
            time.sleep(self.delay)
        found = self.redirects.get((host, h.path))
        if found is None:
            self.reply(h, 404, b"Dynamic Link Not Found", content_type="text/plain")
            return
        status, location = found
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()
