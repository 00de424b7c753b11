"""Live links (PRODUCT.md §9) over in-memory fakes: tokens, and what a link may still do."""
from __future__ import annotations

import base64
import dataclasses
import re

from dispatch.links import Links
from dispatch.model.link import DRIVER, RIDER, TOKEN_BYTES, token_hash, well_formed
from tests.dispatch.fakes import core
from tests.dispatch.unit.conftest import add_driver, add_rescue, north


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def assigned(c, at=north(1.0)):
    driver = add_driver(c, at)
    rescue = add_rescue(c)
    c.dispatcher.dispatch(rescue.id)
    c.dispatcher.accept(c.drivers.get(driver.id))
    return c.rescues.get(rescue.id), c.drivers.get(driver.id)


def test_a_token_is_128_random_bits_and_the_store_keeps_only_its_hash(c):
    rescue, driver = assigned(c)
    url = c.links.track_url(rescue)
    assert re.fullmatch(rf"{re.escape(c.settings.public_base_url)}/t/[A-Za-z0-9_-]{{22}}", url)
    token = token_of(url)
    assert len(base64.urlsafe_b64decode(token + "==")) == TOKEN_BYTES == 16
    [link] = [link for link in c.links.store.rows.values() if link.party == RIDER]
    assert link.token_hash == token_hash(token)
    assert token not in repr(c.links.store.rows), "the token itself is kept nowhere"


def test_one_link_per_rescue_and_party_the_same_in_every_text(c):
    rescue, driver = assigned(c)
    track, job = c.links.track_url(rescue), c.links.job_url(rescue, driver.id)
    assert c.links.track_url(rescue) == track and c.links.job_url(rescue, driver.id) == job
    assert token_of(track) != token_of(job) and "/d/" in job
    other_rescue, _ = assigned(c, north(3.0))
    assert c.links.track_url(other_rescue) != track
    assert len(c.links.store.rows) == 4, "two rescues, a rider's and a driver's link each"


def test_a_token_opens_only_its_own_party_and_nothing_malformed_or_unknown(c):
    rescue, driver = assigned(c)
    track, job = token_of(c.links.track_url(rescue)), token_of(c.links.job_url(rescue, driver.id))
    assert c.links.open(track, RIDER).rescue.id == rescue.id
    assert c.links.open(job, DRIVER).driver.id == driver.id
    assert c.links.open(track, DRIVER) is None and c.links.open(job, RIDER) is None
    flipped = ("B" if track[0] == "A" else "A") + track[1:]
    for bad in (flipped, track[:-1], track + "A", "", "../" + track[3:], track.upper() + "!"):
        assert c.links.open(bad, RIDER) is None, bad
    assert not well_formed("x" * 22 + "\n")


def test_a_job_link_acts_only_while_its_driver_holds_the_open_rescue(c):
    rescue, driver = assigned(c)
    job = token_of(c.links.job_url(rescue, driver.id))
    track = token_of(c.links.track_url(rescue))
    assert c.links.open(job, DRIVER).live and c.links.open(track, RIDER).live
    other = add_driver(c, north(2.0))
    c.dispatcher.assign(rescue.id, other.id)
    assert not c.links.open(job, DRIVER).live, "reassigned: the first driver's link is dead"
    new_job = token_of(c.links.job_url(c.rescues.get(rescue.id), other.id))
    assert new_job != job and c.links.open(new_job, DRIVER).live
    assert c.links.open(track, RIDER).live, "the rider's link follows the rescue to its new driver"
    c.dispatcher.job_action(c.drivers.get(other.id), "arrive")
    c.dispatcher.job_action(c.drivers.get(other.id), "complete")
    assert not c.links.open(new_job, DRIVER).live and not c.links.open(track, RIDER).live


def test_a_dropped_job_kills_the_drivers_link(c):
    rescue, driver = assigned(c)
    job = token_of(c.links.job_url(rescue, driver.id))
    c.dispatcher.drop(c.drivers.get(driver.id))
    assert not c.links.open(job, DRIVER).live


def test_a_job_link_is_dead_when_its_driver_moved_on_to_another_job(c):
    """Stale link, new job: the old link must not act on the driver's current rescue."""
    rescue, driver = assigned(c)
    job = token_of(c.links.job_url(rescue, driver.id))
    c.dispatcher.job_action(c.drivers.get(driver.id), "arrive")
    c.dispatcher.job_action(c.drivers.get(driver.id), "complete")
    later = add_rescue(c)
    c.dispatcher.dispatch(later.id)
    c.dispatcher.accept(c.drivers.get(driver.id))
    assert c.drivers.get(driver.id).rescue_id == later.id
    assert not c.links.open(job, DRIVER).live


def test_after_a_new_secret_the_next_text_carries_a_new_working_token():
    """The old token cannot be rebuilt under the new secret, so the link gets a new one."""
    c = core()
    rescue, _ = assigned(c)
    old = token_of(c.links.track_url(rescue))
    rotated = Links(dataclasses.replace(c.settings, secret_key="a new secret"), c.links.store, c.rescues, c.drivers)
    assert rotated.open(old, RIDER).rescue.id == rescue.id, "links in riders' hands keep working meanwhile"
    new = token_of(rotated.track_url(rescue))
    assert new != old and rotated.open(new, RIDER).rescue.id == rescue.id
    assert rotated.open(old, RIDER) is None, "one link per rescue and party: the old token is retired"
    assert rotated.track_url(rescue).endswith(new), "stable again under the new secret"
