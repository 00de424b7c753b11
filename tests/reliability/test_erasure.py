"""Personal data kept no longer than needed (PRODUCT.md §7): one rider erased at once by
`DELETE /api/riders/<phone>`, and riders past RETENTION_DAYS erased by the sweeper. Both
keep the accounting record (code, times, amounts, a masked number) and leave no full number
or message body anywhere in MongoDB, nor the number in a Redis key."""
from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest

from dispatch.bootstrap import Services
from dispatch.model.clock import now_ms
from dispatch.model.phones import mask
from tests.conftest import ADMIN_TOKEN
from tests.reliability.support import quiesce

DAY_MS = 24 * 3600 * 1000


@pytest.fixture(autouse=True)
def quiet_client_log():
    """httpx logs every URL at INFO, and these URLs carry a number (the service's own access
    log scrubs it): the log privacy check is about the service, not this client."""
    client_log = logging.getLogger("httpx")
    level = client_log.level
    client_log.setLevel(logging.WARNING)
    yield
    client_log.setLevel(level)
ACCOUNTING = ("code", "status", "quote_cents", "created_at", "updated_at", "payment_status")


def _rider_with_a_closed_rescue(phone, services) -> tuple[str, str, str]:
    """A rider who booked, was cancelled, and then texted words nobody else sends (a help
    request): (number, rescue id, the canary word)."""
    rider = phone()
    rider.ask("flat tire at Union Square")
    rider.ask("skip")
    rider.ask("y")
    rescue = services.rescues.open_for_rider(rider.number)
    services.dispatcher.cancel(rescue.id, "test over", by="dispatcher")
    canary = f"zebra{uuid.uuid4().hex[:10]}"
    assert rider.text(f"my bike is a {canary}").status_code == 200
    quiesce(services, 20)
    return rider.number, rescue.id, canary


def _leaks(services, *needles: str) -> list[str]:
    """Every MongoDB document and Redis key holding any of the needles."""
    found = []
    for name in services.db.list_collection_names():
        for doc in services.db[name].find():
            text = json.dumps(doc, default=str)
            found += [f"{name}:{doc.get('_id')}" for n in needles if n in text]
    for key in services.redis.scan_iter(count=1000):
        found += [f"redis:{key!r}" for n in needles if n.encode() in key]
    return found


def _accounting_lost(services, rescue_id: str, number: str) -> list[str]:
    doc = services.db.rescues.find_one({"_id": rescue_id})
    if doc is None:
        return ["the rescue record"]
    lost = [f for f in ACCOUNTING if doc.get(f) in (None, "")]
    if doc.get("rider_phone") != mask(number):
        lost.append(f"masked number (is {doc.get('rider_phone')!r})")
    return lost


