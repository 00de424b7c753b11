"""Build dispatch/data/intersections.json from the street description dispatch/data/manhattan_streets.json.

Typing crossings one by one does not scale (Manhattan has thousands) and drifts from the streets
themselves; describing each street once as a line and intersecting the lines keeps every crossing
consistent with the streets it joins. Run it after editing the description:

    python tools/build_street_grid.py            # rewrites dispatch/data/intersections.json
    python tools/build_street_grid.py --check    # exit 1 if the committed file is stale

Plain segment arithmetic on a local flat projection: at city scale it is exact to centimetres, and
it keeps the output byte-for-byte reproducible without a geometry library.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from itertools import combinations, pairwise
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "dispatch" / "data"
DESCRIPTION = DATA / "manhattan_streets.json"
OUTPUT = DATA / "intersections.json"

REFERENCE_LAT = 40.78
M_PER_DEG_LAT = 111_132.0
M_PER_DEG_LNG = M_PER_DEG_LAT * math.cos(math.radians(REFERENCE_LAT))
# A street that ends at an avenue (a T junction) is drawn to the avenue's centre line, give or take a
# few metres of reading error: lengthening every line this much at both ends keeps those crossings.
END_EXTENSION_M = 40.0
# Two hits of one pair closer than this are the same crossing seen from two overlapping segments.
SAME_CROSSING_M = 60.0
# The E/W divider is lengthened this far so that every numbered street, even one beyond its ends, gets a side.
DIVIDER_EXTENSION_M = 20_000.0
# A crossing this close to the divider's centre line is on it, and named West (as "5th Ave & W 23rd St").
ON_DIVIDER_M = 1.0
NUMBERED_PREFIX = "#"

Coord = tuple[float, float]  # metres east, metres north


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def to_xy(point: list[float]) -> Coord:
    return (point[1] * M_PER_DEG_LNG, point[0] * M_PER_DEG_LAT)


def to_latlng(xy: Coord) -> tuple[float, float]:
    return (round(xy[1] / M_PER_DEG_LAT, 5), round(xy[0] / M_PER_DEG_LNG, 5))


def extended(line: list[Coord], metres: float) -> list[Coord]:
    def push(a: Coord, b: Coord) -> Coord:
        length = math.dist(a, b) or 1.0
        return (b[0] + (b[0] - a[0]) * metres / length, b[1] + (b[1] - a[1]) * metres / length)
    return [push(line[1], line[0]), *line[1:-1], push(line[-2], line[-1])] if len(line) > 2 else \
        [push(line[1], line[0]), push(line[0], line[1])]


def _distance_to_segment(p: Coord, a: Coord, b: Coord) -> float:
    length2 = (b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2 or 1.0
    t = max(0.0, min(1.0, ((p[0] - a[0]) * (b[0] - a[0]) + (p[1] - a[1]) * (b[1] - a[1])) / length2))
    return math.dist(p, (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))


def crossings(a: list[Coord], b: list[Coord]) -> list[Coord]:
    """Every point where polyline a crosses polyline b."""
    found = []
    for p, q in pairwise(a):
        for r, s in pairwise(b):
            d = (q[0] - p[0]) * (s[1] - r[1]) - (q[1] - p[1]) * (s[0] - r[0])
            if d == 0:
                continue
            t = ((r[0] - p[0]) * (s[1] - r[1]) - (r[1] - p[1]) * (s[0] - r[0])) / d
            u = ((r[0] - p[0]) * (q[1] - p[1]) - (r[1] - p[1]) * (q[0] - p[0])) / d
            if 0 <= t <= 1 and 0 <= u <= 1:
                found.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return found


def _number(anchor: dict) -> int:
    return anchor["street"]


def numbered_streets(description: dict) -> list[dict]:
    """Street n's line, interpolated point by point between the anchor streets around n."""
    spec = description["numbered_streets"]
    streets = []
    for section in spec["sections"]:
        anchors = sorted(section["anchors"], key=lambda a: a["street"])
        low, high = section["streets"]
        for n in range(low, high + 1):
            below = max((a for a in anchors if a["street"] <= n), key=_number, default=anchors[0])
            above = min((a for a in anchors if a["street"] >= n), key=_number, default=anchors[-1])
            span = above["street"] - below["street"]
            t = (n - below["street"]) / span if span else 0.0
            line = [[b[0] + t * (c[0] - b[0]), b[1] + t * (c[1] - b[1])]
                    for b, c in zip(below["line"], above["line"], strict=True)]
            streets.append({"key": f"{NUMBERED_PREFIX}{n}", "name": spec["name"].format(ordinal=ordinal(n)),
                            "kind": "numbered", "number": n,
                            "aliases": spec["aliases"].get(str(n), []), "line": line})
    return streets


