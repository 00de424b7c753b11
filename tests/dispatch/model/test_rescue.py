"""dispatch.model.rescue: the lifecycle (every status x action) and the rescue's JSON shape."""
from __future__ import annotations

import itertools
from datetime import datetime

import pytest

from dispatch.model.rescue import (
    ACTION_TARGET,
    CLOSED_STATUSES,
    OPEN_STATUSES,
    STATUSES,
    IllegalTransition,
    Rescue,
    next_status,
)

ALL_STATUSES = ["searching", "assigned", "en_route", "arrived", "in_transit", "completed",
                "cancelled", "unfulfilled"]
ALL_ACTIONS = ["assign", "reassign", "drive", "arrive", "load", "complete", "requeue", "cancel", "give_up"]

# Written out from PRODUCT.md §3 (and the driver's DROP in §4), independently of LIFECYCLE:
# (status, action) -> new status.
LEGAL = {
    ("searching", "assign"): "assigned",
    ("unfulfilled", "assign"): "assigned",  # a dispatcher reopens it (PRODUCT.md §5)
    ("assigned", "drive"): "en_route",
    ("assigned", "arrive"): "arrived",
    ("en_route", "arrive"): "arrived",
    ("arrived", "load"): "in_transit",
    ("arrived", "complete"): "completed",
    ("in_transit", "complete"): "completed",
    ("assigned", "requeue"): "searching",
    ("en_route", "requeue"): "searching",
    ("arrived", "requeue"): "searching",      # DROP on the job hands it back (§4 Driver)
    ("searching", "give_up"): "unfulfilled",
    # A dispatcher hands the job to another driver; the status stays.
    ("assigned", "reassign"): "assigned",
    ("en_route", "reassign"): "en_route",
    **{(s, "cancel"): "cancelled" for s in ("searching", "assigned", "en_route", "arrived", "in_transit")},
}
TARGET = {"assign": "assigned", "reassign": None, "drive": "en_route", "arrive": "arrived", "load": "in_transit",
          "complete": "completed", "requeue": "searching", "cancel": "cancelled",
          "give_up": "unfulfilled"}
PAIRS = list(itertools.product(ALL_STATUSES, ALL_ACTIONS))


def test_status_sets():
    assert list(STATUSES) == ALL_STATUSES
    assert set(OPEN_STATUSES) == {"searching", "assigned", "en_route", "arrived", "in_transit"}
    assert set(CLOSED_STATUSES) == {"completed", "cancelled", "unfulfilled"}
    assert ACTION_TARGET == TARGET


@pytest.mark.parametrize("status, action", PAIRS, ids=[f"{s}-{a}" for s, a in PAIRS])
def test_next_status_for_every_pair(status, action):
    if (status, action) in LEGAL:
        assert next_status(status, action) == LEGAL[(status, action)]
    elif TARGET[action] == status:
        # Repeating the current status is a no-op, not an error.
        assert next_status(status, action) is None
    else:
        with pytest.raises(IllegalTransition) as info:
            next_status(status, action)
        assert (info.value.status, info.value.action) == (status, action)
        assert status in str(info.value) and action in str(info.value)


def test_every_pair_is_classified_as_expected():
    legal = {p for p in PAIRS if p in LEGAL}
    noop = {(s, a) for s, a in PAIRS if TARGET[a] == s}
    assert len(legal) == 19
    assert noop == {(TARGET[a], a) for a in ALL_ACTIONS if TARGET[a]}
    assert not legal & noop


@pytest.mark.parametrize("status", ["completed", "cancelled", "unfulfilled"])
def test_closed_rescues_cannot_be_reopened(status):
    """Except by a dispatcher assigning an unfulfilled one (PRODUCT.md §5)."""
    for action in ALL_ACTIONS:
        if TARGET[action] == status or (status, action) == ("unfulfilled", "assign"):
            continue
        with pytest.raises(IllegalTransition):
            next_status(status, action)


def test_illegal_transition_is_a_value_error():
    with pytest.raises(ValueError):
        next_status("completed", "cancel")


@pytest.mark.parametrize("status, action", [
    ("searching", "teleport"), ("flying", "assign"), ("", ""), ("flying", "cancel"),
    ("SEARCHING", "assign"), ("searching", "Assign"), ("cancelled", "to_cancelled"),
])
def test_unknown_status_or_action(status, action):
    with pytest.raises(IllegalTransition):
        next_status(status, action)


