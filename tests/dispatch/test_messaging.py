"""Outbound texts (dispatch.messaging) and the Twilio edge (dispatch.adapters.twilio).

Everything here is real except Twilio itself: MongoDB and Redis from `stores`, the real
`twilio` client talking to the local fake of the Messages API, and a real RQ worker.

Two ways of running the send job are used:
* through the worker: `services.outbox.queue_text` kicks the outbox drain
  (`dispatch.worker.send_pending`, at most one kick waiting per queue), and an in-process
  `dispatch.worker.Worker` in burst mode runs the kicked drains and the queues. A
  session-scoped `live_service` started by other tests may run workers on the same queue,
  so these tests accept the text being sent by either worker and assert only on what the
  fake Twilio received and on the stored message document.
* directly: an `Outbox` whose scheduler only records what it is asked to start (a fake of
  the Scheduler port), then `services.delivery.deliver(id)`.

The module has stores of its own (a database, a Redis key prefix and queues): the
session's `live_service` shares the others, and its outbox drain takes any never-tried text
whenever something kicks it, so no worker but the tests' own races these tests and they can
check exact return values and retry states.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import replace

import pytest
import rq

from dispatch.adapters.mongo.messages import MongoMessages, MongoOptOuts
from dispatch.adapters.twilio import TwilioSender
from dispatch.bootstrap import build_services
from dispatch.config import load_settings
from dispatch.messaging import Delivery, Outbox
from dispatch.ports import SendFailed
from tests.conftest import RESCUE_NUMBER, new_number
from tests.fakes.http import FakeServer


@pytest.fixture(scope="module")
def service_env(service_env):
    own = uuid.uuid4().hex[:8]
    return {**service_env, "MONGO_DB": f"messaging_{own}", "RQ_QUEUE": f"q_messaging_{own}",
            "REDIS_PREFIX": f"messaging_{own}"}


@pytest.fixture(scope="module")
def settings(service_env):
    return load_settings(service_env)


@pytest.fixture(scope="module")
def services(settings):
    svc = build_services(settings)
    yield svc
    svc.db.client.drop_database(settings.mongo_db)


# --- helpers --------------------------------------------------------------------------------

def key() -> str:
    return f"test-{uuid.uuid4().hex}"


def message(services, message_id: str) -> dict:
    doc = services.db.messages.find_one({"_id": message_id})
    assert doc is not None, f"message {message_id} is not stored"
    return doc


def wait_for_status(services, message_id: str, statuses: tuple[str, ...], timeout: float = 10.0) -> dict:
    deadline = time.time() + timeout
    while True:
        doc = message(services, message_id)
        if doc["status"] in statuses:
            return doc
        if time.time() > deadline:
            raise AssertionError(f"message {message_id} stayed {doc['status']!r}, expected one of {statuses}")
        time.sleep(0.02)


def send_jobs(services, message_id: str, timeout: float = 3.0) -> list[rq.job.Job]:
    """Every RQ job (queued, running, done, failed or waiting to retry) sending this message.

    Found by function and argument rather than by job id, which is the app's own business.
    A job a live worker is just picking up can be briefly in none of those lists, so look
    again for a moment before answering "none".
    """
    q = services.scheduler.queue
    deadline = time.time() + timeout
    while True:
        ids = set(q.get_job_ids())
        for registry in (q.started_job_registry, q.finished_job_registry, q.failed_job_registry,
                         q.scheduled_job_registry, q.deferred_job_registry):
            ids.update(registry.get_job_ids())
        jobs = [j for j in rq.job.Job.fetch_many(list(ids), connection=services.redis) if j is not None]
        found = [j for j in jobs if j.func_name == "dispatch.worker.send_text" and tuple(j.args) == (message_id,)]
        if found or time.time() > deadline:
            return found
        time.sleep(0.05)


class RecordingScheduler:
    """The Scheduler port, recording what the outbox asks it to start."""

    def __init__(self) -> None:
        self.enqueued: list[str] = []
        self.kicks: list[int] = []
        self.retried: list[str] = []

    def kick_outbox(self) -> None:
        self.kicks.append(1)

    def send_text(self, message_id: str, delay: float = 0) -> None:
        self.enqueued.append(message_id)

    def retry_send(self, message_id: str) -> None:
        self.retried.append(message_id)


@pytest.fixture
def outbox(services):
    """An Outbox on the real db whose send jobs are only recorded, for driving `deliver` by hand."""
    scheduler = RecordingScheduler()
    box = Outbox(services.messages, scheduler)
    box.enqueued, box.kicks = scheduler.enqueued, scheduler.kicks  # type: ignore[attr-defined]
    return box


@pytest.fixture
def no_pending_failures(fake_twilio):
    """Failures armed with fail_next are consumed by the test that armed them."""
    yield
    with fake_twilio.lock:
        leftover = list(fake_twilio.failures)
        fake_twilio.failures.clear()
    assert not leftover, f"armed Twilio failures were never consumed: {leftover}"


# --- sending through RQ ---------------------------------------------------------------------

def test_queued_text_is_sent_once_with_the_right_fields(services, settings, fake_twilio, run_worker):
    to = new_number()
    doc = services.outbox.queue_text(to, "Hang tight, a driver is on the way", key=key(), kind="update")
    assert doc is not None and doc["status"] == "pending"

    run_worker()
    [sent] = fake_twilio.wait_for_texts(to, 1)
    stored = wait_for_status(services, doc["_id"], ("sent",))

    assert sent.to == to
    assert sent.from_ == RESCUE_NUMBER
    assert sent.body == "Hang tight, a driver is on the way"
    assert sent.status_callback == f"{settings.public_base_url}/twilio/status"
    assert stored["twilio_sid"] == sent.sid
    assert stored["attempts"] == 1 and stored["status_rank"] == 3 and isinstance(stored["sent_at"], int)

    run_worker()  # nothing left to do, and a re-run of the job itself is a no-op
    assert services.delivery.deliver(doc["_id"]) == "sent"
    time.sleep(0.3)
    assert len(fake_twilio.texts_to(to)) == 1
    assert message(services, doc["_id"])["attempts"] == 1


def test_same_key_twice_makes_one_document_and_one_send(services, fake_twilio, run_worker):
    to, k = new_number(), key()
    first = services.outbox.queue_text(to, "Reply Y to confirm", key=k)
    second = services.outbox.queue_text(to, "Reply Y to confirm", key=k)
    assert first is not None and second is not None
    assert second["_id"] == first["_id"]
    assert services.db.messages.count_documents({"key": k}) == 1

    run_worker()
    fake_twilio.wait_for_texts(to, 1)
    wait_for_status(services, first["_id"], ("sent",))
    run_worker()
    time.sleep(0.3)
    assert [t.body for t in fake_twilio.texts_to(to)] == ["Reply Y to confirm"]


def test_carrier_opt_out_through_rq_is_final_and_not_retried(services, fake_twilio, run_worker,
                                                             no_pending_failures):
    to = new_number()
    fake_twilio.fail_next(1, 400, 21610, to=to)
    doc = services.outbox.queue_text(to, "Your driver is here", key=key())
    run_worker()
    stored = wait_for_status(services, doc["_id"], ("failed",))
    assert stored["error_code"] == "21610"
    assert services.optouts.is_opted_out(to)
    time.sleep(1.5)  # longer than the first retry back-off
    assert send_jobs(services, doc["_id"], timeout=0.2) == [], "a final error must not start a retry job"
    assert message(services, doc["_id"])["attempts"] == 1
    assert fake_twilio.texts_to(to) == []


def test_opted_out_number_through_rq_is_suppressed(services, fake_twilio, run_worker):
    to = new_number()
    doc = services.outbox.queue_text(to, "Still searching", key=key())
    services.optouts.opt_out(to, source="sms")  # after queueing: checked at send time
    run_worker()
    stored = wait_for_status(services, doc["_id"], ("suppressed", "sent"))
    assert stored["status"] == "suppressed"
    time.sleep(0.2)
    assert fake_twilio.texts_to(to) == []


# --- deliver, driven directly ---------------------------------------------------------------

def test_queue_text_starts_one_job_per_key(outbox, services):
    to, k = new_number(), key()
    doc = outbox.queue_text(to, "hello", key=k, rescue_id="r-1", kind="offer")
    again = outbox.queue_text(to, "hello again", key=k)
    assert outbox.kicks == [1] and outbox.enqueued == []  # a drain, not a job per text
    assert again["_id"] == doc["_id"] and again["body"] == "hello"
    stored = message(services, doc["_id"])
    assert stored["direction"] == "out" and stored["phone"] == to and stored["rescue_id"] == "r-1"
    assert stored["kind"] == "offer" and stored["status"] == "pending" and stored["attempts"] == 0


def test_deliver_twice_makes_one_request(outbox, services, fake_twilio):
    to = new_number()
    doc = outbox.queue_text(to, "one text", key=key())
    requests_before = fake_twilio.requests
    send_now(services, doc["_id"])
    assert services.delivery.deliver(doc["_id"]) == "sent"
    assert len(fake_twilio.texts_to(to)) == 1
    assert fake_twilio.requests - requests_before == 1
    assert message(services, doc["_id"])["attempts"] == 1


def test_concurrent_deliveries_send_once(outbox, services, fake_twilio):
    """Two workers running the same job at once (a retried job next to the original)."""
    to = new_number()
    doc = outbox.queue_text(to, "race", key=key())
    barrier, results, errors = threading.Barrier(4), [], []

    def run():
        try:
            barrier.wait(5)
            results.append(services.delivery.deliver(doc["_id"]))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors, errors
    assert results.count("sent") >= 1 and set(results) <= {"sent", "sending", "claimed-elsewhere"}, results
    assert len(fake_twilio.texts_to(to)) == 1
    assert message(services, doc["_id"])["attempts"] == 1


def test_deliver_unknown_message(services):
    assert services.delivery.deliver("no-such-message") == "missing"


@pytest.mark.parametrize("http_status,code", [(500, 20500), (503, 20503), (429, 20429)])
def test_transient_error_returns_message_to_pending_then_retry_succeeds(
        outbox, services, fake_twilio, no_pending_failures, http_status, code):
    to = new_number()
    doc = outbox.queue_text(to, "retry me", key=key())
    fake_twilio.fail_next(1, http_status, code, to=to)
    with pytest.raises(SendFailed) as raised:
        services.delivery.deliver(doc["_id"])
    assert raised.value.transient is True, f"HTTP {http_status} must be retried"
    assert raised.value.code == code
    stored = message(services, doc["_id"])
    assert stored["status"] == "pending" and stored["status_rank"] == 0, stored
    assert stored["attempts"] == 1 and "twilio_sid" not in stored
    assert fake_twilio.texts_to(to) == []

    assert services.delivery.deliver(doc["_id"]) == "sent"
    [sent] = fake_twilio.texts_to(to)
    stored = message(services, doc["_id"])
    assert stored["status"] == "sent" and stored["twilio_sid"] == sent.sid and stored["attempts"] == 2


def test_500_then_429_then_success(outbox, services, fake_twilio, no_pending_failures):
    to = new_number()
    doc = outbox.queue_text(to, "third time lucky", key=key())
    fake_twilio.fail_next(1, 500, 20500, to=to)
    fake_twilio.fail_next(1, 429, 20429, to=to)
    for _ in range(2):
        with pytest.raises(SendFailed) as raised:
            services.delivery.deliver(doc["_id"])
        assert raised.value.transient
        assert message(services, doc["_id"])["status"] == "pending"
    assert services.delivery.deliver(doc["_id"]) == "sent"
    assert len(fake_twilio.texts_to(to)) == 1
    assert message(services, doc["_id"])["attempts"] == 3


def test_unreachable_twilio_is_transient(outbox, services, settings):
    """A connection failure (nothing listening) is retried, like a 5xx."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # closed again when the block ends: connection refused
    sender = TwilioSender(replace(settings, twilio_api_base=f"http://127.0.0.1:{dead_port}"))
    delivery = Delivery(services.messages, sender, services.optouts, services.metrics, None)
    doc = outbox.queue_text(new_number(), "anyone there?", key=key())
    with pytest.raises(SendFailed) as raised:
        delivery.deliver(doc["_id"])
    assert raised.value.transient is True
    assert message(services, doc["_id"])["status"] == "pending"


