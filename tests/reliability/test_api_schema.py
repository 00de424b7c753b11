"""The admin API against its own OpenAPI document (`/api/openapi.json`), by schemathesis with
every check it has: stateful scenarios (links between operations), and each operation with
schema-valid and schema-violating data. Due: no 5xx, no status the document does not list,
no schema-valid request refused, no schema-violating request accepted, no answer outside
its documented schema. The app runs in-process (Flask's WSGI interface) over the real
stores; its own database is emptied before each scenario."""
from __future__ import annotations

import dataclasses
import uuid
from collections import Counter

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode

from app import create_app
from dispatch.adapters.mongo import ensure_indexes
from dispatch.bootstrap import Services
from dispatch.model.account import USERNAME, valid_username
from dispatch.model.phones import normalise
from tests.conftest import ADMIN_TOKEN

TOKEN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLES = 20  # per operation and mode
SCENARIOS = 60
# No shrinking (a failure is reported as found) and no example database: the run is about
# finding, and Redis is still shared with the rest of the suite.
RUN = {"deadline": None, "database": None, "suppress_health_check": list(hypothesis.HealthCheck),
       "phases": [hypothesis.Phase.explicit, hypothesis.Phase.generate]}
# Numbers of the 212 area the way tests/conftest.py's new_number makes them (valid, not random).
schemathesis.openapi.format("phone", st.integers(2_000_000, 9_999_999).map(lambda n: f"+1212{n}")
                            .filter(lambda p: normalise(p) == p))
schemathesis.openapi.format("username", st.from_regex(USERNAME, fullmatch=True).filter(valid_username))
schemathesis.openapi.format("iso-time", st.one_of(st.dates().map(str), st.datetimes().map(lambda d: d.isoformat())))


def _from(address: str, app):
    """Requests from an address of their own: schemathesis sends wrong tokens on purpose, and
    the guessing limit counts them per address (in the Redis every test shares)."""
    def wsgi(environ, start_response):
        environ["REMOTE_ADDR"] = address
        return app(environ, start_response)
    return wsgi


@pytest.fixture(scope="module")
def private_db(services):
    """A database of its own, emptied before each stateful scenario: a replayed scenario meets
    the same state, as Hypothesis needs."""
    db = services.db.client[f"api_schema_{uuid.uuid4().hex[:8]}"]
    ensure_indexes(db)
    yield db
    services.db.client.drop_database(db.name)


@pytest.fixture(scope="module")
def api_schema(services, settings, private_db):
    own = Services(dataclasses.replace(settings, admin_token_tries_per_minute=10**6), private_db, services.redis)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", _from("192.0.2.77", create_app(services=own)))
    # The live stream never ends by itself (schemathesis would wait on it): its events and
    # refusals are held to the document by tests/dispatch/http/test_status_feed.py.
    schema = schema.exclude(path="/api/stream")

    @schema.auth()
    class AdminToken:
        def get(self, case, context):
            return ADMIN_TOKEN

        def set(self, case, data, context):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


def test_stateful(api_schema, private_db, table):
    statuses: Counter[int] = Counter()

    class Scenario(api_schema.as_state_machine()):
        def setup(self):
            for name in private_db.list_collection_names():
                private_db[name].delete_many({})

        def after_call(self, response, case):
            super().after_call(response, case)
            statuses[response.status_code] += 1

    try:
        Scenario.run(settings=hypothesis.settings(max_examples=SCENARIOS, stateful_step_count=8, **RUN))
    finally:
        _record(table, "Admin API under schemathesis (stateful)",
                f"{SCENARIOS} scenarios of up to 8 linked calls (a driver registered, then read, changed, ...)",
                statuses)



@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_each_operation(api_schema, mode, table):
    statuses: Counter[int] = Counter()
    try:
        _each_operation(api_schema, mode, statuses)
    finally:
        _record(table, f"Admin API under schemathesis ({mode.value} data)",
                f"every operation of the document, {EXAMPLES} requests each with "
                f"{'schema-valid' if mode == GenerationMode.POSITIVE else 'schema-violating'} data", statuses)
    if mode == GenerationMode.POSITIVE:
        assert statuses[401] < sum(statuses.values()) / 4, f"the token was not sent: {statuses}"


def _record(table, fault: str, injected: str, statuses: Counter[int]) -> None:
    n = sum(statuses.values())
    table.record(fault, injected, times=n, expected=n, lost=statuses_5xx(statuses), duplicated=0,
                 counted="answers passing every schemathesis check (5xx counted as lost); statuses: "
                         + ", ".join(f"{code} x{k}" for code, k in sorted(statuses.items())))


def statuses_5xx(statuses: Counter[int]) -> int:
    return sum(k for code, k in statuses.items() if code >= 500)


def _each_operation(api_schema, mode, statuses: Counter[int]) -> None:
    for found in api_schema.get_all_operations():
        operation = found.ok()

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(max_examples=EXAMPLES, **RUN)
        def run(case):
            headers = TOKEN
            if mode == GenerationMode.NEGATIVE:
                # A case may be schema-violating only by what cannot be sent (a query key whose
                # value is an empty list sends nothing) or by leaving the token out: adding the
                # token back, or sending nothing for that part, would make a valid request of it.
                hypothesis.assume(not any(v == [] for v in (case.query or {}).values()))
                if "Authorization" not in (case.headers or {}):
                    headers = None
            statuses[case.call_and_validate(headers=headers).status_code] += 1

        run()
