"""dispatch.model.geo: points, distances, the service area and its bounding box."""
from __future__ import annotations

import pytest
from geopy.distance import great_circle

from dispatch.config import ServiceArea
from dispatch.model.geo import (
    KM_PER_MILE,
    Point,
    bounding_box,
    distance_km,
    distance_miles,
    in_service_area,
)

TIMES_SQ = Point(40.7580, -73.9855, "Times Square")
UNION_SQ = Point(40.7359, -73.9911, "Union Square")
AREA = ServiceArea(40.7580, -73.9855, 15.0)


# -- Point JSON ----------------------------------------------------------------------------

def test_point_json_round_trip():
    p = Point(40.12345678, -73.98765432, "Somewhere")
    assert p.to_json() == {"lat": 40.123457, "lng": -73.987654, "label": "Somewhere"}
    assert Point.from_json(p.to_json()) == Point(40.123457, -73.987654, "Somewhere")
    assert Point.from_json(None) is None
    assert Point.from_json({}) is None
    assert Point.from_json({"lat": "40.5", "lng": "-73.5"}) == Point(40.5, -73.5, "")


# -- distances -------------------------------------------------------------------------------

def test_distance_km_times_square_to_union_square():
    # About 2.5 km down Broadway; symmetric; zero to itself.
    assert distance_km(TIMES_SQ, UNION_SQ) == pytest.approx(2.50, abs=0.02)
    assert distance_km(UNION_SQ, TIMES_SQ) == pytest.approx(distance_km(TIMES_SQ, UNION_SQ))
    assert distance_km(TIMES_SQ, TIMES_SQ) == 0.0


def test_distance_miles_is_km_over_statute_mile():
    km = distance_km(TIMES_SQ, UNION_SQ)
    assert KM_PER_MILE == 1.609344
    assert distance_miles(TIMES_SQ, UNION_SQ) == pytest.approx(km / 1.609344)
    assert distance_miles(TIMES_SQ, UNION_SQ) == pytest.approx(1.555, abs=0.02)


def test_one_degree_of_latitude_is_about_111_km():
    assert distance_km(Point(40.0, -74.0), Point(41.0, -74.0)) == pytest.approx(111.2, abs=0.2)


# -- service area ----------------------------------------------------------------------------

def _offset(point: Point, km: float, bearing: float) -> Point:
    dest = great_circle(kilometers=km).destination((point.lat, point.lng), bearing)
    return Point(dest.latitude, dest.longitude)


def test_in_service_area():
    centre = Point(AREA.lat, AREA.lng)
    assert in_service_area(centre, AREA)
    assert in_service_area(UNION_SQ, AREA)
    assert in_service_area(Point(40.8677, -73.9212), AREA)        # Inwood Hill Park, ~13 km
    assert not in_service_area(Point(40.5749, -73.9859), AREA)    # Coney Island, ~20 km
    assert not in_service_area(Point(40.6413, -73.7781), AREA)    # JFK
    for bearing in (0, 90, 180, 270):
        assert in_service_area(_offset(centre, 14.9, bearing), AREA)
        assert not in_service_area(_offset(centre, 15.1, bearing), AREA)


@pytest.mark.parametrize("area", [AREA, ServiceArea(59.33, 18.07, 25.0), ServiceArea(-33.87, 151.21, 5.0)])
def test_bounding_box_contains_the_whole_circle(area):
    sw, ne = bounding_box(area)
    assert sw.lat < area.lat < ne.lat
    assert sw.lng < area.lng < ne.lng
    centre = Point(area.lat, area.lng)
    for bearing in range(0, 360, 15):
        edge = _offset(centre, area.radius_km, bearing)
        assert sw.lat <= edge.lat <= ne.lat, bearing
        assert sw.lng <= edge.lng <= ne.lng, bearing


def test_bounding_box_is_tight():
    # A square around the circle, not a continent: each half-side within 2% of the radius.
    sw, ne = bounding_box(AREA)
    half_height = distance_km(Point(AREA.lat, AREA.lng), Point(ne.lat, AREA.lng))
    half_width = distance_km(Point(AREA.lat, AREA.lng), Point(AREA.lat, ne.lng))
    assert half_height == pytest.approx(AREA.radius_km, rel=0.02)
    assert half_width == pytest.approx(AREA.radius_km, rel=0.02)