def test_21610_fails_opts_the_number_out_and_is_not_retried(outbox, services, fake_twilio, no_pending_failures):
    to = new_number()
    doc = outbox.queue_text(to, "offer", key=key())
    fake_twilio.fail_next(1, 400, 21610, to=to)
    assert services.delivery.deliver(doc["_id"]) == "failed"  # returns: RQ will not retry it
    stored = message(services, doc["_id"])
    assert stored["status"] == "failed" and stored["error_code"] == "21610" and stored["status_rank"] == 5
    assert services.optouts.is_opted_out(to)
    assert services.db.optouts.find_one({"_id": to})["source"] == "carrier"
    requests_before = fake_twilio.requests
    assert services.delivery.deliver(doc["_id"]) == "failed"
    assert fake_twilio.requests == requests_before
    # and the next text to that number never leaves
    later = outbox.queue_text(to, "later", key=key())
    assert services.delivery.deliver(later["_id"]) == "suppressed"
    assert fake_twilio.texts_to(to) == []


def test_an_opt_out_withdraws_what_is_queued_for_the_number_a_reply_included(outbox, services, fake_twilio):
    """A reply queued after its step read the registry is sent without a second read, so the
    opt-out is what stops it: every text still queued for the number is withdrawn."""
    to, neighbour = new_number(), new_number()
    reply = outbox.queue_text(to, "Where are you?", key=key(), registry_read=True)
    update = outbox.queue_text(to, "A driver is on the way", key=key(), kind="update")
    theirs = outbox.queue_text(neighbour, "Booked!", key=key(), registry_read=True)
    assert services.delivery.opt_out(to, source="keyword") == 2
    for doc in (reply, update):
        stored = message(services, doc["_id"])
        assert stored["status"] == "suppressed" and stored["error_code"] == "21610" and stored["status_rank"] == 5
        assert services.delivery.deliver(doc["_id"]) == "suppressed"
    assert services.optouts.is_opted_out(to)
    assert fake_twilio.texts_to(to) == []
    assert message(services, theirs["_id"])["status"] == "pending", "another number's texts stay queued"
    assert services.delivery.deliver(theirs["_id"]) == "sent"


