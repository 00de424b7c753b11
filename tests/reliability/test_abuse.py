"""Abuse: floods, auto-reply loops, forged Twilio signatures, forged or stale Stripe
events, wrong admin tokens, and the status page's CSRF protection."""
from __future__ import annotations

import base64
import json
import re
import time
import uuid

import httpx
import stripe

from tests.conftest import ADMIN_TOKEN, TWILIO_SID, new_number, post_stripe_event, sign, stripe_event
from tests.conversations.test_voice import Caller
from tests.e2e.test_dispatch import NEAR_UNION_SQ, online_driver
from tests.reliability.support import (
    at_once,
    call_params,
    canary,
    fresh_rate_window,
    reps,
    sms_params,
    tally,
    texts_with,
    wait_until,
)

try:  # `slate` moved to tests/conftest.py; older trees define it next to the dispatch tests
    from tests.e2e.test_dispatch import slate  # noqa: F401
except ImportError:
    pass


# -- floods ---------------------------------------------------------------------------------------
def test_flood_beyond_the_rate_limit_is_recorded_but_not_processed(phone, services, settings, fake_twilio, table):
    limit = settings.inbound_rate_limit
    rounds = reps(1)
    flooded = expected = lost = duplicated = 0
    for _ in range(rounds):
        fresh_rate_window(settings, 6)
        rider = phone()
        total = limit + 10
        sids = ["SM" + uuid.uuid4().hex for _ in range(total)]
        codes: list = []
        for i in range(0, total, 8):  # eight at a time, through both web processes
            codes += at_once([lambda s=s: rider.text("status", sid=s).status_code for s in sids[i:i + 8]])
        assert codes == [200] * total, codes
        fake_twilio.wait_for_texts(rider.number, limit, timeout=20)
        time.sleep(1.0)
        records = services.db.messages.count_documents({"phone": rider.number, "direction": "in"})
        limited = services.db.messages.count_documents({"phone": rider.number, "direction": "in",
                                                        "status": "rate_limited"})
        version = services.db.conversations.find_one({"_id": rider.number})["version"]
        texts = len(fake_twilio.texts_to(rider.number))
        flooded += total
        for name, want, got in (("recorded", total, records), ("refused as rate_limited", total - limit, limited),
                                ("processed (conversation steps)", limit, version), ("replies", limit, texts)):
            miss, dup = tally(want, got)
            expected, lost, duplicated = expected + want, lost + miss, duplicated + dup
            assert (miss, dup) == (0, 0), \
                f"APP BUG: flood of {total} (limit {limit}): {name}: expected {want}, got {got}"
    table.record("Flood from one number", f"{limit + 10} signed texts from one number within a second "
                 f"(INBOUND_RATE_LIMIT={limit} per {settings.inbound_rate_window_seconds} s)", times=flooded,
                 expected=expected, lost=lost, duplicated=duplicated,
                 counted="records, rate_limited records, conversation steps, replies at the fake Twilio")


def test_auto_reply_bot_loop_stops_quickly(phone, services, settings, fake_twilio, table):
    """A number that answers every text it gets with the same auto-reply. Count what the
    service sends it within 60 inbound messages; the loop must die out."""
    cap = 60
    fresh_rate_window(settings, 10)
    bot = phone()
    auto = "Auto-reply: thanks for your message! I'm away from my phone and will get back to you soon."
    inbound, seen = 1, 0
    assert bot.text(auto).status_code == 200
    started = time.time()
    while inbound < cap:
        grew = wait_until(lambda: len(fake_twilio.texts_to(bot.number)) > seen, 1.5, 0.02)
        if not grew:
            break  # the service went quiet
        now = len(fake_twilio.texts_to(bot.number))
        for _ in range(now - seen):
            if inbound < cap:
                assert bot.text(auto).status_code == 200
                inbound += 1
        seen = now
    quiet = not wait_until(lambda: len(fake_twilio.texts_to(bot.number)) > seen, 1.5, 0.05)
    sent = len(fake_twilio.texts_to(bot.number))
    stopped = inbound < cap and quiet
    table.figure("Auto-reply loop", f"the service sent {sent} texts to an auto-replying number, which sent {inbound} "
                 f"(the loop {'died out' if stopped else 'was still going'} after {time.time() - started:.1f} s; "
                 f"INBOUND_RATE_LIMIT={settings.inbound_rate_limit} per {settings.inbound_rate_window_seconds} s)")
    table.record("Auto-reply bot loop", "a number answering every text from the service with the same auto-reply, "
                 f"up to {cap} inbound texts", times=inbound, expected=1, lost=0, duplicated=0 if stopped else 1,
                 counted=f"loop ends (service sent {sent} texts; must stop within {cap} inbound)")
    assert stopped, f"APP BUG: an auto-reply loop never stops: {sent} texts sent to a bot that sent {inbound}"
    assert sent <= settings.inbound_rate_limit