def _crosses_in_range(street: dict, other: dict) -> bool:
    """A numbered street meets an avenue only within the stretch of streets that avenue spans."""
    if street["kind"] != "numbered" or "streets" not in other:
        return True
    low, high = other["streets"]
    return low <= street["number"] <= high


def build(description: dict) -> dict:
    named = [{"key": s["name"], **s} for s in description["streets"]]
    numbered = numbered_streets(description)
    lines = {s["key"]: extended([to_xy(p) for p in s["line"]], END_EXTENSION_M) for s in named + numbered}
    divider_name = description["divider"]["street"]
    divider = extended(lines[divider_name], DIVIDER_EXTENSION_M)
    sides = description["divider"]

    def side(point: Coord) -> str:
        """West or East of the divider: the sign of the cross product with its nearest segment."""
        a, b = min(pairwise(divider), key=lambda seg: _distance_to_segment(point, *seg))
        cross = (b[0] - a[0]) * (point[1] - a[1]) - (b[1] - a[1]) * (point[0] - a[0])
        return sides["west"] if cross >= -math.dist(a, b) * ON_DIVIDER_M else sides["east"]

    found = []
    for a, b in combinations(named + numbered, 2):
        if a["kind"] == "numbered" and b["kind"] == "numbered":
            continue
        if a["kind"] == "numbered" or (a["kind"] == "street" and b["kind"] == "avenue"):
            a, b = b, a  # the avenue (north-south) first, as people say and signs read
        if not (_crosses_in_range(b, a) and _crosses_in_range(a, b)):
            continue
        kept: list[Coord] = []
        for point in crossings(lines[a["key"]], lines[b["key"]]):
            if any(math.dist(point, k) < SAME_CROSSING_M for k in kept):
                continue
            kept.append(point)
            b_name = b["name"]
            if b["kind"] == "numbered":
                b_name = f"{side(point)} {b_name}"
            lat, lng = to_latlng(point)
            found.append([a["key"], b["key"], lat, lng, f"{a['name']} & {b_name}"])
    found.sort(key=lambda row: (row[0], row[1], row[2], row[3]))
    streets = [{k: v for k, v in s.items() if k != "line"} for s in named + numbered]
    return {
        "about": f"Generated by tools/build_street_grid.py from {DESCRIPTION.name}; do not edit by hand.",
        "streets": streets,
        "house_numbers": description["house_numbers"],
        "intersections": found,
    }


def render(built: dict) -> str:
    """One street and one crossing a line: reviewable diffs when the description changes."""
    rows = [
        "{",
        f'  "about": {json.dumps(built["about"])},',
        f'  "house_numbers": {json.dumps(built["house_numbers"])},',
        '  "streets": [',
        ",\n".join(f"    {json.dumps(s, ensure_ascii=False)}" for s in built["streets"]),
        "  ],",
        '  "intersections": [',
        ",\n".join(f"    {json.dumps(i, ensure_ascii=False)}" for i in built["intersections"]),
        "  ]",
        "}",
    ]
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs")
    args = parser.parse_args(argv)
    text = render(build(json.loads(DESCRIPTION.read_text())))
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run tools/build_street_grid.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"{OUTPUT}: {text.count(' & ')} crossings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
