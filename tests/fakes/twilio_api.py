"""A local stand-in for the Twilio REST API's Messages resource, for the real `twilio` client.

It records every message sent, checks basic auth like Twilio, and can be told to fail
the next N sends with a given HTTP status and Twilio error code.
"""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from tests.fakes.http import FakeServer


@dataclass
class SentText:
    sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    at: float = field(default_factory=time.time)


class FakeTwilio(FakeServer):
    def __init__(self, account_sid: str, auth_token: str) -> None:
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token
        self.sent: list[SentText] = []
        # (http status, twilio code[, only for texts to this number]), consumed in order
        self.failures: list[tuple] = []
        self.requests = 0
        self.arrived = 0  # sends whose body was read, counted before `lock` (a test may hold it)
        self._arrivals = threading.Lock()
        self.delay = 0.0
        self.lock = threading.Lock()

    def fail_next(self, count: int, status: int, code: int, to: str | None = None) -> None:
        """Fail the next `count` sends; with `to`, only sends to that number (the live test
        service may send other texts meanwhile)."""
        with self.lock:
            self.failures.extend([(status, code) if to is None else (status, code, to)] * count)

    def _take_failure(self, to: str) -> tuple[int, int] | None:
        for i, failure in enumerate(self.failures):
            if len(failure) == 2 or failure[2] == to:
                del self.failures[i]
                return failure[0], failure[1]
        return None

    def texts_to(self, phone: str) -> list[SentText]:
        with self.lock:
            return [t for t in self.sent if t.to == phone]

    def wait_for_texts(self, phone: str, count: int, timeout: float = 10.0) -> list[SentText]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            texts = self.texts_to(phone)
            if len(texts) >= count:
                return texts
            time.sleep(0.02)
        raise AssertionError(f"expected {count} texts to {phone}, got {len(self.texts_to(phone))}: "
                             f"{[t.body for t in self.texts_to(phone)]}")

    def _authorised(self, h) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return h.headers.get("Authorization") == f"Basic {expected}"

    def _list(self, h) -> None:
        """GET Messages.json filtered by To (what the sweeper asks after a worker died mid-send)."""
        query = parse_qs(h.path.split("?", 1)[1] if "?" in h.path else "")
        to = query.get("To", [None])[0]
        with self.lock:
            found = [t for t in self.sent if to is None or t.to == to]
        page = {"messages": [{"sid": t.sid, "to": t.to, "from": t.from_, "body": t.body, "status": "sent",
                              "account_sid": self.account_sid,
                              "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t.at))}
                             for t in reversed(found)],
                "next_page_uri": None, "previous_page_uri": None, "page": 0, "page_size": 50,
                "uri": h.path, "first_page_uri": h.path, "start": 0, "end": len(found)}
        self.reply(h, 200, json.dumps(page).encode())

    def handle(self, h) -> None:
        path = h.path.split("?")[0]
        if h.command == "GET" and path == f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            if not self._authorised(h):
                self.reply(h, 401, json.dumps({"code": 20003, "message": "Authenticate", "status": 401}).encode())
                return
            self._list(h)
            return
        if h.command != "POST" or path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            self.reply(h, 404, json.dumps({"code": 20404, "message": "not found", "status": 404}).encode())
            return
        if not self._authorised(h):
            self.reply(h, 401, json.dumps({"code": 20003, "message": "Authenticate", "status": 401}).encode())
            return
        form = {k: v[0] for k, v in parse_qs(h.rfile.read(int(h.headers.get("Content-Length", 0))).decode()).items()}
        with self._arrivals:
            self.arrived += 1
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.requests += 1
            failure = self._take_failure(form.get("To", ""))
        if failure:
            status, code = failure
            self.reply(h, status, json.dumps({"code": code, "message": f"fake failure {code}",
                                              "more_info": "", "status": status}).encode())
            return
        text = SentText(sid="SM" + uuid.uuid4().hex, to=form.get("To", ""), from_=form.get("From", ""),
                        body=form.get("Body", ""), status_callback=form.get("StatusCallback"))
        with self.lock:
            self.sent.append(text)
        self.reply(h, 201, json.dumps({
            "sid": text.sid, "account_sid": self.account_sid, "to": text.to, "from": text.from_,
            "body": text.body, "status": "queued", "num_segments": "1", "direction": "outbound-api",
            "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{text.sid}.json",
        }).encode())
