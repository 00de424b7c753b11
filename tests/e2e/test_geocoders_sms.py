"""GEOCODER=mapbox and GEOCODER=google end to end: a rider's signed text through the webhook, the
engine, the rider flow and the Locator to geopy's real MapBox / GoogleV3 client, against local
fakes of those APIs, and the reply as it is queued for Twilio.

Each vendor gets the whole stack in-process over its own database (so that the running test
service's workers, which use Nominatim, never apply these texts) and its own queues; the real
Redis and MongoDB-wire servers underneath."""
from __future__ import annotations

import dataclasses
import uuid

import pymongo
import pytest

from app import create_app
from conversations.engine import Engine
from dispatch.adapters.mongo import ensure_indexes
from dispatch.bootstrap import Services
from tests.conftest import new_number
from tests.conversations.test_webhooks import post_signed, sms_params
from tests.fakes.google_geocoding import FakeGoogleGeocoding
from tests.fakes.mapbox import FakeMapbox

KEY = "test-vendor-key"


@pytest.fixture(scope="module", params=["mapbox", "google"])
def vendor(request, settings, stores):
    fake = (FakeMapbox(KEY) if request.param == "mapbox" else FakeGoogleGeocoding(KEY)).start()
    db = pymongo.MongoClient(stores.mongo_url, tz_aware=True)[f"{stores.db_name}_{request.param}"]
    ensure_indexes(db)
    own = dataclasses.replace(settings, geocoder=request.param, geocoder_url=fake.url, geocoder_api_key=KEY,
                              queue_name=f"q_{request.param}_{uuid.uuid4().hex[:8]}")
    import redis

    services = Services(own, db, redis.Redis.from_url(stores.redis_url))
    yield request.param, fake, services, create_app(services=services).test_client()
    for queue in services.scheduler.queues:
        queue.delete(delete_jobs=True)
    db.client.drop_database(db.name)
    fake.stop()


def text(vendor, number: str, body: str) -> str:
    """Text the service as Twilio would and return its reply."""
    _, _, services, client = vendor
    params = sms_params(number, body)
    assert post_signed(client, services.settings, "/twilio/sms", params).status_code == 200
    record = services.db.messages.find_one({"key": f"in:{params['MessageSid']}"})
    Engine(services).apply_recorded(record["_id"])
    reply = services.db.messages.find_one({"key": f"reply:{params['MessageSid']}"})
    return reply["body"] if reply else ""


def test_a_place_only_the_geocoder_knows(vendor):
    name, fake, _, _ = vendor
    query = f"the bodega next to my gym {uuid.uuid4().hex[:6]}"
    fake.add(query, (40.7465, -74.0014, "Chelsea Bodega, 9th Avenue, New York, NY 10011, USA"))
    rider = new_number()
    text(vendor, rider, "hi")
    reply = text(vendor, rider, query)
    assert reply.startswith("Got it: Chelsea Bodega, 9th Avenue, New York."), reply
    asked = fake.requests[-1]
    assert (asked.get("access_token") if name == "mapbox" else asked.get("key")) == KEY


def test_an_intersection_outside_the_street_grid_goes_to_the_geocoder_as_written(vendor):
    name, fake, _, _ = vendor
    suffix = uuid.uuid4().hex[:6]
    typed = f"Court St & Atlantic Ave {suffix}"
    asked_as = typed.replace("&", "and") if name == "mapbox" else typed  # Mapbox's intersection form
    fake.add(" ".join(asked_as.split()), (40.6902, -73.9925, "Court Street & Atlantic Avenue, Brooklyn"))
    rider = new_number()
    text(vendor, rider, "hi")
    assert text(vendor, rider, typed).startswith("Got it: Court Street & Atlantic Avenue, Brooklyn.")


def test_coordinates_are_named_by_the_geocoder(vendor):
    _, fake, _, _ = vendor
    fake.add_address(40.7309, -73.9973, "Washington Square Arch, New York, NY 10012, USA")
    rider = new_number()
    reply = text(vendor, rider, "flat tire at 40.7309,-73.9973")
    assert reply.startswith("Pickup: Washington Square Arch, New York, NY 10012."), reply


def test_the_city_s_own_crossings_never_reach_the_geocoder(vendor):
    _, fake, _, _ = vendor
    before = len(fake.requests)
    rider = new_number()
    assert text(vendor, rider, "flat at 5th ave and 23rd").startswith("Pickup: 5th Ave & W 23rd St.")
    assert len(fake.requests) == before