def test_a_reply_whose_registry_was_read_is_sent_without_reading_it_again(outbox, services, fake_twilio):
    """The registry says opted out, but nothing withdrew the reply (an opt-out recorded around
    `Delivery.opt_out`, which no code path does): the reply goes, which shows its send skipped
    the read; a text queued without the read is still checked."""
    to = new_number()
    reply = outbox.queue_text(to, "Where are you?", key=key(), registry_read=True)
    unread = outbox.queue_text(to, "A driver is on the way", key=key(), kind="update")
    services.optouts.opt_out(to, source="test")
    assert services.delivery.deliver(reply["_id"]) == "sent"
    assert services.delivery.deliver(unread["_id"]) == "suppressed"
    assert [t.body for t in fake_twilio.texts_to(to)] == ["Where are you?"]


@pytest.mark.parametrize("code", [21211, 21614])
def test_bad_number_fails_without_opting_out(outbox, services, fake_twilio, no_pending_failures, code):
    to = new_number()
    doc = outbox.queue_text(to, "hello", key=key())
    fake_twilio.fail_next(1, 400, code, to=to)
    assert services.delivery.deliver(doc["_id"]) == "failed"
    stored = message(services, doc["_id"])
    assert stored["status"] == "failed" and stored["error_code"] == str(code)
    assert not services.optouts.is_opted_out(to)
    assert services.delivery.deliver(doc["_id"]) == "failed"
    assert fake_twilio.texts_to(to) == []


