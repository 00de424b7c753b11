"""dispatch.places: the built-in gazetteer and the Locator's order (what a text carries, the
city's landmarks and streets, the geocoder), over in-memory stand-ins of the geocoder and link
ports. The adapters behind those ports are tested in tests/dispatch/adapters/."""
from __future__ import annotations

import pytest

from dispatch.model.geo import Point
from dispatch.model.street_grid import StreetGrid
from dispatch.places import MAX_CHOICES, Gazetteer, GeocoderUnavailable, Locator, MapLinkUnreadable, normalise_place
from tests.dispatch.fakes import FakeGeocoder, FakeMapLinks

NEAR = (40.7580, -73.9855)


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer.builtin()


def labels(points: list[Point]) -> list[str]:
    return [p.label for p in points]


# -- normalise_place -------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Union Square", "union sq"),
    ("  BROADWAY and 42nd!! ", "broadway & 42nd"),
    ("Broadway&42nd", "broadway & 42nd"),
    ("5th Avenue at 23rd Street", "5th ave & 23rd st"),
    ("Fifth Av", "5th ave"),
    ("", ""),
    (None, ""),
])
def test_normalise_place(text, expected):
    assert normalise_place(text) == expected


# -- Gazetteer.search ---------------------------------------------------------------------------

@pytest.mark.parametrize("query, expected", [
    ("Times Square", "Times Square"),
    ("times square", "Times Square"),
    ("UNION SQUARE!", "Union Square"),
    ("union sq", "Union Square"),                       # alias
    ("Union Sq.", "Union Square"),
    ("broadway and 42nd", "Times Square"),              # "and" -> "&"
    ("Broadway & 42nd", "Times Square"),
    ("42nd and broadway", "Times Square"),              # words in any order
    ("grand central", "Grand Central Terminal"),
    ("Madison Square Garden", "Penn Station"),          # alias of another place
    ("wall street", "Wall Street & Broadway"),          # street -> st
    ("the vessel", "Hudson Yards"),
    ("jfk", "JFK Airport"),
])
def test_search_single_match(gazetteer, query, expected):
    found = gazetteer.search(query)
    assert labels(found) == [expected]
    assert isinstance(found[0], Point)


def test_search_returns_points_with_coordinates(gazetteer):
    (point,) = gazetteer.search("union sq")
    assert (point.lat, point.lng) == (40.7359, -73.9911)


def test_search_several_matches_in_gazetteer_order(gazetteer):
    assert labels(gazetteer.search("42nd")) == ["Times Square", "Bryant Park", "Grand Central Terminal"]
    assert labels(gazetteer.search("central park")) == [
        "Central Park South", "Central Park Bethesda Terrace", "Central Park North"]


def test_search_caps_matches_at_five(gazetteer):
    found = gazetteer.search("park")
    assert MAX_CHOICES == 5
    assert len(found) == 5
    assert labels(found) == ["Washington Square Park", "Madison Square Park", "Bryant Park",
                             "Grand Central Terminal", "Central Park South"]


def test_exact_name_beats_word_match(gazetteer):
    # "madison sq" is exactly an alias of Madison Square Park; as words it would also match
    # Penn Station's alias "madison square garden".
    assert labels(gazetteer.search("madison square")) == ["Madison Square Park"]
    assert labels(gazetteer.search("madison")) == ["Madison Square Park", "Penn Station"]


@pytest.mark.parametrize("query", ["", "   ", "the", "near the", "nowhere land", "5th avenue & 99th",
                                   "!!!"])
def test_search_no_match(gazetteer, query):
    assert gazetteer.search(query) == []


def test_search_cross_street_with_street_suffix(gazetteer):
    # The ask_location prompt suggests "Broadway & 42nd"; riders naturally add "St".
    assert labels(gazetteer.search("Broadway & 42nd St")) == ["Times Square"], (
        "APP BUG dispatch/places.py (Gazetteer.search): the word match requires every "
        "token, so the street suffix 'st' (from 'St'/'Street') makes 'Broadway & 42nd St' "
        "find nothing although 'Broadway & 42nd' is a Times Square alias")