def test_next_status_leaves_no_state_behind():
    # The shared machine is reused: asking in any order gives the same answers.
    first = {p: _outcome(*p) for p in PAIRS}
    second = {p: _outcome(*p) for p in reversed(PAIRS)}
    assert first == second


def _outcome(status: str, action: str) -> str | None:
    try:
        return next_status(status, action) or "noop"
    except IllegalTransition:
        return "illegal"


# -- Rescue document <-> JSON --------------------------------------------------------------------

def minimal_doc(**overrides) -> dict:
    doc = {
        "_id": "r-123", "code": "R4821", "status": "searching", "rider_phone": "+12125550123",
        "pickup": {"lat": 40.7359, "lng": -73.9911, "label": "Union Square"},
        "dropoff": None, "problem": "flat_tire", "problem_note": "flat at union sq",
        "quote_cents": 2800, "trip_miles": 0.0, "surge": 1.0,
        "created_at": 1_700_000_000_000, "updated_at": 1_700_000_060_123,
    }
    doc.update(overrides)
    return doc


def test_from_doc_minimal_defaults():
    rescue = Rescue.from_doc(minimal_doc())
    assert rescue.id == "r-123"
    assert rescue.code == "R4821"
    assert rescue.channel == "sms"
    assert rescue.driver_id is None
    assert rescue.payment_status == "none"
    assert rescue.cancel_reason is None and rescue.cancelled_by is None
    assert rescue.version == 0
    assert rescue.extra == {}
    assert rescue.is_open
    assert rescue.problem_label == "flat tire"


def test_from_doc_keeps_unknown_fields_in_extra():
    rescue = Rescue.from_doc(minimal_doc(timeline_count=3, offer={"driver": "d1"}, version=4))
    assert rescue.extra == {"timeline_count": 3, "offer": {"driver": "d1"}}
    assert rescue.version == 4
    assert "_id" not in rescue.extra


@pytest.mark.parametrize("status, is_open", [(s, s in OPEN_STATUSES) for s in ALL_STATUSES])
def test_is_open(status, is_open):
    assert Rescue.from_doc(minimal_doc(status=status)).is_open is is_open


def test_problem_label_falls_back_to_the_code():
    assert Rescue.from_doc(minimal_doc(problem="crash")).problem_label == "crash"
    assert Rescue.from_doc(minimal_doc(problem="dead_battery")).problem_label == "dead battery"
    assert Rescue.from_doc(minimal_doc(problem="weird")).problem_label == "weird"


def test_to_json_has_the_product_fields():
    doc = minimal_doc(dropoff={"lat": 40.7033, "lng": -74.017, "label": "Battery Park"},
                      driver_id="d-9", payment_status="link_sent", secret_internal="x")
    data = Rescue.from_doc(doc).to_json()
    # PRODUCT.md §3: a rescue in JSON has at least these.
    required = {"id", "code", "status", "rider_phone", "pickup", "dropoff", "problem", "driver_id",
                "quote_cents", "payment_status", "created_at", "updated_at"}
    assert required <= set(data)
    # Cancelled rescues carry the reason and who cancelled.
    assert {"cancel_reason", "cancelled_by"} <= set(data)
    assert "_id" not in data and "extra" not in data and "secret_internal" not in data
    assert data["id"] == "r-123"
    assert data["code"] == "R4821"
    assert data["status"] == "searching"
    assert data["rider_phone"] == "+12125550123"
    assert data["pickup"] == {"lat": 40.7359, "lng": -73.9911, "label": "Union Square"}
    assert data["dropoff"] == {"lat": 40.7033, "lng": -74.017, "label": "Battery Park"}
    assert data["problem"] == "flat_tire"
    assert data["driver_id"] == "d-9"
    assert data["quote_cents"] == 2800 and isinstance(data["quote_cents"], int)
    assert data["payment_status"] == "link_sent"


def test_to_json_dropoff_may_be_null_and_timestamps_are_iso_utc():
    data = Rescue.from_doc(minimal_doc()).to_json()
    assert data["dropoff"] is None
    assert data["created_at"] == "2023-11-14T22:13:20.000+00:00"
    assert data["updated_at"] == "2023-11-14T22:14:20.123+00:00"
    parsed = datetime.fromisoformat(data["updated_at"])
    assert parsed.utcoffset().total_seconds() == 0


def test_cancelled_rescue_json():
    doc = minimal_doc(status="cancelled", cancel_reason="cancelled by rider", cancelled_by="rider")
    data = Rescue.from_doc(doc).to_json()
    assert (data["status"], data["cancel_reason"], data["cancelled_by"]) == (
        "cancelled", "cancelled by rider", "rider")