def test_opted_out_number_is_suppressed_without_a_request(outbox, services, fake_twilio):
    to = new_number()
    services.optouts.opt_out(to, source="sms")
    doc = outbox.queue_text(to, "you opted out", key=key())
    requests_before = fake_twilio.requests
    assert services.delivery.deliver(doc["_id"]) == "suppressed"
    assert fake_twilio.requests == requests_before
    assert fake_twilio.texts_to(to) == []
    stored = message(services, doc["_id"])
    assert stored["status"] == "suppressed" and stored["status_rank"] == 5
    assert stored.get("attempts", 0) == 0

    services.optouts.opt_in(to, source="sms")
    again = outbox.queue_text(to, "welcome back", key=key())
    send_now(services, again["_id"])
    assert [t.body for t in fake_twilio.texts_to(to)] == ["welcome back"]
    # the suppressed text stays suppressed after the opt-in
    assert services.delivery.deliver(doc["_id"]) == "suppressed"


@pytest.mark.parametrize("recipient", ["12345", "anonymous", "", "client:dispatcher", "2125550123",
                                       "+15551234", "+1 212 555 0123"])
def test_non_textable_recipients_are_never_queued(services, recipient):
    k = key()
    assert services.outbox.queue_text(recipient, "hi", key=k) is None
    assert services.db.messages.count_documents({"key": k}) == 0


