"""Last checks over the whole run (this file sorts last): privacy of the logs, and the
opt-out record of every STOP the suite sent.

Logs read: the live service's log (`python app.py`: gunicorn, RQ workers, the launcher)
and everything the pytest process wrote to stderr/stdout or logging while the
reliability tests ran (captured per test phase by tests/reliability/conftest.py).
"""
from __future__ import annotations

import json
import re
import time
import uuid

import httpx

from tests import conftest as root
from tests.conftest import ADMIN_TOKEN, RESCUE_NUMBER
from tests.reliability.support import CANARIES, CAPTURED, STOPS, call_params, canary, quiesce, signed_post, text_stop

LEVEL_RE = re.compile(r"\[\s*(debug|info|warning|error|critical)\s*\]|\b(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")


def _level(line: str) -> str:
    """The level a log line was written at; lines without one (rq, gunicorn, the launcher)
    are what the service prints at its default LOG_LEVEL=INFO."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
            if isinstance(doc, dict) and doc.get("level"):
                return str(doc["level"]).lower()
        except ValueError:
            pass
    match = LEVEL_RE.search(line)
    if match:
        return (match.group(1) or match.group(2)).lower()
    return "info"


def _numbers(fake_twilio) -> set[str]:
    numbers = set(root._used_numbers) | {t.to for t in fake_twilio.sent} | {s.number for s in STOPS}
    return {n for n in numbers if n and n.startswith("+") and n != RESCUE_NUMBER}


def _leaks(lines: list[tuple[str, str]], numbers: set[str], bodies: set[str]) -> list[tuple[str, str, str]]:
    """(where, level, what) for every line holding a full number (E.164 or its 10 national
    digits) or a message body."""
    national = {n: re.compile(rf"(?<!\d){re.escape(n[-10:])}(?!\d)") for n in numbers if len(n) >= 11}
    found = []
    for where, line in lines:
        if not line.strip():
            continue
        for n in numbers:
            if n in line or (n in national and national[n].search(line)):
                found.append((where, _level(line), f"number {n[:4]}...{n[-2:]}: {line.strip()[:200]}"))
                break
        else:
            for body in bodies:
                if body in line:
                    found.append((where, _level(line), f"body {body[:30]!r}: {line.strip()[:200]}"))
                    break
    return found


def test_zz_logs_hold_no_phone_number_and_no_message_body(phone, live_service, services, settings, fake_twilio, table):
    # Traffic of its own, with distinctive bodies on every path that carries one.
    rider, caller = phone(), phone()
    rider.ask(canary("my chain snapped by the bodega"))
    rider.ask(canary("I am near the purple awning"))
    rider.text("HUMAN")
    call_sid = "CA" + uuid.uuid4().hex
    voice = signed_post(live_service.url, settings.public_base_url, "/twilio/voice",
                        call_params(call_sid, caller.number))
    assert voice.status_code == 200
    gather = re.search(r'action="([^"]+)"', voice.text).group(1).replace("&amp;", "&")
    spoken = signed_post(live_service.url, settings.public_base_url, gather[len(settings.public_base_url):],
                         call_params(call_sid, caller.number, SpeechResult=canary("spoken words")))
    assert spoken.status_code == 200
    rescues = httpx.get(f"{live_service.url}/api/rescues?limit=1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    if rescues.json()["rescues"]:
        httpx.post(f"{live_service.url}/api/rescues/{rescues.json()['rescues'][0]['id']}/message", timeout=10,
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                   json={"to": "rider", "body": canary("dispatcher says hello")})
    quiesce(services, 20)
    time.sleep(0.5)  # let the processes flush their logs

    live = [(f"service {path.name}:{i}", line) for path in (live_service.log_path, live_service.err_path)
            for i, line in enumerate(path.read_text(errors="replace").splitlines())]
    captured = [(f"{nodeid} [{phase}]", line) for nodeid, phase, text in CAPTURED
                for line in text.splitlines()]
    numbers = _numbers(fake_twilio)
    bodies = set(CANARIES) | {t.body for t in fake_twilio.sent if len(t.body) >= 30 and t.to in numbers}
    leaks = _leaks(live + captured, numbers, bodies)
    info = [leak for leak in leaks if leak[1] in ("info", "debug")]
    higher = [leak for leak in leaks if leak[1] not in ("info", "debug")]
    table.record("Privacy of the logs", "every number the suite used and every body it sent or received (plus "
                 "canary bodies on SMS, voice, HUMAN and dispatcher texts) searched in the service log and the "
                 "pytest process's captured output", times=len(live) + len(captured),
                 expected=len(numbers) + len(bodies), lost=0, duplicated=len(leaks),
                 counted=f"log lines holding a full number or a body ({len(live)} service lines, {len(captured)} "
                 f"captured lines, {len(numbers)} numbers, {len(bodies)} bodies)")
    table.figure("Logs scanned", f"{len(live)} lines of the live service's log and {len(captured)} captured lines of "
                 f"the pytest process, for {len(numbers)} phone numbers and {len(bodies)} message bodies")
    assert not info, "APP BUG: full phone numbers or message bodies in INFO-level log lines:\n" + \
        "\n".join(f"  {w} ({lvl}): {what}" for w, lvl, what in info[:15])
    assert not higher, "APP BUG: full phone numbers or message bodies in WARNING/ERROR log lines:\n" + \
        "\n".join(f"  {w} ({lvl}): {what}" for w, lvl, what in higher[:15])


def test_zz_no_text_reached_any_number_after_it_sent_stop(phone, services, fake_twilio, table):
    """Over the whole run: every STOP any reliability test sent (this one adds its own), and
    every text at the fake Twilio. A text counts against a STOP if Twilio received it after the
    STOP was answered and before any START, unless its send had been claimed before the STOP
    was even sent (already on its way)."""
    rider = phone()
    rider.ask("hi")
    text_stop(rider)
    for body in ("hello?", "Union Square", "y"):
        rider.text(body)
    time.sleep(1.0)
    violations, checked = [], 0
    for stop in list(STOPS):
        for text in fake_twilio.texts_to(stop.number):
            if text.at <= stop.answered_at or (stop.restarted_at and text.at >= stop.restarted_at):
                continue
            checked += 1
            msg = services.db.messages.find_one({"twilio_sid": text.sid}) or {}
            claimed = (msg.get("claimed_at") or 0) / 1000
            if claimed and claimed < stop.sent_at:
                continue  # in flight before the STOP existed
            violations.append(f"{stop.number[:5]}...: {text.body[:80]!r} {text.at - stop.answered_at:.2f} s after STOP")
    table.record("Opt-out across the run", f"{len(STOPS)} STOPs sent by the suite's scenarios",
                 times=len(STOPS), expected=len(STOPS), lost=0, duplicated=len(violations),
                 counted="texts at the fake Twilio after a STOP was answered (and before START)")
    assert not violations, "APP BUG: texts reached numbers after they texted STOP:\n" + "\n".join(violations)
