"""tools/build_street_grid.py: the committed crossings are exactly what the street description gives."""
from __future__ import annotations

import json

import pytest

from tools import build_street_grid as builder

# Manhattan's bounding box, a little generous: every generated crossing must fall inside it.
NORTH, SOUTH, EAST, WEST = 40.882, 40.698, -73.905, -74.025


@pytest.fixture(scope="module")
def description() -> dict:
    return json.loads(builder.DESCRIPTION.read_text())


@pytest.fixture(scope="module")
def built(description) -> dict:
    return builder.build(description)


def test_rerunning_the_generator_reproduces_the_committed_file(built):
    assert builder.render(built) == builder.OUTPUT.read_text(), "run: python tools/build_street_grid.py"


def test_check_mode_agrees(capsys):
    assert builder.main(["--check"]) == 0


def test_check_mode_catches_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "intersections.json"
    stale.write_text(builder.OUTPUT.read_text().replace("5th Ave & W 23rd St", "5th Ave & W 24th St"))
    monkeypatch.setattr(builder, "OUTPUT", stale)
    assert builder.main(["--check"]) == 1


def test_a_changed_description_changes_the_crossings(description):
    moved = json.loads(json.dumps(description))
    fifth = next(s for s in moved["streets"] if s["name"] == "5th Ave")
    fifth["line"] = [[lat + 0.001, lng] for lat, lng in fifth["line"]]
    assert builder.render(builder.build(moved)) != builder.OUTPUT.read_text()


def test_every_numbered_street_and_many_crossings(built):
    numbers = {s["number"] for s in built["streets"] if s["kind"] == "numbered"}
    assert set(range(1, 191)) <= numbers and {207, 215, 220} <= numbers
    assert len(built["intersections"]) > 2000


def test_crossings_are_inside_manhattan_and_unique(built):
    seen = set()
    for a, b, lat, lng, label in built["intersections"]:
        assert SOUTH < lat < NORTH and WEST < lng < EAST, label
        assert (a, b, lat, lng) not in seen
        seen.add((a, b, lat, lng))


def test_avenues_cross_only_the_streets_they_span(built):
    spans = {s["key"]: s["streets"] for s in built["streets"] if "streets" in s}
    numbers = {s["key"]: s["number"] for s in built["streets"] if s["kind"] == "numbered"}
    for a, b, *_ in built["intersections"]:
        if b in numbers and a in spans:
            low, high = spans[a]
            assert low <= numbers[b] <= high, (a, b)


@pytest.mark.parametrize("a, b, label", [
    ("5th Ave", "#23", "5th Ave & W 23rd St"),
    ("6th Ave", "#23", "6th Ave & W 23rd St"),
    ("Lexington Ave", "#23", "Lexington Ave & E 23rd St"),
    ("Avenue A", "#7", "Avenue A & E 7th St"),
    ("Broadway", "#14", "Broadway & E 14th St"),
    ("Broadway", "Houston St", "Broadway & Houston St"),
    ("7th Ave", "Broadway", "7th Ave & Broadway"),   # the diagonal crosses the grid at Times Square
])
def test_labels_name_the_side_of_fifth_avenue(built, a, b, label):
    assert [row[4] for row in built["intersections"] if row[:2] == [a, b]] == [label]


def test_broadway_meets_each_avenue_where_the_squares_are(built):
    at = {row[0]: (row[2], row[3]) for row in built["intersections"] if row[1] == "Broadway"}
    assert at["5th Ave"][0] == pytest.approx(40.7411, abs=0.001)   # Flatiron, 23rd St
    assert at["6th Ave"][0] == pytest.approx(40.7498, abs=0.001)   # Herald Square, 34th St
    assert at["7th Ave"][0] == pytest.approx(40.7580, abs=0.0015)  # Times Square, 45th St