def _flood(client, settings, number: str, body: str) -> None:
    url = settings.public_base_url + "/twilio/sms"
    for _ in range(settings.inbound_rate_limit + 1):
        form = sms_params(number, body)
        assert client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": sign(url, form)}).status_code == 200


def test_caller_over_the_rate_limit_gets_a_voice_answer_not_a_500(client, settings, services, table):
    """A rider who has texted more than INBOUND_RATE_LIMIT times this minute then calls: the
    voice webhooks must still answer TwiML (or a clear 4xx), whether the call starts a fresh
    intake (after HELP texts, which start nothing) or answers a question (after STATUS texts,
    which leave the rider at "Where are you?")."""
    answers = {}
    fresh = new_number()
    _flood(client, settings, fresh, "HELP")
    params = call_params("CA" + uuid.uuid4().hex, fresh)
    answers["POST /twilio/voice (fresh intake)"] = client.post(
        "/twilio/voice", data=params,
        headers={"X-Twilio-Signature": sign(settings.public_base_url + "/twilio/voice", params)}).status_code
    halfway = new_number()
    _flood(client, settings, halfway, "status")
    c = Caller(client, settings, halfway)
    action = c.call().find("Gather").get("action")[len(settings.public_base_url):]
    params = call_params(c.call_sid, halfway, SpeechResult="Union Square", Confidence="0.9")
    answers["POST /twilio/voice/intake (location answer)"] = client.post(
        action, data=params,
        headers={"X-Twilio-Signature": sign(settings.public_base_url + action, params)}).status_code
    bad = {k: v for k, v in answers.items() if v >= 500}
    table.record("Caller over the inbound rate limit", f"{settings.inbound_rate_limit + 1} texts (HELP, or STATUS), "
                 "then a call", times=len(answers), expected=len(answers), lost=len(bad), duplicated=0,
                 counted="voice webhook answers < 500")
    assert not bad, (
        f"APP BUG: voice webhooks answer 500 for a caller over INBOUND_RATE_LIMIT ({answers}): Engine.voice_step "
        f"(conversations/engine.py) returns None when Engine._receive rate-limits the caller, and "
        f"conversations/voice.py reads outcome.state on it (incoming(), line 110, and intake(), line 170): "
        f"AttributeError.")


# -- forged Twilio requests ----------------------------------------------------------------------
TWILIO_ROUTES = ["/twilio/sms", "/twilio/status", "/twilio/voice", "/twilio/voice/intake?expect=ask_location&tries=1",
                 "/twilio/voice/rider?rescue=R1", "/twilio/voice/driver?offer=o1",
                 "/twilio/voice/dial-done?rescue=r1&to=rider"]


def _params_for(route: str, number: str) -> dict[str, str]:
    if route == "/twilio/sms":
        return sms_params(number, "STOP")
    if route == "/twilio/status":
        return {"MessageSid": "SM" + uuid.uuid4().hex, "MessageStatus": "delivered", "AccountSid": TWILIO_SID}
    return call_params("CA" + uuid.uuid4().hex, number, SpeechResult="Union Square", Digits="1",
                       DialCallStatus="no-answer")


