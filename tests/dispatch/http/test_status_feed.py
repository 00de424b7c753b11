"""The status page's feeds (PRODUCT.md §3): the live stream, today's figures, the CSV export."""
from __future__ import annotations

import csv
import io
import threading
import time

import httpx

from tests.conftest import ADMIN_TOKEN, new_number


def make_rescue(services, problem="flat_tire"):
    rider = new_number()
    return services.lifecycle.create(request_key=f"feed-{rider}", rider_phone=rider,
                                     pickup={"lat": 40.7359, "lng": -73.9911, "label": "Union Square"},
                                     dropoff=None, problem=problem, problem_note="", quote_cents=2850,
                                     trip_miles=0.0, surge=1.0, channel="sms")


def test_the_stream_delivers_a_board_event_within_seconds_of_a_change(live_service, services):
    rescue = make_rescue(services)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    seen: list[str] = []
    with httpx.stream("GET", f"{live_service.url}/api/stream", headers=headers, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        changed_at: list[float] = []

        def change():
            time.sleep(0.5)
            changed_at.append(time.monotonic())
            services.dispatcher.cancel(rescue.id, "stream test", by="dispatcher:test")

        threading.Thread(target=change).start()
        event = None
        for line in r.iter_lines():  # other changes (a worker dispatching this rescue) may come first
            seen.append(line)
            if line.startswith("event: board"):
                event = line
            if event and line.startswith("data:") and rescue.id in line and "rescue_cancelled" in line:
                break
        assert changed_at and time.monotonic() - changed_at[0] < 3, "the event came within a few seconds"
    assert any(line.startswith("retry:") for line in seen)


def test_the_stream_needs_a_login(client):
    assert client.get("/api/stream").status_code == 401


def test_figures_come_with_charts(client, admin_headers, services):
    make_rescue(services)
    f = client.get("/api/figures", headers=admin_headers).get_json()
    assert len(f["rescues_per_hour"]) == 24 and sum(f["rescues_per_hour"]) == f["rescues_today"] >= 1
    assert f["charts"]["rescues_per_hour"].startswith("<svg") and "Rescues per hour" in f["charts"]["rescues_per_hour"]
    assert "<svg" in f["charts"]["median_wait"]
    assert f["unfulfilled_share"] is not None and 0 <= f["unfulfilled_share"] <= 1


def test_csv_export_lists_rescues_with_masked_phones(client, admin_headers, services):
    rescue = make_rescue(services)
    r = client.get(f"/api/rescues.csv?q={rescue.code}", headers=admin_headers)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["code"] for row in rows] == [rescue.code]
    assert rows[0]["quote_dollars"] == "28.50" and rescue.rider_phone not in r.get_data(as_text=True)
    assert client.get("/api/rescues.csv?since=nope", headers=admin_headers).status_code == 400
    services.dispatcher.cancel(rescue.id, "test", by="test")
