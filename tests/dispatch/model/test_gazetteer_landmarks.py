"""The built-in gazetteer's landmarks: enough of them, where the street grid says they are, and a
"did you mean" list where a name is shared."""
from __future__ import annotations

import json
from importlib import resources

import pytest
from geopy.distance import great_circle

from dispatch.model.street_grid import StreetGrid
from dispatch.places import Gazetteer

# The landmark's own corner, by the generated street grid: both were read independently, so agreement
# within a block checks each of them.
AGREE_M = 200
BY_ITS_CORNER = [
    ("Empire State Building", "350 5th ave"),
    ("Metropolitan Museum of Art", "1000 5th ave"),
    ("Guggenheim Museum", "1071 5th ave"),
    ("Carnegie Hall", "7th ave & 57th"),
    ("Radio City Music Hall", "6th ave & 50th"),
    ("St. Patrick's Cathedral", "5th ave between 50th and 51st"),
    ("Chrysler Building", "lexington between 42nd and 43rd"),
    ("Port Authority Bus Terminal", "8th ave between 40th and 42nd"),
    ("Bloomingdale's", "lexington & 59th"),
    ("Mount Sinai Hospital", "madison & 100th"),
    ("Lenox Hill Hospital", "park ave & 77th"),
    ("Bellevue Hospital", "1st ave & 27th"),
    ("Harlem Hospital", "lenox & 136th"),
    ("Columbia University", "broadway & 116th"),
    ("Hunter College", "lexington & 68th"),
    ("Baruch College", "lexington & 25th"),
    ("Strand Bookstore", "broadway & 12th"),
    ("Cooper Union", "3rd ave & 7th"),
    ("New Museum", "bowery & prince"),
    ("Stonewall Inn", "christopher & 7th ave"),
    ("Frick Collection", "5th ave & 70th"),
    ("Museum of the City of New York", "5th ave & 103rd"),
    ("Intrepid Museum", "12th ave & 46th"),
    ("Roosevelt Island Tramway", "2nd ave & 60th"),
    ("Gramercy Park", "lexington & 21st"),
    ("Union Square", "broadway & 15th"),
    ("Bryant Park", "6th ave & 41st"),
    ("Penn Station", "8th ave & 33rd"),
    ("Columbus Circle", "8th ave & 59th"),
    ("Apollo Theater", "253 w 125th st"),
]


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer.builtin()


@pytest.fixture(scope="module")
def raw() -> list[dict]:
    return json.loads(resources.files("dispatch.data").joinpath("gazetteer.json").read_text())


def test_the_city_s_main_landmarks_are_there(raw):
    assert len(raw) >= 136  # the 36 first places and at least 100 landmarks
    names = [e["name"] for e in raw]
    assert len(names) == len(set(names))


def test_entries_keep_the_format(raw):
    for entry in raw:
        assert set(entry) == {"name", "lat", "lng", "aliases"}, entry["name"]
        assert isinstance(entry["aliases"], list)


def test_no_alias_is_two_places(raw):
    spoken = [n.lower() for e in raw for n in [e["name"], *e["aliases"]]]
    assert len(spoken) == len(set(spoken))


@pytest.mark.parametrize("name, corner", BY_ITS_CORNER)
def test_landmark_is_at_its_corner(gazetteer, name, corner):
    (place,) = [p for p in gazetteer.search(name) if p.label == name]
    (point,) = StreetGrid.builtin().find(corner)
    assert great_circle((place.lat, place.lng), (point.lat, point.lng)).meters < AGREE_M


def test_central_park_is_a_choice(gazetteer):
    labels = [p.label for p in gazetteer.search("central park")]
    assert len(labels) >= 3 and all(label.startswith("Central Park") for label in labels)


@pytest.mark.parametrize("query, expected", [
    ("the met", "Metropolitan Museum of Art"),
    ("moma", "Museum of Modern Art"),
    ("port authority", "Port Authority Bus Terminal"),
    ("bellevue", "Bellevue Hospital"),
    ("nyu", "New York University"),
    ("brooklyn bridge", "Brooklyn Bridge Manhattan entrance"),
    ("strawberry fields", "Strawberry Fields"),
    ("bloomingdales", "Bloomingdale's"),
    ("columbia", "Columbia University"),
])
def test_landmarks_by_their_everyday_names(gazetteer, query, expected):
    assert [p.label for p in gazetteer.search(query)] == [expected]


@pytest.mark.parametrize("word, expected", [
    ("sinai", {"Mount Sinai Hospital", "Mount Sinai Morningside", "Mount Sinai West"}),
    ("presbyterian", {"NewYork-Presbyterian Weill Cornell", "NewYork-Presbyterian Columbia Medical Center",
                      "NewYork-Presbyterian Lower Manhattan Hospital"}),
])
def test_a_shared_word_gives_a_did_you_mean_list(gazetteer, word, expected):
    assert {p.label for p in gazetteer.search(word)} == expected


@pytest.mark.parametrize("text, expected", [
    ("flat tire outside the met", "Metropolitan Museum of Art"),
    ("chain broke near port authority", "Port Authority Bus Terminal"),
    ("battery died by bellevue hospital", "Bellevue Hospital"),
])
def test_landmarks_spotted_in_a_first_message(gazetteer, text, expected):
    found = gazetteer.find_in_text(text)
    assert found is not None and found.label == expected


@pytest.mark.parametrize("text", ["9", "21", "11", "911", "help my bike broke", "at a slow pace"])
def test_numbers_and_chatter_are_not_landmarks(gazetteer, text):
    assert gazetteer.search(text) == []
    assert gazetteer.find_in_text(text) is None
