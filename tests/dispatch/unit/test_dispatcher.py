"""Dispatch rules (PRODUCT.md §4 "Driver by SMS", §5) over in-memory fakes."""
from __future__ import annotations

import dataclasses

import pytest

from dispatch import dispatcher as d
from dispatch.model import offer as of
from dispatch.model.clock import now_ms
from dispatch.model.driver import AVAILABLE, OFFERED, OFFLINE, ON_JOB
from dispatch.model.errors import Conflict, NotFound
from dispatch.model.geo import Point
from dispatch.model.rescue import ASSIGNED, CANCELLED, SEARCHING, UNFULFILLED
from tests.dispatch.fakes import core
from tests.dispatch.unit.conftest import add_driver, add_rescue, north, texts_to


def offer_of(c, rescue_id: str) -> of.Offer:
    [offer] = c.offers.for_rescue(rescue_id, of.OPEN)
    return offer


def test_the_nearest_free_driver_is_offered_the_rescue_with_a_timer(c):
    far, near = add_driver(c, north(3.0)), add_driver(c, north(0.5))
    rescue = add_rescue(c)
    assert c.scheduler.asked("dispatch", rescue.id), "a new rescue is dispatched at once"
    assert c.dispatcher.dispatch(rescue.id) == "offers:1"
    offer = offer_of(c, rescue.id)
    assert offer.driver_id == near.id and offer.distance_km == pytest.approx(0.5, abs=0.01)
    assert c.drivers.get(near.id).status == OFFERED and c.drivers.get(far.id).status == AVAILABLE
    assert near.id not in c.geo.points, "a driver holding an offer is out of the index"
    assert c.scheduler.asked("expire_offer", offer.id)[0][2] == c.settings.offer_timeout_seconds
    assert texts_to(c, near.phone) == ["driver_offer"]


def test_offline_stale_and_inactive_drivers_are_not_offered(c):
    add_driver(c, north(0.2), online=False)
    stale = add_driver(c, north(0.4))
    c.drivers.rows[stale.id] = dataclasses.replace(c.drivers.rows[stale.id], location_updated_at=now_ms() - 3_600_000)
    inactive = add_driver(c, north(0.6))
    c.drivers.update_profile(inactive.id, {"active": False})
    rescue = add_rescue(c)
    assert c.dispatcher.dispatch(rescue.id) == "offers:0"
    assert c.scheduler.asked("dispatch", rescue.id)[-1][2] == c.settings.search_retry_seconds, "it looks again later"


def test_accepting_assigns_and_the_others_offers_are_withdrawn():
    c = core(dataclasses.replace(core().settings, offer_fanout=2))
    a, b = add_driver(c, north(0.3)), add_driver(c, north(0.6))
    rescue = add_rescue(c)
    assert c.dispatcher.dispatch(rescue.id) == "offers:2"
    result = c.dispatcher.accept(c.drivers.get(b.id))
    assert isinstance(result, d.Accepted) and result.rescue.driver_id == b.id and result.rescue.status == ASSIGNED
    assert c.drivers.get(b.id).status == ON_JOB and c.drivers.get(a.id).status == AVAILABLE
    assert {o.driver_id: o.status for o in c.offers.for_rescue(rescue.id)} == {a.id: of.TAKEN, b.id: of.ACCEPTED}
    assert texts_to(c, a.phone) == ["driver_offer", "offer_taken"]
    assert texts_to(c, rescue.rider_phone) == ["rider_driver_assigned"]
    assert "job_details" not in texts_to(c, b.phone), "the accepting driver gets the details as the reply"
    late = c.dispatcher.accept(c.drivers.get(a.id))
    assert late == d.OfferTaken(rescue.code), "an offer that went to another driver says so"


def test_a_decline_moves_on_to_the_next_driver_and_never_asks_again(c):
    first, second = add_driver(c, north(0.3)), add_driver(c, north(0.9))
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    asked = len(c.scheduler.asked("dispatch", rescue.id))
    assert c.dispatcher.decline(c.drivers.get(first.id)) == d.Declined(rescue.code)
    assert len(c.scheduler.asked("dispatch", rescue.id)) == asked + 1, "moves on at once"
    c.dispatcher.dispatch(rescue.id)
    assert offer_of(c, rescue.id).driver_id == second.id
    assert c.dispatcher.decline(c.drivers.get(first.id)) == d.NoOpenOffer()


