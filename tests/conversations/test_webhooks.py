"""The SMS and status webhooks in-process (Flask test client) against real Redis and MongoDB."""
from __future__ import annotations

import uuid

import pytest

from app import create_app
from dispatch.bootstrap import Services
from tests.conftest import RESCUE_NUMBER, TWILIO_SID, apply_text, new_number, sign


def sms_params(sender: str, body: str = "hi", sid: str | None = None) -> dict[str, str]:
    sid = sid or "SM" + uuid.uuid4().hex
    return {"MessageSid": sid, "AccountSid": TWILIO_SID, "From": sender, "To": RESCUE_NUMBER,
            "Body": body, "NumMedia": "0"}


def post_signed(client, settings, path: str, params: dict[str, str], token: str | None = None):
    url = settings.public_base_url + path
    signature = sign(url, params, token) if token else sign(url, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def inbound(services, sid: str):
    return services.db.messages.find_one({"key": f"in:{sid}"})


@pytest.fixture
def private(settings, services):
    """The app on its own queues, which no live test worker drains: what the webhook left
    undone stays undone until the test applies it."""
    import dataclasses

    own = Services(dataclasses.replace(settings, queue_name=f"q_webhooks_{uuid.uuid4().hex[:8]}"), services.db,
                   services.redis)
    yield own, create_app(services=own).test_client()
    for queue in own.scheduler.queues:
        queue.delete(delete_jobs=True)


def test_signed_text_is_recorded_queued_and_answered_with_empty_twiml(private, settings):
    services, client = private
    params = sms_params(new_number())
    r = post_signed(client, settings, "/twilio/sms", params)
    assert r.status_code == 200 and r.mimetype == "text/xml"
    assert r.get_data(as_text=True).endswith("<Response />")
    stored = inbound(services, params["MessageSid"])
    assert stored["body"] == "hi" and stored["phone"] == params["From"]
    # The step runs in a worker: a kick waits for this app's own drain threads. (A live test
    # service's drain shares the database and may apply the text first: then apply_text says "done".)
    assert services.scheduler.kicks_waiting("conversations.jobs.apply_pending") == 1
    outcome = apply_text(services, params["MessageSid"])
    assert outcome.startswith("rider:") or outcome == "done"
    assert bool(inbound(services, params["MessageSid"])["processed"])
    reply = services.db.messages.find_one({"key": f"reply:{params['MessageSid']}"})
    assert reply is not None and "Where are you?" in reply["body"]


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}])
def test_missing_or_wrong_signature_is_403_and_changes_nothing(client, services, headers):
    params = sms_params(new_number())
    r = client.post("/twilio/sms", data=params, headers=headers)
    assert r.status_code == 403
    assert inbound(services, params["MessageSid"]) is None
    assert services.db.conversations.find_one({"_id": params["From"]}) is None


def test_signature_from_another_token_or_for_another_body_is_403(client, settings, services):
    params = sms_params(new_number())
    assert post_signed(client, settings, "/twilio/sms", params, token="someone-elses-token").status_code == 403
    url = settings.public_base_url + "/twilio/sms"
    signature = sign(url, params)
    tampered = {**params, "Body": "STOP"}
    assert client.post("/twilio/sms", data=tampered, headers={"X-Twilio-Signature": signature}).status_code == 403
    assert inbound(services, params["MessageSid"]) is None


def test_status_callback_needs_a_signature_too(client, settings):
    params = {"MessageSid": "SM" + uuid.uuid4().hex, "MessageStatus": "delivered"}
    assert client.post("/twilio/status", data=params).status_code == 403
    assert post_signed(client, settings, "/twilio/status", params).status_code == 200


@pytest.mark.parametrize("drop", ["MessageSid", "From"])
def test_missing_fields_get_a_clear_400(client, settings, drop):
    params = sms_params(new_number())
    del params[drop]
    r = post_signed(client, settings, "/twilio/sms", params)
    assert r.status_code == 400 and drop in r.get_data(as_text=True)


def test_json_body_is_a_400_not_a_crash(client, settings):
    url = settings.public_base_url + "/twilio/sms"
    r = client.post("/twilio/sms", json={"From": "+12125551234"}, headers={"X-Twilio-Signature": sign(url, {})})
    assert r.status_code == 400