def test_delete_rider_erases_bodies_and_numbers_and_keeps_the_accounting(phone, live_service, services, table):
    number, rescue_id, canary = _rider_with_a_closed_rescue(phone, services)
    before = _leaks(services, number, canary)
    assert before, "the rider's number and words were never stored: nothing to erase"
    messages = services.db.messages.count_documents({"$or": [{"phone": number}, {"rescue_id": rescue_id}]})
    r = httpx.delete(f"{live_service.url}/api/riders/{number}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                     timeout=20)
    assert r.status_code == 200, r.text
    left = _leaks(services, number, canary)
    lost = _accounting_lost(services, rescue_id, number)
    kept_messages = services.db.messages.count_documents({"$or": [{"phone": mask(number)}, {"rescue_id": rescue_id}]})
    table.record("Rider erased at once (DELETE /api/riders/<phone>)",
                 "a rider who booked, was cancelled and texted a canary word, erased by the admin API",
                 times=1, expected=len(ACCOUNTING) + 1, lost=len(lost), duplicated=len(left),
                 counted="the rescue's accounting fields and masked number (lost), documents or Redis keys still "
                         f"holding the full number or the canary (left: {len(left)} of {len(before)} before)")
    assert not left, f"APP BUG: after DELETE /api/riders the full number or a body is still in {left}"
    assert not lost, f"APP BUG: erasure lost the accounting record: {lost}"
    assert kept_messages >= messages, "the message records (times, statuses) are kept, without bodies"
    again = httpx.delete(f"{live_service.url}/api/riders/{number}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                         timeout=20)
    assert again.status_code == 200 and sum(again.json()["erased"].values()) == 0, again.text


def test_delete_rider_is_refused_while_their_rescue_is_open(phone, live_service, services):
    rider = phone()
    rider.ask("flat tire at Union Square")
    rider.ask("skip")
    rider.ask("y")
    r = httpx.delete(f"{live_service.url}/api/riders/{rider.number}",
                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=20)
    assert r.status_code == 409 and "open rescue" in r.json()["error"], r.text
    assert services.db.conversations.find_one({"_id": rider.number}) is not None
    bad = httpx.delete(f"{live_service.url}/api/riders/not-a-number",
                       headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=20)
    assert bad.status_code == 400 and bad.json()["field"] == "phone"
    services.dispatcher.cancel(services.rescues.open_for_rider(rider.number).id, "test over", by="dispatcher")


def test_the_sweeper_erases_what_is_past_retention_days_and_nothing_newer(phone, live_service, services,
                                                                           settings, table):
    old_number, old_rescue, old_canary = _rider_with_a_closed_rescue(phone, services)
    new_number_, new_rescue, new_canary = _rider_with_a_closed_rescue(phone, services)
    long_ago = now_ms() - (settings.retention_days + 1) * DAY_MS
    ids = [old_rescue]
    services.db.rescues.update_one({"_id": old_rescue}, {"$set": {"updated_at": long_ago, "created_at": long_ago}})
    services.db.messages.update_many({"$or": [{"phone": old_number}, {"rescue_id": {"$in": ids}}]},
                                     {"$set": {"created_at": long_ago}})
    services.db.conversations.update_one({"_id": old_number}, {"$set": {"updated_at": long_ago}})
    services.db.riders.update_one({"phone": old_number}, {"$set": {"last_rescue_at": long_ago}})
    services.db.help_requests.update_many({"phone": old_number}, {"$set": {"created_at": long_ago,
                                                                            "status": "resolved"}})
    fresh = Services(settings, services.db, services.redis)  # a sweeper whose erasure is due now
    erased = 0
    for _ in range(5):  # batches
        erased += fresh.sweeper.sweep().get("personal_data_erased", 0)
        if not _leaks(services, old_number, old_canary):
            break
    left = [k for k in _leaks(services, old_number, old_canary) if not k.startswith("redis:")]
    lost = _accounting_lost(services, old_rescue, old_number)
    newer_kept = services.db.rescues.find_one({"_id": new_rescue})["rider_phone"] == new_number_ and \
        bool(_leaks(services, new_canary))
    table.record("Retention erasure by the sweeper (RETENTION_DAYS)",
                 "a rider's rescue, texts, conversation, profile and help request backdated "
                 f"{settings.retention_days + 1} days, next to a rider of today; one sweep",
                 times=1, expected=len(ACCOUNTING) + 1, lost=len(lost), duplicated=len(left),
                 counted="the old rescue's accounting fields and masked number (lost), MongoDB documents still holding "
                         "the old rider's full number or canary (duplicated); today's rider untouched")
    assert erased, "the sweep erased nothing"
    assert not left, f"APP BUG: past RETENTION_DAYS the full number or a body is still in {left}"
    assert not lost, f"APP BUG: retention erasure lost the accounting record: {lost}"
    assert newer_kept, "APP BUG: the sweeper erased a rider of today"


def test_a_callers_call_steps_go_with_them(client, settings, live_service, services, table):
    """A call's answered steps hold what the caller said (in the step's key) and what was said
    back: erasing the caller erases them, and so does retention."""
    from tests.conversations.test_voice import Caller

    erased_now, by_age = Caller(client, settings), Caller(client, settings)
    canaries = []
    for c in (erased_now, by_age):
        canary = f"zebra{uuid.uuid4().hex[:10]}"
        canaries.append(canary)
        c.answer(c.call(), SpeechResult=f"by the {canary}")
    assert _leaks(services, erased_now.number, canaries[0]) and _leaks(services, canaries[1])
    r = httpx.delete(f"{live_service.url}/api/riders/{erased_now.number}",
                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=20)
    assert r.status_code == 200 and r.json()["erased"]["voice_steps"] >= 2, r.text
    left_now = _leaks(services, erased_now.number, canaries[0])
    long_ago = now_ms() - 2 * settings.retention_days * DAY_MS
    services.db.voice_steps.update_many({"phone": by_age.number}, {"$set": {"at": long_ago}})
    fresh = Services(settings, services.db, services.redis)
    fresh.sweeper.sweep()
    # Only its call steps are backdated: the text of its speech kept as a message is not yet due.
    left_by_age = [k for k in _leaks(services, canaries[1]) if k.startswith("voice_steps:")]
    table.record("A caller's call steps erased", "two callers who spoke a canary word: one erased by the admin "
                 "API, the other's call steps backdated past RETENTION_DAYS, one sweep",
                 times=2, expected=2, lost=0, duplicated=len(left_now) + len(left_by_age),
                 counted="MongoDB documents still holding the caller's number or canary")
    assert not left_now, f"APP BUG: after DELETE /api/riders the caller's words are still in {left_now}"
    assert not left_by_age, f"APP BUG: past RETENTION_DAYS the caller's words are still in {left_by_age}"