def test_forged_twilio_signatures_are_refused_on_every_route(live_service, services, settings, table):
    public = settings.public_base_url
    refused = expected = 0
    for route in TWILIO_ROUTES:
        number = "+1646" + str(uuid.uuid4().int)[:7]
        params = _params_for(route, number)
        url = public + route
        path_only = public + route.split("?")[0]
        forged = {
            "no signature": None,
            "empty signature": "",
            "garbage": "bm90IGEgc2lnbmF0dXJl",
            "signed with another auth token": sign(url, params, "someone-elses-token"),
            "signed for another URL": sign(public + "/twilio/elsewhere", params),
            "signed for other form values": sign(url, {**params, "From": "+12125550199"}),
            "signed without the query string": sign(path_only, params) if "?" in route else sign(url + "?x=1", params),
            "signed for another host": sign(url.replace("127.0.0.1", "evil.example"), params),
        }
        for how, signature in forged.items():
            headers = {} if signature is None else {"X-Twilio-Signature": signature}
            r = httpx.post(live_service.url + route, data=params, headers=headers, timeout=10)
            expected += 1
            refused += r.status_code == 403
            assert r.status_code == 403, f"APP BUG: {route} accepted a forged request ({how}): {r.status_code}"
        sid = params.get("MessageSid") or params.get("CallSid")
        assert services.db.messages.find_one({"twilio_sid": sid}) is None
        assert services.db.voice_steps.find_one({"_id": {"$regex": f"^{sid}"}}) is None
        assert services.db.conversations.find_one({"_id": number}) is None
        assert services.db.optouts.find_one({"_id": number}) is None
    table.record("Forged Twilio signatures", f"{len(TWILIO_ROUTES)} Twilio routes x 8 forgeries (none, empty, garbage, "
                 "other token, other URL/host/query, other form values)", times=expected, expected=expected,
                 lost=expected - refused, duplicated=0, counted="403 answers; nothing stored (messages, voice steps, "
                 "conversations, opt-outs)")


# -- forged Stripe events -------------------------------------------------------------------------
def test_forged_or_stale_stripe_events_are_refused_and_the_real_one_still_applies(slate, phone, live_service, services,
                                                                                  fake_twilio, table):
    rider = phone()
    rider.ask("flat tire at Union Square")
    rider.ask("skip")
    rider.ask("y")
    r = services.rescues.open_for_rider(rider.number)
    obj = {"id": "cs_test_" + uuid.uuid4().hex, "object": "checkout.session", "payment_status": "paid",
           "status": "complete", "amount_total": r.quote_cents, "client_reference_id": r.id,
           "metadata": {"rescue_id": r.id}, "payment_intent": "pi_" + uuid.uuid4().hex[:20]}
    event = stripe_event("checkout.session.completed", obj)
    url = f"{live_service.url}/stripe/webhook"
    post = lambda payload, headers: httpx.post(url, content=payload, headers=headers, timeout=10)  # noqa: E731
    payload = json.dumps(event)
    good = stripe.WebhookSignature.generate_signature_header(payload, "whsec_test_supportcarr")
    now = int(time.time())
    attempts = {
        "signed with the wrong secret": lambda: post_stripe_event(post, event, secret="whsec_wrong"),
        "timestamp 301 s old": lambda: post_stripe_event(post, event, timestamp=now - 301),
        "timestamp an hour old": lambda: post_stripe_event(post, event, timestamp=now - 3600),
        "no signature header": lambda: post(payload, {"Content-Type": "application/json"}),
        "v0 scheme only": lambda: post(payload, {"Stripe-Signature": good.replace("v1=", "v0="),
                                                 "Content-Type": "application/json"}),
        "payload changed after signing": lambda: post(payload.replace(str(r.quote_cents), "1"),
                                                      {"Stripe-Signature": good, "Content-Type": "application/json"}),
        "signature of another payload": lambda: post(payload, {
            "Stripe-Signature": stripe.WebhookSignature.generate_signature_header("{}", "whsec_test_supportcarr"),
            "Content-Type": "application/json"}),
    }
    refused = 0
    for how, attempt in attempts.items():
        answer = attempt()
        refused += answer.status_code == 400
        assert answer.status_code == 400, f"APP BUG: a Stripe event {how} was answered {answer.status_code}"
    assert services.db.stripe_events.find_one({"_id": event["id"]}) is None
    assert services.rescues.get(r.id).payment_status == "none"
    genuine = post_stripe_event(post, event)
    assert genuine.status_code == 200 and genuine.text.strip() == "checkout.session.completed", genuine.text
    rider.wait_for("Receipt:")
    time.sleep(0.5)
    receipts = len(texts_with(fake_twilio, rider.number, "Receipt:"))
    table.record("Forged or stale Stripe events", "7 forgeries of a real checkout.session.completed: wrong secret, "
                 "timestamps 301 s and 1 h old (tolerance 300 s), no header, v0 only, body changed, other body's "
                 "signature; then the genuine one", times=len(attempts), expected=len(attempts) + 1,
                 lost=(len(attempts) - refused) + (1 - min(receipts, 1)), duplicated=max(0, receipts - 1),
                 counted="400 answers with nothing stored; the genuine event then applied once (one receipt)")


