"""dispatch.model.geo: coordinate parsing, distances, the service area and its bounding box."""
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
    parse_coordinates,
)

TIMES_SQ = Point(40.7580, -73.9855, "Times Square")
UNION_SQ = Point(40.7359, -73.9911, "Union Square")
AREA = ServiceArea(40.7580, -73.9855, 15.0)


def _pair(point: Point | None) -> tuple[float, float] | None:
    return None if point is None else (point.lat, point.lng)


# -- parse_coordinates: formats that are locations ---------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("40.7580,-73.9855", (40.7580, -73.9855)),
    ("40.7580, -73.9855", (40.7580, -73.9855)),
    ("40.7580 , -73.9855", (40.7580, -73.9855)),
    ("40.7580;-73.9855", (40.7580, -73.9855)),
    ("+40.7580,-73.9855", (40.7580, -73.9855)),
    ("I'm stuck at 40.7359,-73.9911 with a flat", (40.7359, -73.9911)),
    ("(40.7359,-73.9911)", (40.7359, -73.9911)),
    ("-33.8688,151.2093", (-33.8688, 151.2093)),
])
def test_bare_decimal_pairs(text, expected):
    assert _pair(parse_coordinates(text)) == expected


@pytest.mark.parametrize("text, expected", [
    # Google Maps: @lat,lng in the path
    ("https://www.google.com/maps/@40.7580,-73.9855,17z", (40.7580, -73.9855)),
    ("https://www.google.com/maps/place/Times+Square/@40.7579747,-73.9855426,17z/data=!3m1",
     (40.7579747, -73.9855426)),
    # Google Maps: ?q= / &query= parameters, comma possibly URL-encoded
    ("https://maps.google.com/?q=40.7359,-73.9911", (40.7359, -73.9911)),
    ("https://maps.google.com/maps?hl=en&q=40.7359%2C-73.9911", (40.7359, -73.9911)),
    ("https://maps.google.com/?q=loc:40.7359,-73.9911", (40.7359, -73.9911)),
    ("https://www.google.com/maps/search/?api=1&query=40.7359,-73.9911", (40.7359, -73.9911)),
    # Apple Maps: ll= and q=
    ("https://maps.apple.com/?ll=40.7359,-73.9911&q=Dropped%20Pin", (40.7359, -73.9911)),
    ("https://maps.apple.com/?q=40.7359,-73.9911", (40.7359, -73.9911)),
    ("Here: http://maps.apple.com/?address=Somewhere&ll=40.7308,-73.9973", (40.7308, -73.9973)),
    # geo: URIs, with or without decimals and parameters
    ("geo:40.7359,-73.9911", (40.7359, -73.9911)),
    ("geo:40.7359,-73.9911;u=20", (40.7359, -73.9911)),
    ("GEO:40,-73", (40.0, -73.0)),
])
def test_map_links_and_geo_uris(text, expected):
    assert _pair(parse_coordinates(text)) == expected


def test_link_parameter_wins_over_a_bare_pair_elsewhere_in_the_text():
    text = "near 40.7000,-74.0000 https://maps.apple.com/?ll=40.7359,-73.9911"
    assert _pair(parse_coordinates(text)) == (40.7359, -73.9911)


def test_parsed_point_has_a_coordinate_label():
    point = parse_coordinates("40.7580,-73.9855")
    assert point == Point(40.7580, -73.9855, "40.75800,-73.98550")


def test_an_invalid_pair_is_skipped_for_a_valid_one_later():
    assert _pair(parse_coordinates("95.5,10.5 then 40.7580,-73.9855")) == (40.7580, -73.9855)


# -- parse_coordinates: things that are not locations ------------------------------------

@pytest.mark.parametrize("text", [
    "",
    None,
    "help",
    "flat tire at union square",
    "2, 3",                       # integers in a sentence are not a place in the ocean
    "I have 2, 3 bags",
    "40,-73",                     # bare pair needs decimals
    "0.0,0.0",                    # null island
    "geo:0,0",
    "https://maps.google.com/?q=0,0",
    "95.5,10.5",                  # latitude out of range
    "-90.5,10.5",
    "40.5,190.5",                 # longitude out of range
    "geo:91,0",
    "https://www.google.com/maps/@40.7,-181.5,17z",
    "https://maps.google.com/?q=Times+Square",
    "lat 40.7580 lng -73.9855",   # no separator between the numbers
])
def test_not_coordinates(text):
    assert parse_coordinates(text) is None


def test_boundary_ranges_are_accepted():
    assert _pair(parse_coordinates("90.0,180.0")) == (90.0, 180.0)
    assert _pair(parse_coordinates("-90.0,-180.0")) == (-90.0, -180.0)


def test_pair_at_the_end_of_a_sentence_is_taken():
    # PRODUCT.md §4 step 2 accepts `lat,lng`; riders end sentences with a full stop.
    point = parse_coordinates("I'm at 40.7580,-73.9855.")
    assert _pair(point) == (40.7580, -73.9855), (
        "APP BUG dispatch/geo.py:43 (_BARE_PAIR): the negative lookahead (?![\\d.]) rejects a "
        "coordinate pair followed by a sentence-ending '.', so \"I'm at 40.7580,-73.9855.\" "
        "is not recognised as a location")


def test_dotted_numbers_do_not_crash_the_parser():
    # A date or version number followed by a decimal must not be taken for (or crash) a pair.
    for text in ("broke down 12.03.2024, 10.30 near times sq", "firmware 1.2.3,4.5"):
        try:
            result = parse_coordinates(text)
        except ValueError as exc:
            pytest.fail(
                "APP BUG dispatch/geo.py:58: _BARE_PAIR's group ({_NUM}\\.\\d+) can capture "
                f"'12.03.2024' and float() raises ValueError ({exc}) for input {text!r}; "
                "this propagates out of flows.rider.step (spot_in_message) and the SMS webhook")
        assert result is None


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
