"""The log stream (PRODUCT.md §2): one JSON object per line on stdout, for every process
`python app.py` starts. Runs near the end, so the log read is that of the whole suite's live
service (every scenario before it), plus a full rescue driven here: booked, offered, accepted,
arrived, done, paid through a signed Stripe event, rated.

Due: every line parses as a JSON object with an ISO-8601 UTC timestamp, a level in one
lower-case spelling and a process role; no line twice; RQ's per-job lines only at DEBUG (so
absent at LOG_LEVEL=INFO); gunicorn's access and error logs, RQ's worker and scheduler lines and
the launcher's own all in it.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections import Counter

import httpx

from dispatch.adapters.logs import ROLES, RQ_CHATTER
from tests.conftest import post_stripe_event, stripe_event
from tests.e2e.test_dispatch import NEAR_UNION_SQ, book, online_driver, rescue
from tests.reliability.support import quiesce

LEVELS = {"debug", "info", "warning", "error", "critical"}


def _full_rescue(live_service, phone, fake_stripe) -> None:
    driver_phone, rider = phone(), phone()
    online_driver(live_service, driver_phone, "Lou Reyes", NEAR_UNION_SQ)
    code = book(rider)
    driver_phone.wait_for(f"offer {code}")
    driver_phone.ask("Y")
    driver_phone.ask("ARRIVED")
    driver_phone.ask("DONE")
    link = rider.wait_for("Pay $", timeout=15)
    session_id = re.search(r"https://\S+", link).group(0).rsplit("/", 1)[1]
    paid = {**fake_stripe.sessions[session_id], "payment_status": "paid", "status": "complete",
            "payment_intent": "pi_" + session_id[-20:]}
    url = f"{live_service.url}/stripe/webhook"
    post = lambda payload, headers: httpx.post(url, content=payload, headers=headers, timeout=10)  # noqa: E731
    assert post_stripe_event(post, stripe_event("checkout.session.completed", paid)).status_code == 200
    rider.wait_for("Receipt:")
    rider.ask("5")
    assert rescue(live_service, code)["payment_status"] == "paid"


def _problem(line: str) -> str | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return "not JSON"
    if not isinstance(doc, dict):
        return "not an object"
    stamp = doc.get("timestamp")
    try:
        parsed = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return f"timestamp {stamp!r}"
    if parsed.utcoffset() != dt.timedelta(0):
        return f"timestamp {stamp!r} not UTC"
    if doc.get("level") not in LEVELS:
        return f"level {doc.get('level')!r}"
    if doc.get("process") not in ROLES:
        return f"process {doc.get('process')!r}"
    if str(doc.get("logger", "")).startswith("rq.") and doc["level"] == "info" and RQ_CHATTER.search(doc["event"]):
        return "RQ per-job line at INFO"
    return None


def test_zz_every_log_line_is_one_json_event_with_time_level_and_role(slate, phone, live_service, services,
                                                                      fake_stripe, table):
    _full_rescue(live_service, phone, fake_stripe)
    quiesce(services, 20)
    time.sleep(0.5)  # let the processes flush
    lines = [line for line in live_service.log_path.read_text(errors="replace").splitlines() if line.strip()]
    bad = [(i, why, line[:200]) for i, line in enumerate(lines) if (why := _problem(line))]
    twice = {line[:200]: n for line, n in Counter(lines).items() if n > 1}
    docs = [json.loads(line) for line in lines if not _problem(line)]
    loggers = Counter(d.get("logger") for d in docs)
    roles = Counter(d["process"] for d in docs)
    table.record("One JSON log stream", "every stdout line of the suite's `python app.py` (web, workers, RQ scheduler, "
                 "gunicorn error and access log, launcher) after all scenarios and a full rescue, paid and rated",
                 times=len(lines), expected=len(lines), lost=len(bad), duplicated=sum(n - 1 for n in twice.values()),
                 counted="lines that are not one JSON object with an ISO UTC timestamp, a lower-case level and a role, "
                 "or are RQ per-job lines above DEBUG; lines printed twice")
    table.figure("Log stream", f"{len(lines)} lines: " + ", ".join(f"{n} {role}" for role, n in roles.most_common())
                 + f"; {loggers.get('gunicorn.access', 0)} access-log lines, "
                 f"{sum(n for name, n in loggers.items() if str(name).startswith('rq.'))} RQ lines")
    assert not bad, f"APP BUG: {len(bad)} log lines not as PRODUCT.md §2 says, e.g. {bad[:5]}"
    assert not twice, f"APP BUG: log lines printed twice: {list(twice.items())[:5]}"
    assert set(roles) == set(ROLES), f"roles seen: {roles}"
    assert loggers["gunicorn.access"] and loggers["gunicorn.error"] and loggers["rq.worker"] and loggers["rq.scheduler"]
    assert any(d.get("path") == "/twilio/sms" for d in docs if d.get("logger") == "gunicorn.access")