# -- Gazetteer.find_in_text -------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("stuck near union square with a flat", "Union Square"),
    ("Flat tire at Union Sq.", "Union Square"),
    ("my bike died at madison square garden", "Penn Station"),   # longest: not "madison sq"
    ("flat at central park south ok", "Central Park South"),
    ("chain broke by Grand Central Terminal", "Grand Central Terminal"),
    ("im at broadway and 42nd, battery dead", "Times Square"),
    ("penn station", "Penn Station"),
])
def test_find_in_text_picks_the_longest_place_name(gazetteer, text, expected):
    found = gazetteer.find_in_text(text)
    assert found is not None and found.label == expected


@pytest.mark.parametrize("text", [
    "help my bike broke",
    "im at msg",          # names shorter than 4 characters are not spotted in chatter
    "unionsquare",        # not whole words
    "",
])
def test_find_in_text_nothing(gazetteer, text):
    assert gazetteer.find_in_text(text) is None


def test_find_in_text_does_not_take_the_battery_for_battery_park(gazetteer):
    found = gazetteer.find_in_text("The battery died at Union Square")
    assert found is not None and found.label == "Union Square", (
        "APP BUG dispatch/places.py (Gazetteer.find_in_text) with gazetteer alias "
        "'the battery' (Battery Park): a first message 'The battery died at Union Square' sets "
        f"the pickup to {found.label if found else None!r} instead of Union Square, because the "
        "longest whole-word name wins and 'the battery' (11 chars) beats 'union sq' (8)")


# -- Locator.resolve order ----------------------------------------------------------------------

def locator_with(gazetteer, geocoder=None, links=None, streets=True) -> Locator:
    return Locator(gazetteer, streets=StreetGrid.builtin() if streets else None, geocoder=geocoder, links=links,
                   near=NEAR)


def test_resolve_coordinates_first(gazetteer):
    geocoder = FakeGeocoder()
    locator = locator_with(gazetteer, geocoder)
    # The text also names a gazetteer place; the coordinates win and nobody is searched.
    assert locator.resolve("union square 40.7580,-73.9855") == [
        Point(40.7580, -73.9855, "40.75800,-73.98550")]
    assert locator.resolve("https://maps.apple.com/?ll=40.7359,-73.9911")[0].lat == 40.7359
    assert geocoder.asked == []


@pytest.mark.parametrize("text", ["lat 40.7484 long -73.9857", "40.7484° N, 73.9857° W", "40.7484 -73.9857",
                                  "87G8Q23G+GF", "Q23G+GF"])
def test_every_notation_of_the_location_text_parser(gazetteer, text):
    (point,) = locator_with(gazetteer).resolve(text)
    assert 40.74 < point.lat < 40.76 and -73.99 < point.lng < -73.97


def test_a_google_link_keeps_its_place_name(gazetteer):
    (point,) = locator_with(gazetteer).resolve("https://www.google.com/maps/place/Union+Square/@40.7359,-73.9911,17z")
    assert point == Point(40.7359, -73.9911, "Union Square")


def test_bare_coordinates_get_the_geocoder_s_name(gazetteer):
    geocoder = FakeGeocoder(addresses={(40.7359, -73.9911): "Union Square, Manhattan"})
    locator = locator_with(gazetteer, geocoder)
    assert locator.resolve("40.7359,-73.9911") == [Point(40.7359, -73.9911, "Union Square, Manhattan")]
    # a link's own name is kept; coordinates the geocoder has no name for stay numbers
    assert locator.resolve("https://www.google.com/maps/place/Joe's/@40.7359,-73.9911,17z")[0].label == "Joe's"
    assert locator.resolve("40.7000,-73.9000")[0].label == "40.70000,-73.90000"
    assert geocoder.reversed == [(40.7359, -73.9911), (40.7, -73.9)]


def test_a_geocoder_down_leaves_the_numbers(gazetteer):
    locator = locator_with(gazetteer, FakeGeocoder(fail=True))
    assert locator.resolve("40.7359,-73.9911")[0].label == "40.73590,-73.99110"


def test_short_link_is_followed_to_its_place(gazetteer):
    links = FakeMapLinks({"https://maps.app.goo.gl/Ab12": "https://www.google.com/maps/place/Bryant+Park/@40.7536,-73.9832,17z"})
    locator = locator_with(gazetteer, links=links)
    assert locator.resolve("here https://maps.app.goo.gl/Ab12 hurry") == [Point(40.7536, -73.9832, "Bryant Park")]
    assert links.asked == ["https://maps.app.goo.gl/Ab12"]