# --- status callbacks -----------------------------------------------------------------------

def send_now(services, message_id: str) -> None:
    """Deliver a text just queued. The live service's outbox drain shares this database and
    takes never-tried texts whenever something kicks it, so it may have sent it first."""
    if services.delivery.deliver(message_id) != "sent":
        deadline = time.time() + 10
        while message(services, message_id)["status"] != "sent" and time.time() < deadline:
            time.sleep(0.02)
    assert message(services, message_id)["status"] == "sent"


def sent_message(outbox, services, fake_twilio) -> tuple[dict, str]:
    to = new_number()
    doc = outbox.queue_text(to, "tracked", key=key())
    send_now(services, doc["_id"])
    [sent] = fake_twilio.texts_to(to)
    return doc, sent.sid


def test_status_callbacks_out_of_order_keep_the_latest(outbox, services, fake_twilio):
    doc, sid = sent_message(outbox, services, fake_twilio)
    assert services.delivery.record_status(sid, "delivered", None) is True
    assert services.delivery.record_status(sid, "sent", None) is False
    assert services.delivery.record_status(sid, "queued", None) is False
    stored = message(services, doc["_id"])
    assert stored["status"] == "delivered" and stored["status_rank"] == 4
    assert services.db.receipts.find_one({"_id": sid})["status"] == "delivered"


def test_status_callbacks_in_order_and_unknown_status(outbox, services, fake_twilio):
    doc, sid = sent_message(outbox, services, fake_twilio)
    assert services.delivery.record_status(sid, "sent", None) is False  # already `sent` from the send job
    assert services.delivery.record_status(sid, "bogus", None) is False
    assert message(services, doc["_id"])["status"] == "sent"
    assert services.delivery.record_status(sid, "undelivered", "30003") is True
    stored = message(services, doc["_id"])
    assert stored["status"] == "undelivered" and stored["error_code"] == "30003"
    assert services.delivery.record_status(sid, "delivered", None) is False


def test_status_callback_for_unknown_sid_changes_no_message(services):
    sid = "SM" + uuid.uuid4().hex
    assert services.delivery.record_status(sid, "delivered", None) is False
    assert services.db.messages.count_documents({"twilio_sid": sid}) == 0
    assert services.db.receipts.find_one({"_id": sid})["status"] == "delivered"


class CallbackBeforeStoreSender:
    """The real TwilioSender, plus Twilio's status callback landing in the gap between
    Twilio answering the send and the job storing the sid.

    The fake assigns the sid only when it receives the send, so a test cannot post the
    receipt for it beforehand. This wraps the real sender (the `Sender` seam Delivery is
    built with): once the real request to the fake has returned the sid, it applies the
    callback with the real `record_status`, exactly as `/twilio/status` would, before
    handing the sid back to `Delivery`, which has therefore not stored it yet. That is the
    race the receipts collection exists for, made deterministic.
    """

    def __init__(self, real, recorder, status: str, error_code: str | None = None) -> None:
        self.real, self.recorder, self.status, self.error_code = real, recorder, status, error_code
        self.applied_directly: bool | None = None

    def send(self, to, body, status_callback):
        sid = self.real.send(to, body, status_callback)
        self.applied_directly = self.recorder.record_status(sid, self.status, self.error_code)
        return sid


@pytest.mark.parametrize("early,expected", [("delivered", "delivered"), ("queued", "sent"),
                                            ("undelivered", "undelivered")])
