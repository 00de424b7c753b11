"""Who hears what (dispatch/notifications.py) over in-memory fakes: one text per event and
recipient however often a handler runs, and nothing misleading after the fact."""
from __future__ import annotations

from dispatch.model import events as ev
from dispatch.model import offer as of
from tests.dispatch.unit.conftest import add_driver, add_rescue, texts_to


def test_a_handler_run_again_texts_nobody_twice(c):
    driver = add_driver(c)
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    [offer] = c.offers.for_rescue(rescue.id)
    event = ev.OfferMade(rescue_id=rescue.id, by="dispatcher", offer_id=offer.id, driver_id=driver.id,
                         distance_km=0.0)
    c.notifier.offer_made(event)
    c.notifier.offer_made(event)
    # The dispatch's own offer_made texted once; this event once more, however often it runs.
    assert texts_to(c, driver.phone) == ["driver_offer", "driver_offer"]


def test_an_offer_text_redelivered_after_the_offer_closed_is_not_sent(c):
    driver = add_driver(c)
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    [offer] = c.offers.for_rescue(rescue.id)
    c.offers.move(offer.id, None, status=of.EXPIRED)
    late = ev.OfferMade(rescue_id=rescue.id, by="dispatcher", offer_id=offer.id, driver_id=driver.id,
                        distance_km=0.0, redelivered=True)
    c.notifier.offer_made(late)
    assert texts_to(c, driver.phone) == ["driver_offer"], "only the original offer text"


def test_the_sweeper_redelivers_an_event_whose_handler_failed(c):
    rescue = add_rescue(c)
    calls = []

    def flaky(event):
        calls.append(event.redelivered)
        if len(calls) == 1:
            raise RuntimeError("a store hiccup")

    c.bus.handlers = {**c.bus.handlers, ev.StillSearching: [flaky]}
    c.bus.publish(ev.StillSearching(rescue_id=rescue.id, by="test", minutes=3, at=0))
    assert c.bus.redeliver(older_than_ms=10) == 1
    assert calls == [False, True]
    assert c.bus.redeliver(older_than_ms=10) == 0


def test_an_assignment_by_a_dispatcher_sends_the_driver_the_job(c):
    driver = add_driver(c)
    rescue = add_rescue(c)
    c.dispatcher.assign(rescue.id, driver.id)
    assert texts_to(c, driver.phone) == ["job_details"]
    [assigned] = [m for m in c.messages.to(rescue.rider_phone)]
    assert driver.name.split()[0] in assigned["body"] and rescue.code in assigned["body"]


def test_everyone_is_texted_in_their_own_language(c):
    import dataclasses

    from dispatch.texts import say

    driver = add_driver(c)
    c.drivers.rows[driver.id] = dataclasses.replace(c.drivers.rows[driver.id], language="es")
    rescue = add_rescue(c)
    c.rescues.set_fields(rescue.id, {"language": "es"})
    c.dispatcher.dispatch(rescue.id)
    c.dispatcher.accept(c.drivers.get(driver.id))
    [assigned] = c.messages.to(rescue.rider_phone)
    rescue, track_url = c.rescues.get(rescue.id), c.links.track_url(rescue)
    expected = say("rider_driver_assigned", lang="es", rescue=rescue, driver=c.drivers.get(driver.id),
                   eta=c.tracking.eta_minutes(rescue, c.drivers.get(driver.id)), track_url=track_url)
    assert assigned["body"] == expected and assigned["body"] != say(
        "rider_driver_assigned", rescue=rescue, driver=c.drivers.get(driver.id), eta=3, track_url=track_url)
    [offer] = c.messages.to(driver.phone)
    assert offer["body"].startswith(say("driver_offer", lang="es", rescue=c.rescues.get(rescue.id),
                                        distance_km=0.0, seconds=c.settings.offer_timeout_seconds)[:20])


def test_an_events_handlers_read_its_rescue_and_driver_once_and_see_what_they_wrote(c, monkeypatch):
    driver = add_driver(c)
    rescue = add_rescue(c)
    c.dispatcher.assign(rescue.id, driver.id)
    reads: list[str] = []
    for repo, kind in ((c.rescues, "rescue"), (c.drivers, "driver")):
        monkeypatch.setattr(repo, "get",
                            lambda entity_id, real=repo.get, kind=kind: reads.append(kind) or real(entity_id))
    seen: list[object] = []
    handlers = c.bus.handlers[ev.DriverAssigned]
    c.bus.handlers = {**c.bus.handlers, ev.DriverAssigned: [
        *handlers, lambda e: seen.append(c.handling_rescues.get(e.rescue_id).extra.get("eta_due_at"))]}
    c.bus.publish(ev.DriverAssigned(rescue_id=rescue.id, by="test", status="assigned", driver_id=driver.id))
    assert reads == ["rescue", "driver"], "the ETA, the texts and the metric share one read of each"
    assert seen == [c.rescues.get(rescue.id).extra["eta_due_at"]], "the ETA the first handler stored"
    reads.clear()
    assert c.handling_rescues.get(rescue.id) is not None and reads == ["rescue"], "outside a handling: a read"