@pytest.mark.parametrize("sender", ["12345", "anonymous", "client:alice", "+1555", "  "])
def test_odd_senders_are_recorded_without_a_reply(client, settings, services, sender):
    params = sms_params(sender)
    r = post_signed(client, settings, "/twilio/sms", params)
    if not sender.strip():
        assert r.status_code == 400
        return
    assert r.status_code == 200
    assert inbound(services, params["MessageSid"]) is not None
    apply_text(services, params["MessageSid"])
    assert services.db.messages.find_one({"key": f"reply:{params['MessageSid']}"}) is None


@pytest.mark.parametrize("body", ["", "x" * 1600, "🚲💥 help", "a\x00b\x07c\x1b[31m", "\u202eevil", "' OR 1=1 --",
                                  "{\"$gt\": \"\"}"])
def test_odd_bodies_get_200(client, settings, services, body):
    params = sms_params(new_number(), body)
    r = post_signed(client, settings, "/twilio/sms", params)
    assert r.status_code == 200
    apply_text(services, params["MessageSid"])
    stored = inbound(services, params["MessageSid"])
    assert bool(stored["processed"]) and "\x00" not in stored["body"]


def test_duplicate_delivery_applies_once(client, settings, services):
    params = sms_params(new_number(), "flat tire at Union Square")
    for _ in range(3):
        assert post_signed(client, settings, "/twilio/sms", params).status_code == 200
        apply_text(services, params["MessageSid"])
    assert apply_text(services, params["MessageSid"]) == "done"
    assert services.db.messages.count_documents({"key": f"in:{params['MessageSid']}"}) == 1
    convo = services.db.conversations.find_one({"_id": params["From"]})
    assert convo["version"] == 1 and convo["state"] == "ask_dropoff"
    assert services.db.messages.count_documents({"key": f"reply:{params['MessageSid']}"}) == 1


def test_flood_from_one_number_is_recorded_but_not_processed(client, settings, services):
    sender = new_number()
    # STATUS mid-intake needs no geocoder lookup (held to 1/s), so the flood is quick.
    flood = [sms_params(sender, "status") for _ in range(settings.inbound_rate_limit + 5)]
    codes = [post_signed(client, settings, "/twilio/sms", params).status_code for params in flood]
    assert set(codes) == {200}
    apply_text(services, flood[-1]["MessageSid"])  # applies every earlier one first, in order
    assert services.db.messages.count_documents({"phone": sender, "direction": "in"}) == len(codes)
    limited = services.db.messages.count_documents({"phone": sender, "direction": "in", "status": "rate_limited"})
    assert limited >= 5
    replies = services.db.messages.count_documents({"phone": sender, "direction": "out"})
    assert replies <= settings.inbound_rate_limit


def test_texts_from_one_number_are_applied_in_arrival_order_whichever_job_runs_first(private, settings):
    services, client = private
    sender = new_number()
    texts = [sms_params(sender, body) for body in ("hi", "Union Square", "1")]
    for params in texts:
        assert post_signed(client, settings, "/twilio/sms", params).status_code == 200
    # The last text's job wins the race to the lock: it applies the two before it first.
    # (A live test service's drain shares the database and may get there first: same order.)
    assert apply_text(services, texts[-1]["MessageSid"]) in ("rider:ask_dropoff", "done")
    assert [apply_text(services, p["MessageSid"]) for p in texts[:2]] == ["done", "done"]
    applied = services.db.messages.find({"phone": sender, "direction": "in"}).sort("updated_at", 1)
    assert [m["status"] for m in applied] == ["rider:ask_location", "rider:ask_problem", "rider:ask_dropoff"]