@pytest.mark.parametrize("links", [FakeMapLinks({}), FakeMapLinks({"https://maps.app.goo.gl/Ab12": "https://www.google.com/maps"}),
                                   None])
def test_short_link_leading_nowhere_is_unreadable(gazetteer, links):
    with pytest.raises(MapLinkUnreadable):
        locator_with(gazetteer, links=links).resolve("https://maps.app.goo.gl/Ab12")


def test_short_link_host_down_is_unreadable(gazetteer):
    with pytest.raises(MapLinkUnreadable):
        locator_with(gazetteer, links=FakeMapLinks(fail=True)).resolve("https://maps.app.goo.gl/Ab12")


@pytest.mark.parametrize("text, label", [
    ("5th ave and 23rd", "5th Ave & W 23rd St"),
    ("corner of broadway and houston", "Broadway & Houston St"),
    ("14th n broadway", "Broadway & E 14th St"),
    ("350 5th ave", "350 5th Ave"),
    ("lexingtn & 59th", "Lexington Ave & E 59th St"),
])
def test_cross_streets_and_addresses_from_the_street_grid(gazetteer, text, label):
    geocoder = FakeGeocoder()
    assert labels(locator_with(gazetteer, geocoder).resolve(text)) == [label]
    assert geocoder.asked == []


def test_a_landmark_name_wins_over_the_street_grid(gazetteer):
    assert labels(locator_with(gazetteer).resolve("broadway and 42nd")) == ["Times Square"]


def test_a_landmark_inside_other_words(gazetteer):
    assert labels(locator_with(gazetteer).resolve("times square, my wrist hurts")) == ["Times Square"]


def test_resolve_gazetteer_before_geocoder(gazetteer):
    geocoder = FakeGeocoder({"union square": [Point(1.0, 1.0, "elsewhere")]})
    locator = locator_with(gazetteer, geocoder)
    assert labels(locator.resolve("union square")) == ["Union Square"]
    assert len(locator.resolve("park")) == MAX_CHOICES
    assert geocoder.asked == []


def test_resolve_falls_back_to_geocoder(gazetteer):
    bodega = Point(40.7465, -74.0014, "Bodega, 9th Avenue, Chelsea")
    geocoder = FakeGeocoder({"the corner bodega": [bodega]})
    locator = locator_with(gazetteer, geocoder)
    assert locator.resolve("the corner bodega") == [bodega]
    assert locator.resolve("nowhere land") == []
    assert geocoder.asked == ["the corner bodega", "nowhere land"]


def test_resolve_may_leave_the_geocoder_out(gazetteer):
    geocoder = FakeGeocoder({"the corner bodega": [Point(40.7465, -74.0014, "Bodega")]})
    locator = locator_with(gazetteer, geocoder)
    assert locator.resolve("the corner bodega", geocode=False) == []
    assert geocoder.asked == []


def test_resolve_without_geocoder(gazetteer):
    locator = locator_with(gazetteer)
    assert locator.resolve("nowhere land") == []
    assert labels(locator.resolve("times sq")) == ["Times Square"]


def test_resolve_propagates_geocoder_unavailable(gazetteer):
    locator = locator_with(gazetteer, FakeGeocoder(fail=True))
    with pytest.raises(GeocoderUnavailable):
        locator.resolve("the corner bodega")
    # ...but never when the city's own names already know the place.
    assert labels(locator.resolve("union sq")) == ["Union Square"]
    assert labels(locator.resolve("5th and 23rd")) == ["5th Ave & W 23rd St"]


def test_spot_in_message_never_asks_the_geocoder(gazetteer):
    geocoder = FakeGeocoder(fail=True)
    locator = locator_with(gazetteer, geocoder)
    assert locator.spot_in_message("flat tire near the corner bodega") is None
    assert locator.spot_in_message("flat at union square").label == "Union Square"
    assert locator.spot_in_message("flat at 40.7359,-73.9911 pls").lat == 40.7359
    assert locator.spot_in_message("https://maps.app.goo.gl/nowhere") is None
    assert geocoder.asked == []