def test_the_timer_never_expires_early_and_a_late_accept_is_told_too_late(c):
    driver = add_driver(c)
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    offer = offer_of(c, rescue.id)
    assert c.dispatcher.expire(offer.id) == "early"
    assert c.offers.get(offer.id).status == of.OPEN
    c.offers.move(offer.id, None, expires_at=now_ms() - 1)
    assert c.dispatcher.expire(offer.id) == "expired"
    assert c.drivers.get(driver.id).status == AVAILABLE
    assert c.dispatcher.accept(c.drivers.get(driver.id)) == d.OfferTooLate(rescue.code)
    assert c.dispatcher.expire(offer.id) == "not-open", "a stale timer changes nothing"


def test_an_accept_racing_the_timer_expires_the_offer_itself(c):
    driver = add_driver(c)
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    offer = offer_of(c, rescue.id)
    c.offers.move(offer.id, None, expires_at=now_ms() - 1)
    assert c.dispatcher.accept(c.drivers.get(driver.id)) == d.OfferTooLate(rescue.code)
    assert c.offers.get(offer.id).status == of.EXPIRED and c.rescues.get(rescue.id).status == SEARCHING


def test_a_search_past_its_window_is_unfulfilled_and_the_rider_told(c):
    rescue = add_rescue(c)
    c.rescues.set_fields(rescue.id, {"searching_since": now_ms() - c.settings.search_window_seconds * 1000 - 1})
    assert c.dispatcher.dispatch(rescue.id) == "unfulfilled"
    assert c.rescues.get(rescue.id).status == UNFULFILLED
    assert "rider_unfulfilled" in texts_to(c, rescue.rider_phone)


def test_job_steps_by_the_assigned_driver_only_and_done_frees_them(c):
    driver, other = add_driver(c), add_driver(c, north(5))
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    c.dispatcher.accept(c.drivers.get(driver.id))
    impostor = dataclasses.replace(c.drivers.get(other.id), rescue_id=rescue.id)
    assert isinstance(c.dispatcher.job_action(impostor, "arrive"), d.JobRefused)
    assert c.dispatcher.job_action(c.drivers.get(driver.id), "complete").__class__ is d.JobRefused, "not arrived yet"
    arrived = c.dispatcher.job_action(c.drivers.get(driver.id), "arrive")
    assert isinstance(arrived, d.JobProgress) and not arrived.repeat
    assert c.dispatcher.job_action(c.drivers.get(driver.id), "arrive").repeat, "repeating is a no-op"
    assert isinstance(c.dispatcher.job_action(c.drivers.get(driver.id), "complete"), d.JobProgress)
    assert c.drivers.get(driver.id).status == AVAILABLE and driver.id in c.geo.points
    assert c.scheduler.asked("payment_link", rescue.id), "completion starts the payment link"
    assert texts_to(c, rescue.rider_phone) == ["rider_driver_assigned", "rider_driver_arrived", "rider_completed"]


def test_a_dropped_job_searches_again_without_the_driver_who_dropped_it(c):
    driver, other = add_driver(c), add_driver(c, north(1))
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    c.dispatcher.accept(c.drivers.get(driver.id))
    assert isinstance(c.dispatcher.drop(c.drivers.get(driver.id)), d.Dropped)
    assert c.rescues.get(rescue.id).status == SEARCHING and c.drivers.get(driver.id).status == AVAILABLE
    c.dispatcher.dispatch(rescue.id)
    assert offer_of(c, rescue.id).driver_id == other.id