def test_callback_before_sid_is_stored_is_applied_once_known(outbox, services, fake_twilio, early, expected):
    sender = CallbackBeforeStoreSender(services.delivery.sender, services.delivery, early,
                                       "30005" if early == "undelivered" else None)
    delivery = Delivery(services.messages, sender, services.optouts, services.metrics,
                        services.delivery.status_callback)
    to = new_number()
    doc = outbox.queue_text(to, "early bird", key=key())
    delivery.deliver(doc["_id"])
    [sent] = fake_twilio.texts_to(to)
    assert sender.applied_directly is False, "the callback really did arrive before the sid was stored"
    stored = message(services, doc["_id"])
    assert stored["twilio_sid"] == sent.sid
    assert stored["status"] == expected, f"early {early!r} receipt should leave {expected!r}, got {stored['status']!r}"
    if early == "undelivered":
        assert stored["error_code"] == "30005"
    # a late, lower callback still cannot move it back
    services.delivery.record_status(sent.sid, "sent", None)
    assert message(services, doc["_id"])["status"] == expected


# --- Twilio's RFC 9457 error format ----------------------------------------------------------

class ProblemDetailsTwilio(FakeServer):
    """A Messages endpoint that answers every send with an RFC 9457 problem document.

    twilio 9.13 turns a response carrying `type`, `title`, `status` and `code` into
    `TwilioServiceException` (not `TwilioRestException`); FIELD-NOTES §Twilio warns of it.
    It carries `.status` and `.code` like the legacy exception does.
    """

    def __init__(self, status: int, code: int) -> None:
        super().__init__()
        self.status, self.code, self.requests = status, code, 0

    def handle(self, h) -> None:
        h.rfile.read(int(h.headers.get("Content-Length", 0)))
        self.requests += 1
        self.reply(h, self.status, json.dumps({
            "type": f"https://www.twilio.com/docs/errors/{self.code}", "title": f"problem {self.code}",
            "status": self.status, "code": self.code, "detail": "fake problem details",
        }).encode(), content_type="application/problem+json")


@pytest.fixture
def problem_twilio():
    servers: list[ProblemDetailsTwilio] = []

    def start(status: int, code: int) -> ProblemDetailsTwilio:
        server = ProblemDetailsTwilio(status, code).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("http_status,code", [(503, 20503), (429, 20429)])
def test_problem_details_transient_errors_are_retried(settings, problem_twilio, http_status, code):
    server = problem_twilio(http_status, code)
    sender = TwilioSender(replace(settings, twilio_api_base=server.url))
    with pytest.raises(SendFailed) as raised:
        sender.send(new_number(), "hi", None)
    assert raised.value.transient is True
    assert server.requests == 1


@pytest.mark.parametrize("code", [21610, 21211])
def test_problem_details_permanent_errors_are_final(settings, problem_twilio, code):
    server = problem_twilio(400, code)
    sender = TwilioSender(replace(settings, twilio_api_base=server.url))
    with pytest.raises(SendFailed) as raised:
        sender.send(new_number(), "hi", None)
    assert (raised.value.transient, raised.value.code) == (False, code), (
        f"APP BUG dispatch/adapters/twilio.py TwilioSender.send: an HTTP 400 / code {code} answered in "
        f"RFC 9457 form raises TwilioServiceException, which falls into the `except TwilioException` "
        f"branch and becomes SendFailed(code=None, transient=True) - a never-retry error is retried. "
        f"Got transient={raised.value.transient}, code={raised.value.code}")


def test_problem_details_opt_out_opts_the_number_out(outbox, services, settings, problem_twilio):
    server = problem_twilio(400, 21610)
    delivery = Delivery(services.messages, TwilioSender(replace(settings, twilio_api_base=server.url)),
                        services.optouts, services.metrics, None)
    to = new_number()
    doc = outbox.queue_text(to, "offer", key=key())
    try:
        result = delivery.deliver(doc["_id"])
    except SendFailed as exc:
        result = f"raised SendFailed(transient={exc.transient}, code={exc.code})"
    stored = message(services, doc["_id"])
    assert (result, stored["status"], services.optouts.is_opted_out(to)) == ("failed", "failed", True), (
        "APP BUG dispatch/adapters/twilio.py: a 21610 in RFC 9457 form must fail the text and opt the "
        f"number out; deliver gave {result!r}, message is {stored['status']!r}, "
        f"opted out: {services.optouts.is_opted_out(to)} (RQ would retry it 5 more times)")


