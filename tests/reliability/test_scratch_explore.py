import dataclasses, json, time, uuid, os, signal, re
import httpx, redis
from app import create_app
from dispatch.services import Services
from tests.conftest import ADMIN_TOKEN, RESCUE_NUMBER, TWILIO_SID, new_number, sign, post_stripe_event, stripe_event
from tests.e2e.test_dispatch import online_driver, book, rescue, NEAR_UNION_SQ, AUTH

def test_voice_rate_limited(client, settings, services):
    n = new_number()
    url = settings.public_base_url + "/twilio/sms"
    for i in range(settings.inbound_rate_limit + 2):
        f = {"MessageSid": "SM"+uuid.uuid4().hex, "From": n, "Body": "status"}
        client.post("/twilio/sms", data=f, headers={"X-Twilio-Signature": sign(url, f)})
    f = {"CallSid": "CA"+uuid.uuid4().hex, "From": n, "To": RESCUE_NUMBER, "SpeechResult": "Union Square"}
    path = "/twilio/voice/intake?expect=ask_location&tries=1"
    url = settings.public_base_url + path
    r = client.post(path, data=f, headers={"X-Twilio-Signature": sign(url, f)})
    print("VOICE", r.status_code, r.get_data(as_text=True)[:300])

def test_stripe_redis_down(slate, phone, live_service, services, settings, fake_stripe):
    d, rider = phone(), phone()
    online_driver(live_service, d, "Ann", NEAR_UNION_SQ)
    code = book(rider)
    d.wait_for(f"offer {code}"); d.ask("Y"); d.ask("ARRIVED"); d.ask("DONE")
    link = rider.wait_for("Pay $")
    r = rescue(live_service, code)
    sid = re.search(r"https://\S+", link).group(0).rsplit("/", 1)[1]
    s = fake_stripe.sessions[sid]
    paid = {**s, "payment_status": "paid", "status": "complete", "payment_intent": "pi_x"+sid[-10:]}
    ev = stripe_event("checkout.session.completed", paid)
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, socket_timeout=0.5)
    down = create_app(services=Services(settings, services.db, dead)).test_client()
    r1 = post_stripe_event(lambda p, h: down.post("/stripe/webhook", data=p, headers=h), ev)
    print("DOWN", r1.status_code, r1.get_data(as_text=True))
    r2 = post_stripe_event(lambda p, h: httpx.post(live_service.url + "/stripe/webhook", content=p, headers=h), ev)
    print("RETRY", r2.status_code, r2.text)
    time.sleep(1.5)
    print("RESCUE", rescue(live_service, code)["payment_status"], rider.replies()[-1][:60])

def test_payment_job_killed(slate, phone, live_service, services, fake_stripe):
    d, rider = phone(), phone()
    online_driver(live_service, d, "Ann", NEAR_UNION_SQ)
    code = book(rider)
    d.wait_for(f"offer {code}"); d.ask("Y"); d.ask("ARRIVED")
    before = set(live_service.worker_pids())
    fake_stripe.lock.acquire()
    try:
        d.text("DONE")
        time.sleep(1.0)
        for p in before: os.kill(p, signal.SIGKILL)
        time.sleep(0.3)
    finally:
        fake_stripe.lock.release()
    t = time.time()
    try:
        rider.wait_for("Pay $", timeout=60)
        print("LINK after", time.time() - t)
    except AssertionError as e:
        print("NO LINK", e)
    r = rescue(live_service, code)
    print("SESSIONS", len([c for c in fake_stripe.calls("/v1/checkout/sessions") if c.form.get("client_reference_id") == r["id"]]), r["payment_status"])

def test_stripe_data_list(client):
    for ev in [{"id": "evt_"+uuid.uuid4().hex, "type": "x", "data": [1]},
               {"id": "evt_"+uuid.uuid4().hex, "type": "x", "data": "s"}]:
        r = post_stripe_event(lambda p, h: client.post("/stripe/webhook", data=p, headers=h), ev)
        print("STRIPE", r.status_code, r.get_data(as_text=True)[:200])