def test_a_text_whose_number_is_busy_waits_in_its_job_not_in_the_webhook(services, settings):
    """The webhook never takes the number's lock: it answers at once and the job applies the
    text when the lock is free."""
    client = create_app(services=services).test_client()
    params = sms_params(new_number())
    lock = services.redis.lock(services.keys(f"lock:phone:{params['From']}"), timeout=5)
    assert lock.acquire()
    try:
        assert post_signed(client, settings, "/twilio/sms", params).status_code == 200
        stored = inbound(services, params["MessageSid"])
        assert stored["status"] == "received" and not stored["processed"]
    finally:
        lock.release()
    apply_text(services, params["MessageSid"])
    assert bool(inbound(services, params["MessageSid"])["processed"])
    assert services.db.messages.find_one({"key": f"reply:{params['MessageSid']}"}) is not None


def test_the_inbound_drain_applies_each_numbers_texts_in_order_and_numbers_side_by_side(client, settings,
                                                                                       services):
    from conversations.engine import Engine

    riders = [new_number() for _ in range(5)]
    sids = {}
    for body in ("hi", "Union Square"):
        for rider in riders:
            params = sms_params(rider, body)
            sids.setdefault(rider, []).append(params["MessageSid"])
            assert post_signed(client, settings, "/twilio/sms", params).status_code == 200
    engine = Engine(services)
    for _ in range(20):  # what the drain job runs, batch after batch
        if not engine.apply_pending():
            break
    for rider in riders:
        statuses = [inbound(services, sid)["status"] for sid in sids[rider]]
        assert statuses == ["rider:ask_location", "rider:ask_problem"], (rider, statuses)


def test_the_rider_s_language_is_kept_with_the_conversation(private, settings):
    services, client = private
    rider = new_number()

    def text(body: str) -> str:
        params = sms_params(rider, body)
        post_signed(client, settings, "/twilio/sms", params)
        apply_text(services, params["MessageSid"])
        return services.db.messages.find_one({"key": f"reply:{params['MessageSid']}"})["body"]

    assert "¿En qué lugar" in text("hola")                      # from the first words
    assert text("union square").startswith("Anotado: Union Square.")
    assert text("ENGLISH").startswith("OK, English from now on.")
    assert text("se me ponchó la llanta").startswith("Pickup: Union Square.")   # chosen: it stays
    convo = services.conversations.load(rider, role="rider")
    assert (convo.language, convo.language_chosen) == ("en", True)


def test_help_requests_come_from_the_flow_through_the_help_desk(private, settings):
    services, client = private
    rider = new_number()
    for body in ("hi", "🙃", "🙃", "🙃"):
        params = sms_params(rider, body)
        post_signed(client, settings, "/twilio/sms", params)
        apply_text(services, params["MessageSid"])
    request = services.help_desk.requests.open_for(rider)
    assert request is not None and request.reason == "not_understood" and request.text == "🙃"


@pytest.fixture
def mongo_down(settings, services):
    """The app over a MongoDB nothing listens on, and the real Redis: a MongoDB outage."""
    import dataclasses

    from dispatch.adapters.mongo import connect

    # A prefix of its own: no live worker's sweeper records these held texts before the test does.
    down = dataclasses.replace(settings, mongo_url="mongodb://127.0.0.1:1/", webhook_store_timeout_seconds=0.5,
                               voice_store_timeout_seconds=0.5, redis_prefix=f"down-{uuid.uuid4().hex[:8]}")
    own = Services(down, connect(down), services.redis)
    return own, create_app(services=own).test_client()


def test_texts_during_a_mongodb_outage_are_answered_200_held_once_and_recorded_in_order_after(
        mongo_down, settings, services):
    from dispatch.holding import release

    down, client = mongo_down
    number = new_number()
    texts = [sms_params(number, body) for body in ("flat tire at Union Square", "skip")]
    answers = [post_signed(client, settings, "/twilio/sms", p) for p in [texts[0], texts[0], texts[1]]]
    assert [r.status_code for r in answers] == [200, 200, 200]  # the redelivery too
    assert all(r.get_data(as_text=True).endswith("<Response />") for r in answers)
    assert inbound(services, texts[0]["MessageSid"]) is None  # nothing could reach MongoDB

    assert [doc["twilio_sid"] for _, doc in down.held.oldest(10)] == [p["MessageSid"] for p in texts]
    release(down.held, services.messages)  # MongoDB is back
    records = [list(services.db.messages.find({"key": f"in:{p['MessageSid']}"})) for p in texts]
    assert [len(r) for r in records] == [1, 1], "each held text recorded exactly once"
    first, second = records[0][0], records[1][0]
    assert first["phone"] == number and first["body"] == "flat tire at Union Square"
    assert first["seq"] < second["seq"], "the arrival order kept through the outage"
    assert release(down.held, services.messages) == 0, "a released text is dropped from Redis"
    outcome = apply_text(services, texts[1]["MessageSid"])  # applies the earlier one first
    assert outcome.startswith("rider:") or outcome == "done"
    replies = [services.db.messages.find_one({"key": f"reply:{p['MessageSid']}"}) for p in texts]
    assert "Where should we take you" in replies[0]["body"]
    assert replies[1]["body"].startswith("Rescue quote:")