def test_a_dispatcher_assigns_then_reassigns_and_both_drivers_are_told(c):
    holder, first, second = add_driver(c), add_driver(c, north(1)), add_driver(c, north(2))
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    assert offer_of(c, rescue.id).driver_id == holder.id
    assert c.dispatcher.assign(rescue.id, first.id).driver_id == first.id
    assert c.drivers.get(holder.id).status == AVAILABLE, "the offer holder is released"
    moved = c.dispatcher.assign(rescue.id, second.id)
    assert moved.driver_id == second.id and moved.status == ASSIGNED
    assert c.drivers.get(first.id).status == AVAILABLE and c.drivers.get(second.id).status == ON_JOB
    assert texts_to(c, first.phone) == ["job_details", "driver_taken_off"]
    assert texts_to(c, second.phone) == ["job_details"]
    assert texts_to(c, rescue.rider_phone) == ["rider_driver_assigned", "rider_driver_assigned"]


def test_assign_refusals_say_why(c):
    busy = add_driver(c)
    taken = add_rescue(c)
    c.dispatcher.dispatch(taken.id)
    c.dispatcher.accept(c.drivers.get(busy.id))
    rescue = add_rescue(c)
    with pytest.raises(NotFound):
        c.dispatcher.assign(rescue.id, "nobody")
    with pytest.raises(NotFound):
        c.dispatcher.assign("no-rescue", busy.id)
    with pytest.raises(Conflict, match="another job"):
        c.dispatcher.assign(rescue.id, busy.id)
    c.dispatcher.cancel(rescue.id, "test", by="dispatcher")
    with pytest.raises(Conflict, match="cancelled"):
        c.dispatcher.assign(rescue.id, add_driver(c, north(4)).id)


def test_cancelling_frees_the_driver_and_tells_both_parties(c):
    driver = add_driver(c)
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    c.dispatcher.accept(c.drivers.get(driver.id))
    assert c.dispatcher.cancel(rescue.id, "rider called", by="dispatcher").status == CANCELLED
    assert c.drivers.get(driver.id).status == AVAILABLE
    assert texts_to(c, driver.phone)[-1] == "driver_job_cancelled"
    assert texts_to(c, rescue.rider_phone)[-1] == "rider_cancelled_by_dispatch"
    assert c.dispatcher.cancel(rescue.id, "again", by="dispatcher").status == CANCELLED, "repeating is a no-op"
    assert texts_to(c, rescue.rider_phone).count("rider_cancelled_by_dispatch") == 1


def test_a_rider_who_cancels_is_not_texted_by_the_notifier(c):
    rescue = add_rescue(c)
    c.dispatcher.cancel(rescue.id, "cancelled by rider", by="rider")
    assert texts_to(c, rescue.rider_phone) == []


def test_presence_going_offline_with_an_offer_passes_it_and_on_a_job_is_refused(c):
    driver = add_driver(c)
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    assert c.dispatcher.go_online(c.drivers.get(driver.id)) == d.DriverBusy(c.drivers.get(driver.id))
    assert c.dispatcher.go_offline(c.drivers.get(driver.id)) == d.Offline()
    assert c.drivers.get(driver.id).status == OFFLINE
    assert c.offers.for_rescue(rescue.id)[0].status == of.DECLINED
    other = add_driver(c, north(1))
    c.dispatcher.dispatch(rescue.id)
    c.dispatcher.accept(c.drivers.get(other.id))
    assert c.dispatcher.go_offline(c.drivers.get(other.id)) == d.OfflineRefused()


def test_a_driver_without_a_fresh_location_is_asked_for_one(c):
    driver = add_driver(c, online=False)
    c.drivers.rows[driver.id] = dataclasses.replace(c.drivers.rows[driver.id], location=None)
    result = c.dispatcher.go_online(c.drivers.get(driver.id))
    assert isinstance(result, d.Online) and result.needs_location


def test_a_position_on_a_job_is_on_the_timeline(c):
    driver = add_driver(c)
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    c.dispatcher.accept(c.drivers.get(driver.id))
    located = c.dispatcher.update_location(c.drivers.get(driver.id), Point(*north(0.1), "5th Ave & 14th"))
    assert located == d.Located(c.drivers.get(driver.id), "5th Ave & 14th")
    assert "driver_location_updated" in c.events.types(rescue.id)
    assert driver.id not in c.geo.points, "a driver on a job is not a candidate"


