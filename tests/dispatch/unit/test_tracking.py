"""The one ETA, the arriving text and the tracking page's view (PRODUCT.md §9) over in-memory fakes."""
from __future__ import annotations

import dataclasses

import pytest

from dispatch.model import events as ev
from dispatch.model.geo import Point, eta_for_drive, eta_minutes
from dispatch.tracking import BY_DISTANCE, BY_ROAD
from tests.dispatch.fakes import FakeRouter, core
from tests.dispatch.unit.conftest import UNION_SQ, add_driver, add_rescue, north, texts_to


def on_job(c, at=north(2.0)):
    driver = add_driver(c, at)
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    c.dispatcher.accept(c.drivers.get(driver.id))
    return c.rescues.get(rescue.id), c.drivers.get(driver.id)


def move(c, driver, at, accuracy=None):
    c.dispatcher.update_location(c.drivers.get(driver.id), Point(*at, "pin"), accuracy_m=accuracy)


def assigned_text_minutes(c, rescue) -> int:
    [text] = [m for m in c.messages.to(rescue.rider_phone) if m["kind"] == "rider_driver_assigned"]
    return int(text["body"].split("about ")[1].split(" min")[0])


def test_the_assigned_text_the_tracking_page_and_the_board_show_one_eta(c):
    rescue, driver = on_job(c)
    expected = eta_minutes(driver.point, Point(*UNION_SQ), c.settings.eta_speed_kmh)
    assert rescue.extra["eta_source"] == BY_DISTANCE and rescue.extra["eta_driver_id"] == driver.id
    assert assigned_text_minutes(c, rescue) == expected
    assert c.tracking.rider_view(rescue, driver)["eta_minutes"] == expected
    [row] = [r for r in c.board.board()["rescues"] if r["id"] == rescue.id]
    assert row["eta_min"] == expected


def test_the_eta_counts_down_between_positions_and_a_position_resets_it(c):
    rescue, driver = on_job(c, north(4.0))
    first = c.tracking.eta_minutes(rescue, driver)
    due = rescue.extra["eta_due_at"]
    assert c.tracking.eta_minutes(rescue, driver, now=due - 3 * 60_000) == 3
    assert c.tracking.eta_minutes(rescue, driver, now=due + 60_000) == 1, "late, but not there yet"
    move(c, driver, north(1.0))
    rescue = c.rescues.get(rescue.id)
    assert c.tracking.eta_minutes(rescue, c.drivers.get(driver.id)) < first


def test_with_a_routing_engine_the_eta_is_by_road_and_without_it_by_distance():
    router = FakeRouter(kmh=9.0)
    c = core(router=router)
    rescue, driver = on_job(c, north(3.0))
    seconds = router.drive_seconds(driver.point, Point(*UNION_SQ))
    assert rescue.extra["eta_source"] == BY_ROAD
    assert assigned_text_minutes(c, rescue) == eta_for_drive(seconds) == c.tracking.eta_minutes(rescue, driver)
    assert eta_for_drive(seconds) != eta_minutes(driver.point, Point(*UNION_SQ), c.settings.eta_speed_kmh)
    router.down = True
    move(c, driver, north(2.0))
    rescue = c.rescues.get(rescue.id)
    assert rescue.extra["eta_source"] == BY_DISTANCE, "an engine that does not answer falls back to the distance"
    assert c.tracking.eta_minutes(rescue, c.drivers.get(driver.id)) == eta_minutes(
        Point(*north(2.0)), Point(*UNION_SQ), c.settings.eta_speed_kmh)


def test_no_eta_once_the_driver_is_there_or_for_someone_elses_driver(c):
    rescue, driver = on_job(c)
    other = add_driver(c, north(1.0), name="Bo Chen")
    assert c.tracking.eta_minutes(rescue, c.drivers.get(other.id)) is None
    c.dispatcher.job_action(c.drivers.get(driver.id), "arrive")
    assert c.tracking.eta_minutes(c.rescues.get(rescue.id), c.drivers.get(driver.id)) is None


def test_the_first_position_within_150_m_texts_the_rider_once(c):
    rescue, driver = on_job(c)
    move(c, driver, north(0.5))
    assert "rider_driver_arriving" not in texts_to(c, rescue.rider_phone)
    move(c, driver, north(0.14), accuracy=8)
    for _ in range(5):
        move(c, driver, north(0.05), accuracy=5)
    assert texts_to(c, rescue.rider_phone).count("rider_driver_arriving") == 1
    assert c.events.types(rescue.id).count("driver_arriving") == 1
    [arriving] = [m["body"] for m in c.messages.to(rescue.rider_phone) if m["kind"] == "rider_driver_arriving"]
    assert arriving.startswith("Ann is almost there") and "Lee" not in arriving


def test_a_vague_fix_near_the_pickup_is_not_arriving(c):
    rescue, driver = on_job(c)
    move(c, driver, north(0.05), accuracy=900)
    assert "rider_driver_arriving" not in texts_to(c, rescue.rider_phone)
    move(c, driver, north(0.05))  # a texted pin has no accuracy: taken as given
    assert "rider_driver_arriving" in texts_to(c, rescue.rider_phone)


def test_no_arriving_text_after_the_driver_said_arrived(c):
    rescue, driver = on_job(c)
    c.dispatcher.job_action(c.drivers.get(driver.id), "arrive")
    move(c, driver, north(0.02))
    assert "rider_driver_arriving" not in texts_to(c, rescue.rider_phone)


def test_a_position_handed_out_again_finishes_the_arriving_it_claimed_without_a_second_text(c):
    rescue, driver = on_job(c)
    lat, lng = north(0.05)
    event = ev.DriverLocationUpdated(rescue_id=rescue.id, by=f"driver:{driver.id}", lat=lat, lng=lng,
                                     driver_id=driver.id)
    assert c.rescues.claim_arriving(rescue.id, event.id, event.at), "claimed, then the process died"
    c.tracking.check_arriving(dataclasses.replace(event, redelivered=True))
    c.tracking.check_arriving(dataclasses.replace(event, redelivered=True))
    assert c.events.types(rescue.id).count("driver_arriving") == 2
    assert texts_to(c, rescue.rider_phone).count("rider_driver_arriving") == 1
    other = dataclasses.replace(event, id="another-position", redelivered=True)
    c.tracking.check_arriving(other)
    assert c.events.types(rescue.id).count("driver_arriving") == 2, "another position does not re-claim"


def test_the_tracking_view_has_the_first_name_vehicle_position_and_no_phone(c):
    rescue, driver = on_job(c)
    view = c.tracking.rider_view(rescue, driver)
    assert view == {"status": "assigned", "eta_minutes": view["eta_minutes"],
                    "driver": {"name": "Ann", "vehicle": "Ford Transit", "lat": pytest.approx(driver.point.lat),
                               "lng": pytest.approx(driver.point.lng)}}
    assert driver.phone not in repr(view) and rescue.rider_phone not in repr(view)
    c.dispatcher.cancel(rescue.id, "test", by="dispatcher")
    closed = c.tracking.rider_view(c.rescues.get(rescue.id), c.drivers.get(driver.id))
    assert closed == {"status": "cancelled", "eta_minutes": None, "driver": None}


def test_a_searching_rescue_shows_no_driver(c):
    rescue = add_rescue(c)
    assert c.tracking.rider_view(rescue, None) == {"status": "searching", "eta_minutes": None, "driver": None}