def test_a_call_during_a_mongodb_outage_is_told_in_words_to_text_instead(mongo_down, settings):
    down, client = mongo_down
    params = {"CallSid": "CA" + uuid.uuid4().hex, "AccountSid": TWILIO_SID, "From": new_number(),
              "To": RESCUE_NUMBER}
    r = post_signed(client, settings, "/twilio/voice", params)
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and r.mimetype == "text/xml"
    assert "Please text this number" in body and "<Hangup" in body


def test_the_inbound_drain_records_held_texts_before_each_batch_and_applies_them(settings, services):
    """Once MongoDB answers again the workers' inbound drain need not wait for the sweeper:
    each batch it takes records the texts held in Redis first, in arrival order."""
    import dataclasses

    from conversations.engine import INBOUND_BATCH, Engine, Inbound
    from dispatch.adapters.mongo import ensure_indexes
    from dispatch.adapters.rq_scheduler import DRAIN_INBOUND

    db = services.db.client[f"held_{uuid.uuid4().hex[:10]}"]  # the drain sees only this test's texts
    ensure_indexes(db)
    tag = uuid.uuid4().hex[:8]
    own = Services(dataclasses.replace(settings, redis_prefix=f"held-{tag}", queue_name=f"q_held_{tag}"), db,
                   services.redis)
    number = new_number()
    held = [Inbound(sid="SM" + uuid.uuid4().hex, sender=number, body=body)
            for body in ("flat tire at Union Square", "skip")]
    try:
        assert [Engine(own).hold(msg) for msg in held] == ["held", "held"]
        assert db.messages.count_documents({"direction": "in"}) == 0
        assert own.scheduler.drain(DRAIN_INBOUND, Engine(own).apply_pending, INBOUND_BATCH) == "drained:2"
        assert own.held.oldest(10) == [], "recorded texts are dropped from Redis"
        records = [db.messages.find_one({"key": f"in:{msg.sid}"}) for msg in held]
        assert all(r is not None and r["processed"] for r in records)
        assert records[0]["seq"] < records[1]["seq"]
        replies = [db.messages.find_one({"key": f"reply:{msg.sid}"}) for msg in held]
        assert "Where should we take you" in replies[0]["body"]
        assert replies[1]["body"].startswith("Rescue quote:")
    finally:
        for queue in own.scheduler.queues:
            queue.delete(delete_jobs=True)
        services.db.client.drop_database(db.name)


def test_concurrent_texts_are_each_recorded_once_and_answered_after_it(private, settings):
    """Texts arriving together share one insert (conversations.intake): each is stored once,
    a redelivery in the same batch is a duplicate, and every request answers 200 only once
    its text is in MongoDB."""
    from concurrent.futures import ThreadPoolExecutor

    services, client = private
    app = client.application
    texts = [sms_params(new_number(), "flat tire at Union Square") for _ in range(24)]
    posts = texts + texts[:6]  # six redelivered while the first copies may be in flight

    def post(params):
        r = post_signed(app.test_client(), settings, "/twilio/sms", params)
        return r.status_code, inbound(services, params["MessageSid"]) is not None

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, posts))
    assert answers == [(200, True)] * len(posts)
    for p in texts:
        assert services.db.messages.count_documents({"key": f"in:{p['MessageSid']}"}) == 1
    assert services.scheduler.kicks_waiting("conversations.jobs.apply_pending") == 1
