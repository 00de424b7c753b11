"""Logs, metrics and Sentry scrubbing."""
from __future__ import annotations

import httpx

from dispatch.adapters.logs import _before_send, scrub
from tests.conftest import ADMIN_TOKEN


def test_scrub_masks_numbers_and_drops_bodies():
    event = {"message": "failed for +12125550123 and (646) 555-0199", "extra": {"Body": "I'm at 5th & 23rd",
             "phones": ["+13475550111"]}, "request": {"data": {"From": "+12125550123"}, "url": "/twilio/sms"}}
    clean = _before_send(event, {})
    text = repr(clean)
    assert "2125550123" not in text and "5550199" not in text and "3475550111" not in text
    assert "5th & 23rd" not in text and clean["request"] == {"url": "/twilio/sms"}
    assert clean["message"].endswith("0199") and "+*******0123" in clean["message"]
    assert scrub({"n": 3, "ok": True}) == {"n": 3, "ok": True}


def test_scrub_drops_live_link_tokens_from_urls():
    token = "m_k6syu93cyVUFcqAVOwCg"
    event = {"request": {"url": f"https://dispatch.example/t/{token}/state.json"},
             "message": f"failed on /d/{token}/location", "breadcrumbs": [{"url": f"/t/{token}"}]}
    clean = _before_send(event, {})
    assert token not in repr(clean)
    assert clean["request"]["url"] == "https://dispatch.example/t/[token]/state.json"
    assert clean["message"] == "failed on /d/[token]/location"


def test_metrics_need_the_token_and_count_across_processes(phone, live_service):
    assert httpx.get(f"{live_service.url}/metrics").status_code == 401
    rider = phone()
    rider.ask("hello")
    r = httpx.get(f"{live_service.url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200
    body = r.text
    for name in ("supportcarr_webhook_seconds_bucket", "supportcarr_messages_in_total",
                 "supportcarr_messages_out_total", "supportcarr_rescues", "supportcarr_queue_depth",
                 "supportcarr_failed_jobs", "supportcarr_mongo_ops_total", "supportcarr_redis_commands_total"):
        assert name in body, name
    # RQ's own connection in the workers is counted too: only RQ waits on a queue with BLPOP.
    assert 'supportcarr_redis_commands_total{command="BLPOP"}' in body
    assert 'supportcarr_mongo_ops_total{collection="messages",command="insert"}' in body
    assert 'route="/twilio/sms"' in body
    assert rider.number not in body


def test_every_response_has_a_request_id(client):
    r = client.get("/healthz", headers={"X-Request-Id": "abc123"})
    assert r.headers["X-Request-Id"] == "abc123"
    assert len(client.get("/healthz").headers["X-Request-Id"]) == 32
