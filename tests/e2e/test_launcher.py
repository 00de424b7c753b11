"""`python app.py` on its own: embedded stores, sandbox mode, Ctrl-C, restart with data intact."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from app import _free_port
from tests.conftest import ROOT, new_number


def launch(data_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "MONGO_URL", "ADMIN_TOKEN") and not k.startswith(("TWILIO_", "STRIPE_"))}
    env.update({"DATA_DIR": str(data_dir), "PORT": str(port), "HOST": "127.0.0.1"})
    return subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 40) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("service did not become healthy")


def stop(proc: subprocess.Popen) -> list[int]:
    """Ctrl-C, then the pids of everything it had started that is still alive."""
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    time.sleep(0.5)
    return [pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def text(base: str, sender: str, body: str, n: int) -> None:
    r = httpx.post(f"{base}/twilio/sms", data={"MessageSid": f"SMlaunch{n}", "From": sender, "Body": body})
    assert r.status_code == 200


def wait_reply(base: str, token: str, sender: str, count: int, timeout: float = 15) -> list[dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        rescues = httpx.get(f"{base}/api/rescues", headers={"Authorization": f"Bearer {token}"}).json()["rescues"]
        mine = [r for r in rescues if r["rider_phone"] == sender]
        if len(mine) >= count:
            return mine
        time.sleep(0.2)
    raise AssertionError("no rescue")


def test_sandbox_run_stop_and_restart_keeps_everything(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    rider = new_number()
    proc = launch(tmp_path, port)
    try:
        wait_healthy(base, proc)
        token = (tmp_path / "admin_token").read_text().strip()
        for n, body in enumerate(["flat tire at Union Square", "skip", "y"]):
            text(base, rider, body, n)
        [rescue] = wait_reply(base, token, rider, 1)
        assert rescue["status"] == "searching"
        outbox = httpx.get(f"{base}/sandbox/outbox", params={"token": token}).text
        assert "Sandbox mode" in outbox and "Booked! Rescue" in outbox
        assert httpx.get(f"{base}/sandbox/outbox").status_code == 401
    finally:
        leftovers = stop(proc)
    assert leftovers == [], f"still running after Ctrl-C: {leftovers}"

    proc = launch(tmp_path, port)
    try:
        wait_healthy(base, proc)
        assert (tmp_path / "admin_token").read_text().strip() == token
        [again] = wait_reply(base, token, rider, 1)
        assert again["id"] == rescue["id"] and again["code"] == rescue["code"]
        text(base, rider, "STATUS", 3)
        deadline = time.time() + 15
        while "still finding you a driver" not in httpx.get(f"{base}/sandbox/outbox", params={"token": token}).text:
            assert time.time() < deadline, "no STATUS answer after restart"
            time.sleep(0.2)
    finally:
        assert stop(proc) == []

