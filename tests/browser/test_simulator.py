"""The sandbox phone simulator in a real browser, against `python app.py` in sandbox mode."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from playwright.sync_api import expect

from app import _free_port
from tests.browser.conftest import shoot
from tests.conftest import ROOT, new_number


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A sandbox service of its own: no Twilio or Stripe keys, its own embedded stores."""
    data = tmp_path_factory.mktemp("sandbox")
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "MONGO_URL") and not k.startswith(("TWILIO_", "STRIPE_"))}
    env.update({"DATA_DIR": str(data), "PORT": str(port), "ADMIN_TOKEN": "sim-token", "SWEEP_SECONDS": "1"})
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield base
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)


def test_simulator_carries_a_rider_and_a_driver_conversation(browser, sandbox):
    base = sandbox
    auth = {"Authorization": "Bearer sim-token"}
    driver_number = new_number()
    httpx.post(f"{base}/api/drivers", headers=auth,
               json={"phone": driver_number, "name": "Dana Ruiz", "vehicle": "Van"})
    context = browser.new_context(base_url=base, viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto("/simulator")
    page.get_by_label("Password").fill("sim-token")
    page.get_by_role("button", name="Sign in").click()
    page.goto("/simulator")

    def send(number: str, text: str, expect_reply: str):
        page.get_by_label("Phone number").fill(number)
        page.get_by_label("Phone number").dispatch_event("change")
        page.get_by_label("Message").fill(text)
        page.get_by_role("button", name="Send").click()
        expect(page.locator("#thread")).to_contain_text(expect_reply, timeout=15000)

    send(driver_number, "ON", "Where are you?")
    send(driver_number, "40.7368,-73.9900", "Location updated")
    rider = new_number()
    send(rider, "flat tire at Union Square", "Where should we take you")
    send(rider, "skip", "Reply Y to book")
    send(rider, "y", "Booked!")
    shoot(page, "simulator.png")
    send(driver_number, "Y", "You've got R")
    send(driver_number, "ARRIVED", "Marked arrived")
    send(driver_number, "DONE", "is complete")
    page.get_by_label("Phone number").fill(rider)
    page.get_by_label("Phone number").dispatch_event("change")
    expect(page.locator("#thread")).to_contain_text("Dana is on the way")
    expect(page.locator("#thread")).to_contain_text("Pay $", timeout=15000)
    # The sandbox payment link opens the clearly labelled test page, which completes payment.
    link = page.locator("#thread").inner_text().split("here: ")[1].split(" ")[0]
    page.goto(link)
    expect(page).to_have_title("TEST PAYMENT (sandbox) - SupportCarr")
    page.get_by_role("button", name="Complete test payment").click()
    expect(page.get_by_role("status")).to_contain_text("Test payment recorded")
    page.goto("/simulator")
    page.get_by_label("Phone number").fill(rider)
    page.get_by_label("Phone number").dispatch_event("change")
    expect(page.locator("#thread")).to_contain_text("Receipt:", timeout=15000)
    context.close()