# --- a duplicated send job racing an opt-out --------------------------------------------------

class OptOutDuringCheck:
    """The real OptOuts, with the world moving on while a duplicated job asks it.

    Any job can run twice (FIELD-NOTES §RQ). Job copy B has claimed the message; before it
    consults the opt-out registry, copy A tries the same message, and then the rider texts
    STOP. This wrapper plays exactly that interleaving (A is the real `services.delivery`) at
    the moment B asks, then answers truthfully.
    """

    def __init__(self, real, other_copy, message_id: str) -> None:
        self.real, self.other_copy, self.message_id = real, other_copy, message_id
        self.other_result: str | None = None

    def is_opted_out(self, phone: str) -> bool:
        self.other_result = self.other_copy.deliver(self.message_id)
        self.real.opt_out(phone, source="sms")
        return self.real.is_opted_out(phone)

    def opt_out(self, phone: str, source: str) -> None:
        self.real.opt_out(phone, source)


def test_duplicate_job_neither_sends_a_claimed_text_again_nor_after_a_stop(outbox, services, fake_twilio):
    to = new_number()
    doc = outbox.queue_text(to, "driver assigned", key=key())
    optouts = OptOutDuringCheck(services.optouts, services.delivery, doc["_id"])
    copy_b = Delivery(services.messages, services.delivery.sender, optouts, services.metrics,
                      services.delivery.status_callback)
    assert copy_b.deliver(doc["_id"]) == "suppressed"
    assert optouts.other_result == "sending", "copy A must see the text claimed and leave it alone"
    assert fake_twilio.texts_to(to) == []
    stored = message(services, doc["_id"])
    assert stored["status"] == "suppressed" and stored.get("attempts", 0) == 0
    # A copy arriving after the suppression answers with the status and sends nothing.
    assert services.delivery.deliver(doc["_id"]) == "suppressed" and fake_twilio.texts_to(to) == []


# --- the outbox drain -------------------------------------------------------------------------

@pytest.fixture
def private_outbox(services, settings):
    """An outbox in its own database, so a drain sees only this test's texts."""
    db = services.db.client[f"drain_{uuid.uuid4().hex[:10]}"]
    db.messages.create_index("key", unique=True)
    box = Outbox(MongoMessages(db), RecordingScheduler())
    later = RecordingScheduler()
    delivery = Delivery(MongoMessages(db), TwilioSender(settings), MongoOptOuts(db), services.metrics, None, later)
    delivery.retries = later.retried
    yield box, delivery, db
    services.db.client.drop_database(db.name)


def test_drain_sends_every_waiting_text_once_and_each_numbers_texts_in_order(private_outbox, fake_twilio):
    box, delivery, db = private_outbox
    busy = [new_number() for _ in range(3)]
    single = [new_number() for _ in range(20)]
    for step in ("assigned", "arrived", "done"):
        for phone in busy:
            box.queue_text(phone, f"driver {step}", key=key())
    for phone in single:
        box.queue_text(phone, "hello", key=key())
    assert delivery.drain() == 29
    assert delivery.drain() == 0 and delivery.retries == []
    for phone in busy:
        assert [t.body for t in fake_twilio.wait_for_texts(phone, 3)] == ["driver assigned", "driver arrived",
                                                                          "driver done"]
    for phone in single:
        assert len(fake_twilio.wait_for_texts(phone, 1)) == 1
    assert db.messages.count_documents({"status": "sent", "attempts": 1}) == 29


def test_drain_hands_a_transient_failure_to_its_own_retry_job_and_leaves_it(private_outbox, fake_twilio,
                                                                           no_pending_failures):
    box, delivery, db = private_outbox
    to = new_number()
    doc = box.queue_text(to, "one", key=key())
    fake_twilio.fail_next(1, 503, 20503, to=to)
    assert delivery.drain() == 1
    assert delivery.retries == [doc["_id"]]
    stored = message_in(db, doc["_id"])
    assert stored["status"] == "pending" and stored["attempts"] == 1
    assert delivery.drain() == 0, "a text that was tried once is its retry job's business"
    assert delivery.deliver(doc["_id"]) == "sent"