# -- admin API -------------------------------------------------------------------------------------
def test_wrong_admin_tokens_are_401_everywhere_and_change_nothing(slate, phone, live_service, services, table):
    driver, rider = phone(), phone()
    d = online_driver(live_service, driver, "Token Tess", NEAR_UNION_SQ)
    rider.ask("flat tire at Union Square")
    rider.ask("skip")
    rider.ask("y")
    r = services.rescues.open_for_rider(rider.number)
    stranger = "+1917" + str(uuid.uuid4().int)[:7]
    endpoints = [
        ("GET", "/api/drivers", None), ("POST", "/api/drivers", {"phone": stranger, "name": "X", "vehicle": "Y"}),
        ("GET", f"/api/drivers/{d['id']}", None), ("PATCH", f"/api/drivers/{d['id']}", {"name": "Hacked"}),
        ("GET", "/api/rescues", None), ("GET", f"/api/rescues/{r.id}", None),
        ("POST", f"/api/rescues/{r.id}/cancel", {"reason": "forged"}),
        ("POST", f"/api/rescues/{r.id}/assign", {"driver_id": d["id"]}),
        ("POST", f"/api/rescues/{r.id}/refund", {}), ("POST", f"/api/rescues/{r.id}/payment-link", {}),
        ("POST", f"/api/rescues/{r.id}/message", {"to": "rider", "body": canary("forged admin text")}),
        ("GET", f"/api/rescues/{r.id}/payments", None), ("GET", "/api/stats", None), ("GET", "/api/board", None),
        ("DELETE", f"/api/riders/{stranger}", None),
        ("GET", "/metrics", None),
    ]  # /api/openapi.json is public (it holds no data): tools read it before they have a token
    basic = base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()
    tokens = {"none": None, "wrong": "Bearer wrong", "token plus a character": f"Bearer {ADMIN_TOKEN}x",
              "token minus its last character": f"Bearer {ADMIN_TOKEN[:-1]}", "bearer without a token": "Bearer",
              "token without the scheme": ADMIN_TOKEN, "basic auth with the token": f"Basic {basic}",
              "another scheme": f"Token {ADMIN_TOKEN}"}
    refused = tried = 0
    with httpx.Client(base_url=live_service.url, timeout=10) as http:
        for method, path, body in endpoints:
            for how, header in tokens.items():
                headers = {} if header is None else {"Authorization": header}
                answer = http.request(method, path, json=body, headers=headers)
                tried += 1
                refused += answer.status_code == 401
                assert answer.status_code == 401, f"APP BUG: {method} {path} with {how} answered {answer.status_code}"
    assert services.db.drivers.find_one({"_id": d["id"]})["name"] == "Token Tess"
    assert services.db.drivers.find_one({"phone": stranger}) is None
    assert services.rescues.get(r.id).status == "searching"
    assert services.db.messages.count_documents({"rescue_id": r.id, "kind": "dispatcher"}) == 0
    table.record("Wrong admin tokens", f"{len(endpoints)} admin endpoints x {len(tokens)} wrong Authorization headers",
                 times=tried, expected=tried, lost=tried - refused, duplicated=0,
                 counted="401 answers; driver, rescue and messages unchanged")