def test_a_freed_driver_gives_the_longest_waiting_rescue_another_look_now(c):
    driver = add_driver(c)
    held, waiting = add_rescue(c), add_rescue(c, north(0.2))
    c.dispatcher.dispatch(held.id)
    assert c.dispatcher.dispatch(waiting.id) == "offers:0"
    before = len(c.scheduler.asked("dispatch", waiting.id))
    c.dispatcher.decline(c.drivers.get(driver.id))
    assert len(c.scheduler.asked("dispatch", waiting.id)) == before + 1


def test_the_rider_hears_we_are_still_searching_every_few_minutes(c):
    rescue = add_rescue(c)
    c.rescues.set_fields(rescue.id, {"created_at": now_ms() - c.settings.rider_update_seconds * 1000 - 1})
    c.dispatcher.dispatch(rescue.id)
    c.dispatcher.dispatch(rescue.id)
    assert texts_to(c, rescue.rider_phone) == ["rider_still_searching"], "once per period, however often it looks"


def test_a_dispatcher_can_assign_an_unfulfilled_rescue_which_reopens_it(c):
    rescue = add_rescue(c)
    c.rescues.set_fields(rescue.id, {"searching_since": now_ms() - c.settings.search_window_seconds * 1000 - 1})
    assert c.dispatcher.dispatch(rescue.id) == "unfulfilled"
    driver = add_driver(c, north(0.5))
    assigned = c.dispatcher.assign(rescue.id, driver.id, by="dispatcher:sam")
    assert assigned.status == ASSIGNED and assigned.driver_id == driver.id
    assert c.drivers.get(driver.id).status == ON_JOB
    assert "rider_driver_assigned" in texts_to(c, rescue.rider_phone)
    assert "job_details" in texts_to(c, driver.phone)
    assert [e["by"] for e in c.events.timeline(rescue.id) if e["type"] == "driver_assigned"] == ["dispatcher:sam"]


def test_three_offers_in_a_row_left_to_run_out_take_the_driver_offline_and_say_so(c):
    driver = add_driver(c)
    for n in range(of.MISSED_IN_A_ROW_OFFLINE):
        rescue = add_rescue(c)
        assert c.dispatcher.dispatch(rescue.id) == "offers:1"
        offer = offer_of(c, rescue.id)
        c.offers.move(offer.id, None, expires_at=now_ms() - 1)
        assert c.dispatcher.expire(offer.id) == "expired"
        expected = OFFLINE if n == of.MISSED_IN_A_ROW_OFFLINE - 1 else AVAILABLE
        assert c.drivers.get(driver.id).status == expected
    kinds = texts_to(c, driver.phone)
    assert kinds.count("driver_offer_expired") == of.MISSED_IN_A_ROW_OFFLINE - 1
    assert kinds[-1] == "driver_offline_missed"
    assert driver.id not in c.geo.points
    assert c.dispatcher.dispatch(add_rescue(c).id) == "offers:0", "an offline driver is not asked again"
    back = c.dispatcher.go_online(c.drivers.get(driver.id))
    assert isinstance(back, d.Online) and c.drivers.get(driver.id).status == AVAILABLE


def test_an_answer_between_misses_resets_the_count(c):
    driver = add_driver(c)
    for answer in ("expire", "decline", "expire", "expire"):
        rescue = add_rescue(c)
        c.dispatcher.dispatch(rescue.id)
        offer = offer_of(c, rescue.id)
        if answer == "decline":
            c.dispatcher.decline(c.drivers.get(driver.id))
        else:
            c.offers.move(offer.id, None, expires_at=now_ms() - 1)
            c.dispatcher.expire(offer.id)
    assert c.drivers.get(driver.id).status == AVAILABLE


def test_yes_with_another_code_is_answered_about_the_offer_the_driver_holds(c):
    driver = add_driver(c)
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    other = int(rescue.code[1:]) - 1
    result = c.dispatcher.accept(c.drivers.get(driver.id), str(other))
    assert result == d.OtherOfferOpen(asked=f"R{other}", open=rescue.code)
    assert c.rescues.get(rescue.id).status == SEARCHING and c.drivers.get(driver.id).status == OFFERED