def test_a_numbers_texts_wait_behind_one_mid_send_elsewhere_and_go_on_after_a_dead_claim(private_outbox,
                                                                                      fake_twilio):
    from dispatch.messaging import CLAIM_DEAD_MS, WAITING
    from dispatch.model.clock import now_ms

    box, delivery, db = private_outbox
    to = new_number()
    first, second, third = (box.queue_text(to, f"step {n}", key=key()) for n in (1, 2, 3))
    db.messages.update_one({"_id": first["_id"]}, {"$set": {"status": "sending", "claimed_at": now_ms()}})
    assert delivery.drain() == 0, "texts waiting behind one mid-send elsewhere do not spin a drain"
    assert delivery.deliver(third["_id"]) == WAITING
    assert fake_twilio.texts_to(to) == []
    assert {message_in(db, d["_id"])["status"] for d in (second, third)} == {"pending"}
    # The first text's worker died mid-send: after CLAIM_DEAD_MS the texts after it go on, in order.
    db.messages.update_one({"_id": first["_id"]}, {"$set": {"claimed_at": now_ms() - CLAIM_DEAD_MS - 1}})
    assert delivery.deliver(third["_id"]) == "sent"
    assert [t.body for t in fake_twilio.wait_for_texts(to, 2)] == ["step 2", "step 3"]
    assert message_in(db, first["_id"])["status"] == "sending", "the dead claim is the sweeper's to settle"
    assert message_in(db, second["_id"])["attempts"] == 1


class QueueDuringSend:
    """The real sender, plus, inside the first send, a text queued to the same number and a
    second drain run at once: that drain finds the number's first text mid-send and stops."""

    def __init__(self, real, box, other_drain) -> None:
        self.real, self.box, self.other_drain = real, box, other_drain
        self.other_took: int | None = None

    def send(self, to, body, status_callback):
        if self.other_took is None:
            self.box.queue_text(to, "queued meanwhile", key=key())
            self.other_took = self.other_drain()
        return self.real.send(to, body, status_callback)


def test_a_lane_another_stopped_behind_reads_its_numbers_texts_again(private_outbox, fake_twilio):
    box, delivery, db = private_outbox
    other = Delivery(delivery.messages, delivery.sender, delivery.optouts, delivery.metrics, None, delivery.scheduler)
    sender = QueueDuringSend(delivery.sender, box, other.drain)
    first = Delivery(delivery.messages, sender, delivery.optouts, delivery.metrics, None, delivery.scheduler)
    to = new_number()
    box.queue_text(to, "first", key=key())
    first.drain()
    assert sender.other_took == 0, "the other drain waits behind the text mid-send"
    assert [t.body for t in fake_twilio.wait_for_texts(to, 2)] == ["first", "queued meanwhile"]
    assert db.messages.count_documents({"phone": to, "status": "sent"}) == 2


def test_kicks_coalesce_into_one_waiting_kick(services, settings):
    from rq import Queue

    from dispatch.adapters.rq_scheduler import DRAIN_OUTBOX, RqScheduler

    name = f"q_kick_{uuid.uuid4().hex[:8]}"
    jobs = RqScheduler(Queue(name, connection=services.redis), Queue(f"{name}-urgent", connection=services.redis),
                       services.keys)
    try:
        for _ in range(5):
            jobs.kick_outbox()
        assert jobs.kicks_waiting(DRAIN_OUTBOX) == 1 and not jobs.urgent.get_jobs()
        assert jobs.next_kick(DRAIN_OUTBOX, 0)  # a drain thread takes it ...
        jobs.kick_outbox()  # ... so work stored from now on wakes the next (even had that one died)
        assert jobs.kicks_waiting(DRAIN_OUTBOX) == 1
        assert jobs.next_kick(DRAIN_OUTBOX, 1) and not jobs.next_kick(DRAIN_OUTBOX, 0)
    finally:
        while jobs.next_kick(DRAIN_OUTBOX, 0):
            pass


def message_in(db, message_id: str) -> dict:
    return db.messages.find_one({"_id": message_id})
