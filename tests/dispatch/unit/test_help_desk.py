"""Bringing a person in (dispatch/help_desk.py) over in-memory fakes."""
from __future__ import annotations

import dataclasses

import pytest

from dispatch.model import help_request as hr
from dispatch.model.errors import NotFound
from tests.conftest import new_number
from tests.dispatch.fakes import core
from tests.dispatch.unit.conftest import add_rescue, texts_to

ON_CALL = "+12125550177"


@pytest.fixture
def c():
    return core(dataclasses.replace(core().settings, dispatch_alert_phone=ON_CALL))


def test_a_request_opens_once_per_phone_and_alerts_the_on_call_dispatcher_once(c):
    rescue = add_rescue(c)
    first = c.help_desk.open(rescue.rider_phone, hr.ASKED, "HUMAN please", rescue_id=rescue.id)
    again = c.help_desk.open(rescue.rider_phone, hr.NOT_UNDERSTOOD, "??")
    assert again.id == first.id and first.status == hr.OPEN and first.rescue_id == rescue.id
    [alert] = c.messages.to(ON_CALL)
    assert alert["kind"] == "help_alert" and rescue.code in alert["body"] and "asked for a person" in alert["body"]
    assert rescue.rider_phone not in alert["body"], "the alert never carries the full number"
    assert [e.type for e in c.events.of_types_since(["help_requested"], 0)] == ["help_requested"]


def test_no_alert_phone_no_alert(c):
    quiet = core()
    phone = new_number()
    quiet.help_desk.open(phone, hr.ASKED, "agent")
    assert quiet.messages.rows == {}


def test_resolving_records_who_and_when_and_a_repeat_changes_nothing(c):
    request = c.help_desk.open(new_number(), hr.NOT_UNDERSTOOD, "🚲💥😭")
    done = c.help_desk.resolve(request.id, by="dispatcher:ana", note="called her")
    assert (done.status, done.resolved_by, done.note) == (hr.RESOLVED, "dispatcher:ana", "called her")
    assert done.resolved_at and c.help_desk.resolve(request.id, by="dispatcher:bo").resolved_by == "dispatcher:ana"
    assert [r.id for r in c.help_desk.list(hr.RESOLVED)] == [request.id] and c.help_desk.list(hr.OPEN) == []
    with pytest.raises(NotFound):
        c.help_desk.resolve("nope", by="dispatcher:ana")
    reopened = c.help_desk.open(request.phone, hr.ASKED, "again")
    assert reopened.id != request.id, "after it is resolved, a new one can open"


def test_texts_to_the_rider_are_unaffected(c):
    rescue = add_rescue(c)
    c.help_desk.open(rescue.rider_phone, hr.ASKED, "human")
    assert texts_to(c, rescue.rider_phone) == []
