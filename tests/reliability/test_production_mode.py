"""Production mode (PRODUCT.md §2), tried as an operator would: `python app.py` itself.

Refusals -- each production need left out in turn (and an `http://` PUBLIC_BASE_URL, and
unknown APP_ENV values): due is exit code 2, exactly one line on stderr naming what is
missing, no traceback, and nothing started (no embedded store under DATA_DIR).

A complete production configuration -- pointed at the suite's stores and fakes: the service
starts, and the sandbox pages (simulator, outbox, test payment) are not there; an unsigned
text is refused.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from app import _free_port
from dispatch.config import CONFIG_ERROR_EXIT, PRODUCTION_NEEDS
from tests.conftest import ROOT

FULL = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "prod-token", "TWILIO_PHONE_NUMBER": "+12125550100",
        "ADMIN_TOKEN": "prod-admin", "PUBLIC_BASE_URL": "https://dispatch.example.com",
        "MONGO_URL": "mongodb://127.0.0.1:1/", "REDIS_URL": "redis://127.0.0.1:1/0",
        "STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}
SANDBOX_PAGES = ("/simulator", "/simulator/messages", "/sandbox/outbox", "/sandbox/pay/cs_test_1")


def _bare_env(tmp_path) -> dict[str, str]:
    """The machine's environment without any of the service's own settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in PRODUCTION_NEEDS and not k.startswith(("TWILIO_", "STRIPE_", "APP_ENV"))}
    env["DATA_DIR"] = str(tmp_path)
    return env


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, timeout=60, text=True)


def _cases() -> list[tuple[str, dict[str, str], str]]:
    cases = [(f"without {name}", {"APP_ENV": "production", **{k: v for k, v in FULL.items() if k != name}}, name)
             for name in PRODUCTION_NEEDS]
    cases.append(("http:// PUBLIC_BASE_URL", {"APP_ENV": "production", **FULL, "PUBLIC_BASE_URL": "http://x.example"},
                  "https:// PUBLIC_BASE_URL"))
    cases.append(("nothing set", {"APP_ENV": "production"}, ", ".join(PRODUCTION_NEEDS)))
    for typo in ("prod", "Production", "staging"):
        cases.append((f"APP_ENV={typo}", {"APP_ENV": typo, **FULL}, repr(typo)))
    return cases


def test_production_refuses_with_one_line_naming_what_is_missing(tmp_path, table):
    bad: list[str] = []
    cases = _cases()
    for label, settings, named in cases:
        data = tmp_path / uuid.uuid4().hex[:8]
        result = _run({**_bare_env(data), **settings})
        lines = result.stderr.splitlines()
        fine = (result.returncode == CONFIG_ERROR_EXIT and len(lines) == 1 and named in lines[0]
                and "Traceback" not in result.stderr and not result.stdout.strip()
                and not (data / "redis").exists() and not (data / "mongo").exists())
        if not fine:
            bad.append(f"{label}: exit {result.returncode}, stderr {result.stderr[-400:]!r}, "
                       f"stdout {result.stdout[-200:]!r}")
    table.record("Production-mode refusals", f"`python app.py` with APP_ENV=production and each of the "
                 f"{len(PRODUCTION_NEEDS)} production settings left out in turn, an http:// PUBLIC_BASE_URL, none "
                 "set, and APP_ENV=prod / Production / staging", times=len(cases), expected=len(cases),
                 lost=len(bad), duplicated=0,
                 counted="exit code 2 with exactly one stderr line naming what is missing, no traceback, "
                 "no store started")
    assert not bad, "APP BUG: production refusals not as PRODUCT.md §2 says:\n" + "\n".join(bad)


def test_procfile_processes_refuse_bad_settings_with_one_line(service_env, tmp_path, table):
    """A platform runs the Procfile, not `python app.py`: its web and worker processes stop at
    once on a bad setting, with the same one line, instead of booting workers that fail (or, for
    the web, answering every request with a 500)."""
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ": " in line)
    bad: list[str] = []
    for name, command in procfile.items():
        env = {**service_env, "APP_ENV": "prod", "DATA_DIR": str(tmp_path), "PATH": os.environ["PATH"]}
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        command = command.replace("0.0.0.0", "127.0.0.1")  # it stops before binding; never bind wider anyway
        result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, timeout=60,
                                text=True)
        lines = result.stderr.splitlines()
        if not (result.returncode == CONFIG_ERROR_EXIT and lines and lines[-1].startswith("supportcarr: APP_ENV")
                and "Traceback" not in result.stderr + result.stdout):
            bad.append(f"{name}: exit {result.returncode}, stderr {result.stderr[-400:]!r}, "
                       f"stdout {result.stdout[-300:]!r}")
    table.record("Procfile processes with a bad setting", "each Procfile command (web: gunicorn, worker: rq "
                 "worker) started with APP_ENV=prod", times=len(procfile), expected=len(procfile), lost=len(bad),
                 duplicated=0, counted="exit code 2 with the one line naming the setting, no traceback")
    assert len(procfile) == 2 and not bad, "APP BUG: a Procfile process did not refuse cleanly:\n" + "\n".join(bad)


@pytest.fixture
def production_service(service_env, tmp_path):
    port = _free_port()
    env = {**service_env, "APP_ENV": "production", "PORT": str(port), "RQ_WORKERS": "1",
           "PUBLIC_BASE_URL": f"https://127.0.0.1:{port}", "DATA_DIR": str(tmp_path / "app"),
           "RQ_QUEUE": f"q_prod_{uuid.uuid4().hex[:8]}"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(tmp_path / "service.log", "wb")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "service.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "production service did not become healthy"
            time.sleep(0.3)
        yield base, env
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_production_serves_no_sandbox_page(production_service, table):
    base, env = production_service
    token = env["ADMIN_TOKEN"]
    answers = {path: httpx.get(f"{base}{path}", params={"token": token},
                               headers={"Authorization": f"Bearer {token}"}).status_code for path in SANDBOX_PAGES}
    answers["POST /sandbox/pay/cs_test_1"] = httpx.post(f"{base}/sandbox/pay/cs_test_1").status_code
    answers["unsigned POST /twilio/sms"] = httpx.post(f"{base}/twilio/sms", data={
        "MessageSid": "SMprod1", "From": "+12125550123", "Body": "hi"}).status_code
    served = {k: v for k, v in answers.items() if v < 400 or v >= 500}
    table.record("Sandbox pages in production", "a complete APP_ENV=production `python app.py` asked for the phone "
                 "simulator, its messages, the sandbox outbox and the test-payment page (GET and POST, with the admin "
                 "token), and sent an unsigned text", times=len(answers), expected=len(answers), lost=len(served),
                 duplicated=0, counted="4xx answers (none served)")
    assert not served, f"APP BUG: production serves sandbox pages or unsigned texts: {served}"
    assert answers["unsigned POST /twilio/sms"] == 403