def test_status_page_login_needs_csrf_and_the_api_needs_the_csrf_header(slate, phone, live_service, services, table):
    rider = phone()
    rider.ask("flat tire at Union Square")
    rider.ask("skip")
    rider.ask("y")
    r = services.rescues.open_for_rider(rider.number)
    checks = []
    with httpx.Client(base_url=live_service.url, timeout=10) as web:
        page = web.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        checks.append(("login without the CSRF token", 400,
                       web.post("/login", data={"token": ADMIN_TOKEN}).status_code))
        checks.append(("login with a wrong CSRF token", 400,
                       web.post("/login", data={"token": ADMIN_TOKEN, "csrf": csrf + "x"}).status_code))
        assert web.get("/").status_code != 200 or "login" in str(web.get("/").url)
        ok = web.post("/login", data={"token": ADMIN_TOKEN, "csrf": csrf})
        assert ok.status_code in (302, 303), ok.status_code
        status = web.get("/")
        assert status.status_code == 200
        session_csrf = re.search(r'(?:name="csrf" value|csrf-token" content|data-csrf)="([^"]+)"', status.text)
        cancel = f"/api/rescues/{r.id}/cancel"
        checks.append(("API read with the session cookie", 200, web.get("/api/rescues").status_code))
        checks.append(("POST with the session cookie, no X-CSRF-Token", 403,
                       web.post(cancel, json={"reason": "csrf"}).status_code))
        checks.append(("POST with a wrong X-CSRF-Token", 403,
                       web.post(cancel, json={"reason": "csrf"}, headers={"X-CSRF-Token": "nope"}).status_code))
        checks.append(("PATCH with the session cookie, no X-CSRF-Token", 403,
                       web.patch("/api/drivers/x", json={"name": "x"}).status_code))
        checks.append(("register a driver, no X-CSRF-Token", 403,
                       web.post("/api/drivers", json={"phone": "+12125550123", "name": "x",
                                                      "vehicle": "y"}).status_code))
        if session_csrf:
            checks.append(("POST with the right X-CSRF-Token passes (404 for an unknown rescue)", 404,
                           web.post("/api/rescues/nope/cancel", json={},
                                    headers={"X-CSRF-Token": session_csrf.group(1)}).status_code))
    assert services.rescues.get(r.id).status == "searching"
    refused = sum(want == got for _, want, got in checks)
    table.record("Status page CSRF", "login form posted without / with a wrong CSRF token; API POST/PATCH with the "
                 "session cookie but no or a wrong X-CSRF-Token", times=len(checks), expected=len(checks),
                 lost=len(checks) - refused, duplicated=0, counted="400 / 403 answers; the rescue not cancelled")
    for name, want, got in checks:
        assert want == got, f"APP BUG: {name}: expected {want}, got {got}"


def test_admin_token_guessing_is_locked_out_per_address(settings, services, table):
    """Guessing the admin token at the default limit (ADMIN_TOKEN_TRIES_PER_MINUTE=10): every
    door (API, /metrics, login) shares one count per address; past it, even the right token
    is refused from that address until the minute is out, while other addresses go on."""
    import dataclasses

    from app import create_app
    from dispatch.bootstrap import Services
    from dispatch.config import Settings

    limit = Settings().admin_token_tries_per_minute
    svc = Services(dataclasses.replace(settings, admin_token_tries_per_minute=limit), services.db, services.redis)
    guesser = create_app(services=svc).test_client()
    guesser.environ_base["REMOTE_ADDR"] = f"10.66.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    honest = create_app(services=svc).test_client()
    honest.environ_base["REMOTE_ADDR"] = "10.77.0.1"
    doors = ["/api/rescues", "/metrics", "/api/drivers"]
    answers = [guesser.get(doors[i % len(doors)], headers={"Authorization": f"Bearer guess-{i}"}).status_code
               for i in range(limit * 3)]
    right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    locked_right = guesser.get("/api/rescues", headers=right).status_code
    other = honest.get("/api/rescues", headers=right).status_code
    compared = answers.count(401)
    assert compared == limit and answers[limit:] == [429] * (limit * 2), answers
    assert (locked_right, other) == (429, 200)
    table.record("Admin token guessing", f"{limit * 3} wrong bearer tokens from one address across the API and "
                 "/metrics, then the right token from it and from another address", times=limit * 3,
                 expected=limit * 3, lost=0, duplicated=0,
                 counted="tokens compared (must be the limit), 429 refusals, the right token refused while locked "
                         "and accepted from another address")
    table.figure("Admin token guessing", f"{compared} of {limit * 3} guesses were compared at all "
                 f"(ADMIN_TOKEN_TRIES_PER_MINUTE={limit}); the rest got 429 without a comparison, as did the right "
                 f"token from the guessing address, which another address used at the same time ({other})")
