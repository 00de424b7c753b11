"""The payment links drain (dispatch.worker.links_waiting): a completed rescue waits in a Redis
set, a worker's links drain makes its link, and only a link that fails there becomes an RQ job
with back-off retries.

Real MongoDB, Redis and RQ, the real `stripe` client talking to the local fake, and a real
in-process `dispatch.worker.Worker` in burst mode. The module has stores of its own (a
database, a Redis key prefix and queues), so the session's live service never takes these
rescues and the tests can check what waits where.
"""
from __future__ import annotations

import uuid

import pytest
from rq.job import Job

from dispatch.adapters.rq_scheduler import PAYMENT_LINK
from dispatch.bootstrap import build_services
from dispatch.config import load_settings
from tests.dispatch.test_payments import completed_rescue, doc, texts


@pytest.fixture(scope="module")
def service_env(service_env):
    own = uuid.uuid4().hex[:8]
    return {**service_env, "MONGO_DB": f"links_{own}", "RQ_QUEUE": f"q_links_{own}", "REDIS_PREFIX": f"links_{own}"}


@pytest.fixture(scope="module")
def services(service_env):
    svc = build_services(load_settings(service_env))
    yield svc
    svc.db.client.drop_database(svc.db.name)
    svc.db.client.close()
    svc.redis.close()


def retry_jobs(services, rescue_id: str) -> list[Job]:
    registry = services.scheduler.queue.scheduled_job_registry
    jobs = [Job.fetch(job_id, connection=services.redis) for job_id in registry.get_job_ids()]
    return [job for job in jobs if job.func_name == PAYMENT_LINK and list(job.args) == [rescue_id]]


def test_a_completed_rescue_waits_in_the_set_and_the_drain_makes_its_link(services, fake_stripe, run_worker):
    r, _ = completed_rescue(services)
    assert services.redis.sismember(services.scheduler._links_key, r.id), "completion puts the rescue in the set"
    assert services.scheduler.queue.count == 0, "no RQ job for a link that has not failed"
    run_worker()
    d = doc(services, r.id)
    assert d["payment_status"] == "link_sent"
    [link_text] = texts(services, r.id, "payment_link")
    assert d["payment_url"] in link_text["body"]
    assert not services.redis.sismember(services.scheduler._links_key, r.id)
    assert retry_jobs(services, r.id) == []


def test_a_link_that_fails_in_the_drain_becomes_a_retry_job(services, fake_stripe, run_worker):
    r, _ = completed_rescue(services)
    fake_stripe.fail_next(3, 500, rescue_id=r.id)  # the client's own two retries fail as well
    run_worker()
    assert fake_stripe.failures == []
    assert doc(services, r.id)["payment_status"] == "none", "no link yet: Stripe failed"
    [job] = retry_jobs(services, r.id)  # after the first back-off, with RQ's retries behind it
    assert job.retries_left == 4
    assert job.perform() == "sent"  # the retry job's body, as the worker runs it once it is due
    assert doc(services, r.id)["payment_status"] == "link_sent"
    assert len(texts(services, r.id, "payment_link")) == 1


def test_a_rescue_put_back_twice_while_it_waits_is_billed_once(services, fake_stripe, run_worker):
    r, _ = completed_rescue(services)
    services.scheduler.payment_link(r.id)  # the sweeper's re-drive, a resend: they fold into the set
    services.scheduler.payment_link(r.id)
    assert services.redis.scard(services.scheduler._links_key) == 1
    run_worker()
    checkouts = [c for c in fake_stripe.calls("/v1/checkout/sessions") if c.form.get("client_reference_id") == r.id]
    assert len(checkouts) == 1
    assert len(texts(services, r.id, "payment_link")) == 1
