"""Cross streets and street addresses of the demo city, as riders type them, with no geocoder.

Nominatim cannot search intersections, and a stranded rider rarely knows more than "5th & 23rd".
The crossings themselves are generated (tools/build_street_grid.py); this module only has to read
people: English and Spanish phrasings, ordinals in words, "n" for "and", and typos, which rapidfuzz
absorbs. Everything is table-driven so that a new phrasing is a word in a set, not a new branch.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from itertools import pairwise

from rapidfuzz import fuzz, process

from dispatch.model.geo import Point

INTERSECTIONS_FILE = "intersections.json"
NUMBERED_PREFIX = "#"
# fuzz.ratio of a misspelt name to the real one: "housotn" scores 86 against "houston", "broadwya" 88;
# ordinary words stay below ("prince" against "price" is 91, which is why single words also need their
# neighbours to be street-like, see `_plausible`).
FUZZY_CUTOFF = 85
FUZZY_MIN_LETTERS = 5
MAX_NAME_WORDS = 4
# Words allowed between the two streets of a crossing ("5th ave and the corner of 23rd" is too far).
MAX_GAP_WORDS = 3
HIGHEST_AVENUE_NUMBER = 12
HIGHEST_STREET_NUMBER = 220

STREET_WORDS = frozenset({"st", "street", "str", "sts", "calle"})
AVENUE_WORDS = frozenset({"ave", "av", "avenue", "avenida", "aves", "avs"})
DIRECTIONS = {"e": "E", "east": "E", "este": "E", "w": "W", "west": "W", "oeste": "W"}
CONNECTORS = frozenset({"and", "&", "at", "n", "y", "con", "x", "+", "@", "/", "an", "nd", "with"})
BETWEEN_WORDS = frozenset({"between", "btwn", "btw", "betw", "bw", "entre"})
FILLERS = frozenset({"the", "of", "corner", "esquina", "la", "el", "de", "del", "on", "near", "im", "i", "m",
                     "am", "en", "estoy", "cerca", "around", "by", "right", "just", "off", "is", "its", "s",
                     "we", "are", "here", "located", "location", "esta", "stuck", "me", "my", "bike"})
TYPE_WORDS = STREET_WORDS | AVENUE_WORDS | {"blvd"}
# One-word street names that also end the names of places: after another word ("bryant park",
# "riverside park") they are the place, not Park Ave.
PLACE_ENDINGS = frozenset({"park"})
KNOWN_WORDS = STREET_WORDS | AVENUE_WORDS | CONNECTORS | BETWEEN_WORDS | FILLERS | set(DIRECTIONS)

ORDINAL_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50, "sixtieth": 60, "seventieth": 70,
    "eightieth": 80, "ninetieth": 90,
    "primera": 1, "primero": 1, "segunda": 2, "segundo": 2, "tercera": 3, "tercero": 3, "cuarta": 4,
    "cuarto": 4, "quinta": 5, "quinto": 5, "sexta": 6, "sexto": 6, "septima": 7, "septimo": 7,
    "octava": 8, "octavo": 8, "novena": 9, "noveno": 9, "decima": 10, "decimo": 10,
}
TENS_WORDS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
              "ninety": 90}
HUNDRED_WORDS = frozenset({"hundred"})
# English ordinals and the Spanish abbreviations riders write: 1ra, 2da, 3ra, 5ta, 7ma, 8va, 10ma, 5a.
_NUMBER_TOKEN = re.compile(r"(\d{1,5})(st|nd|rd|th|ra|da|ta|ma|va|na|er|a|o)?")
# A number glued to letters before it is part of a word ("zq5a50b1", "r1042"), not a street, unless
# those letters are a direction ("w23rd").
_TOKEN = re.compile(r"(?:(?<=\b[ew])|(?<![a-z0-9]))\d+[a-z]*|[a-z]+|[&@/+]")
# Numbers that are not streets: times, prices, phone numbers, dates. Removed before reading the words,
# or "10:30" would be 10th Ave & 30th St.
_NOT_STREETS = re.compile(
    r"\$\s?\d[\d,.]*"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?m\b\.?)?"
    r"|\b\d{1,2}\s*[ap]\.?m\b\.?"
    r"|\+?\d[\d\s().-]{8,}\d"
    r"|\b\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}\b",
    re.IGNORECASE)


def _tokens(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", _NOT_STREETS.sub(" ", text or "").lower())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return _TOKEN.findall(plain)


def _normalise(text: str) -> str:
    return " ".join(_tokens(text))


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int  # exclusive
    number: int | None = None  # a numbered street or avenue ...
    kind: str | None = None  # ... said to be a "street" or an "avenue", or not said
    side: str | None = None  # "E" / "W"
    bare: bool = False  # digits alone: maybe a house number
    keys: tuple[str, ...] = ()  # a named street
    single_word: bool = False


@dataclass
class _Street:
    name: str
    kind: str
    number: int | None = None
    address: list[list[int]] = field(default_factory=list)


class StreetGrid:
    """Every crossing of the demo city's streets, found from the way people name them."""

    def __init__(self, data: dict) -> None:
        self._streets = {s["key"]: _Street(s["name"], s["kind"], s.get("number"), s.get("address", []))
                         for s in data["streets"]}
        self._crossings: dict[tuple[str, str], list[Point]] = {}
        self._along: dict[str, list[tuple[int, float, float]]] = {}
        for a, b, lat, lng, label in data["intersections"]:
            point = Point(lat, lng, label)
            self._crossings.setdefault((a, b), []).append(point)
            self._crossings.setdefault((b, a), []).append(point)
            number = self._streets[b].number if self._streets[b].kind == "numbered" else None
            if number is not None:
                self._along.setdefault(a, []).append((number, lat, lng))
        for points in self._along.values():
            points.sort()
        self._house_numbers = data["house_numbers"]
        self._avenues_by_number: dict[int, list[str]] = {}
        self._names: dict[str, list[str]] = {}
        for s in data["streets"]:
            if s["kind"] != "numbered" and s.get("number") is not None:
                self._avenues_by_number.setdefault(s["number"], []).append(s["key"])
            for name in self._spoken_names(s):
                keys = self._names.setdefault(name, [])
                if s["key"] not in keys:
                    keys.append(s["key"])
        self._choices = list(self._names)

    @staticmethod
    def _spoken_names(street: dict) -> list[str]:
        """Name and aliases, and the name without "St"/"Ave" (people say "Houston", "Lexington").

        Sorted: fuzzy ties go to the first choice, so the order must not depend on string hashing."""
        names = {_normalise(n) for n in [street["name"], *street.get("aliases", [])]}
        if street["kind"] == "numbered":
            return sorted(n for n in names if n != _normalise(street["name"]))
        words = _normalise(street["name"]).split()
        if len(words) > 1 and words[-1] in TYPE_WORDS and not words[0][0].isdigit():
            names.add(" ".join(words[:-1]))
        return sorted(n for n in names if not n[0].isdigit())

    @classmethod
    def builtin(cls) -> StreetGrid:
        return _builtin()

    # -- public ---------------------------------------------------------------------------------

    def find(self, text: str) -> list[Point]:
        """Points for the crossing or street address in `text`; several when it reads more than one way."""
        tokens = _tokens(text)
        mentions = self._mentions(tokens)
        return self._addresses(tokens, mentions) or self._between(tokens, mentions) or \
            self._crossing(tokens, mentions)

    # -- reading the words ----------------------------------------------------------------------

    def _mentions(self, tokens: list[str]) -> list[_Mention]:
        found: list[_Mention] = []
        i = 0
        while i < len(tokens):
            mention = _numbered_at(tokens, i) or self._named_at(tokens, i)
            if mention:
                found.append(mention)
                i = mention.end
            else:
                i += 1
        return [m for m in found if not m.single_word or _plausible(tokens, m)]

    def _named_at(self, tokens: list[str], i: int) -> _Mention | None:
        for size in range(min(MAX_NAME_WORDS, len(tokens) - i), 0, -1):
            phrase = " ".join(tokens[i:i + size])
            if phrase in self._names:
                return self._named(tokens, i, size, self._names[phrase])
        for size in range(min(MAX_NAME_WORDS - 1, len(tokens) - i), 0, -1):
            words = tokens[i:i + size]
            if any(not w.isalpha() or w in KNOWN_WORDS for w in words) or \
                    sum(map(len, words)) < FUZZY_MIN_LETTERS:
                continue
            best = process.extractOne(" ".join(words), self._choices, scorer=fuzz.ratio,
                                      score_cutoff=FUZZY_CUTOFF)
            if best:
                return self._named(tokens, i, size, self._names[best[0]])
        return None

    @staticmethod
    def _named(tokens: list[str], i: int, size: int, keys: list[str]) -> _Mention:
        end = i + size
        if end < len(tokens) and tokens[end] in STREET_WORDS | AVENUE_WORDS:
            end += 1  # "houstn st", "lexingon ave"
        return _Mention(i, end, keys=tuple(keys), single_word=size == 1)

    # -- what the words mean --------------------------------------------------------------------

    def _readings(self, mention: _Mention) -> list[str]:
        """Street keys a mention can stand for: "5th" is 5th Ave or 5th St until something says which."""
        if mention.keys:
            return list(mention.keys)
        n = mention.number
        street = [f"{NUMBERED_PREFIX}{n}"] if f"{NUMBERED_PREFIX}{n}" in self._streets else []
        avenues = self._avenues_by_number.get(n, [])
        if mention.kind == "street" or mention.side:
            return street
        if mention.kind == "avenue":
            return avenues
        return avenues + street

    def _meet(self, a: _Mention, b: _Mention) -> list[Point]:
        points: list[Point] = []
        for ka in self._readings(a):
            for kb in self._readings(b):
                for point in self._crossings.get((ka, kb), []):
                    if point not in points:
                        points.append(point)
        return points

    def _crossing(self, tokens: list[str], mentions: list[_Mention]) -> list[Point]:
        for a, b in pairwise(mentions):
            if _joined(tokens, a, b) and not _menu_numbers(a, b):
                points = self._meet(a, b)
                if points:
                    return points
        return []

    def _between(self, tokens: list[str], mentions: list[_Mention]) -> list[Point]:
        """ "5th avenue between 22nd and 23rd": halfway along the block, where the rider is."""
        for a, b, c in zip(mentions, mentions[1:], mentions[2:], strict=False):
            gap = tokens[a.end:b.start]
            if not any(w in BETWEEN_WORDS for w in gap) or not _joined(tokens, b, c):
                continue
            ends = [p for m in (b, c) for p in self._meet(a, m)[:1]]
            if len(ends) == 2:
                first, second = ends
                street, cross1 = first.label.split(" & ", 1)
                cross2 = second.label.split(" & ", 1)[1]
                return [Point(round((first.lat + second.lat) / 2, 6), round((first.lng + second.lng) / 2, 6),
                              f"{street} between {cross1} & {cross2}")]
            if ends:
                return ends
        return []

    # -- street addresses -----------------------------------------------------------------------

    def _addresses(self, tokens: list[str], mentions: list[_Mention]) -> list[Point]:
        for house, street in pairwise(mentions):
            if not house.bare or street.start != house.end or street.bare:
                continue
            number = house.number
            label_number = tokens[house.start]
            points = [p for key in self._readings(street) for p in
                      self._on_avenue(key, number, label_number) + self._on_street(key, street, number)]
            if points:
                return points
        return []

    def _on_avenue(self, key: str, house: int, house_text: str) -> list[Point]:
        """The avenue rule printed in every Manhattan phone book: drop the last digit, halve, add a key."""
        avenue = self._streets[key]
        rule = next((r for r in avenue.address if house <= r[0]), None)
        if rule is None or key not in self._along:
            return []
        _, divide, add = rule
        cross = (house // 10) / divide + add
        point = _interpolate(self._along[key], cross)
        return [Point(point[0], point[1], f"{house_text} {avenue.name}")] if point else []

    def _on_street(self, key: str, mention: _Mention, house: int) -> list[Point]:
        """House numbers run from Fifth Avenue outwards, a hundred to a block between avenues."""
        street = self._streets[key]
        if street.kind != "numbered":
            return []
        points = []
        for side in [mention.side] if mention.side else ["W", "E"]:
            for table in self._house_numbers:
                low, high = table["streets"]
                if table["side"] == side and low <= street.number <= high:
                    point = self._between_marks(key, table["marks"], house)
                    if point:
                        points.append(Point(point[0], point[1], f"{house} {side} {street.name}"))
        return points

    def _between_marks(self, key: str, marks: list, house: int) -> tuple[float, float] | None:
        for (low, names_low), (high, names_high) in pairwise(marks):
            if low <= house < high:
                a, b = self._point_on(key, names_low), self._point_on(key, names_high)
                if a and b:
                    t = (house - low) / (high - low)
                    return round(a.lat + t * (b.lat - a.lat), 6), round(a.lng + t * (b.lng - a.lng), 6)
        return None

    def _point_on(self, key: str, avenue_names: list[str]) -> Point | None:
        for name in avenue_names:
            found = self._crossings.get((name, key))
            if found:
                return found[0]
        return None


@cache
def _builtin() -> StreetGrid:
    raw = resources.files("dispatch.data").joinpath(INTERSECTIONS_FILE).read_text()
    return StreetGrid(json.loads(raw))


def _interpolate(along: list[tuple[int, float, float]], cross: float) -> tuple[float, float] | None:
    for (n0, lat0, lng0), (n1, lat1, lng1) in pairwise(along):
        if n0 <= cross <= n1 and n1 > n0:
            t = (cross - n0) / (n1 - n0)
            return round(lat0 + t * (lat1 - lat0), 6), round(lng0 + t * (lng1 - lng0), 6)
    return None


def _ordinal_words(tokens: list[str], i: int) -> tuple[int, int] | None:
    """(number, tokens used) for "fifth", "twenty third", "one hundred tenth", "quinta"."""
    j, total = i, 0
    if j + 1 < len(tokens) and tokens[j] == "one" and tokens[j + 1] in HUNDRED_WORDS:
        j += 1
    if j < len(tokens) and tokens[j] in HUNDRED_WORDS:
        total, j = 100, j + 1
        if j < len(tokens) and tokens[j] == "and":
            j += 1
    if j < len(tokens) and tokens[j] in TENS_WORDS:
        if j + 1 < len(tokens) and tokens[j + 1] in ORDINAL_WORDS and ORDINAL_WORDS[tokens[j + 1]] < 10:
            return total + TENS_WORDS[tokens[j]] + ORDINAL_WORDS[tokens[j + 1]], j + 2 - i
        return None
    if j < len(tokens) and tokens[j] in ORDINAL_WORDS:
        return total + ORDINAL_WORDS[tokens[j]], j + 1 - i
    return None


def _numbered_at(tokens: list[str], i: int) -> _Mention | None:
    """ "w 23rd st", "e 14th", "5th ave", "23", "la 5ta", "calle 23", "avenida 5", "Twenty-third"."""
    j, side, kind = i, None, None
    if tokens[j] in DIRECTIONS and j + 1 < len(tokens):
        side, j = DIRECTIONS[tokens[j]], j + 1
    elif tokens[j] in ("calle", "avenida") and j + 1 < len(tokens):
        kind, j = ("street" if tokens[j] == "calle" else "avenue"), j + 1
    match = _NUMBER_TOKEN.fullmatch(tokens[j])
    if match:
        number, used, suffixed = int(match[1]), 1, match[2] is not None
    else:
        words = _ordinal_words(tokens, j)
        if words is None:
            return None
        (number, used), suffixed = words, True
    end = j + used
    if end < len(tokens) and tokens[end] in STREET_WORDS | AVENUE_WORDS:
        kind, end = ("street" if tokens[end] in STREET_WORDS else "avenue"), end + 1
    bare = not suffixed and side is None and kind is None
    if not bare and not 1 <= number <= HIGHEST_STREET_NUMBER:
        return None
    return _Mention(i, end, number=number, kind=kind, side=side, bare=bare)


def _menu_numbers(a: _Mention, b: _Mention) -> bool:
    """ "2, 3" or "1 and 4" are answers to a numbered question, not 2nd Ave & 3rd St: bare numbers only
    name a crossing when one of them can only be a street ("23 & 5")."""
    return a.bare and b.bare and max(a.number, b.number) <= HIGHEST_AVENUE_NUMBER


def _joined(tokens: list[str], a: _Mention, b: _Mention) -> bool:
    """Two mentions name one crossing when only joining words ("and", "y", "con", "n") stand between."""
    gap = tokens[a.end:b.start]
    return len(gap) <= MAX_GAP_WORDS and all(w in KNOWN_WORDS for w in gap) and \
        not any(w in BETWEEN_WORDS for w in gap)


def _plausible(tokens: list[str], mention: _Mention) -> bool:
    """A place word after a word we do not know names a place, not a street: the "park" of "bryant park"
    is not Park Ave. (A name followed by an unknown word, "madison square", is never joined to a cross
    street anyway: see `_joined`.)"""
    before = tokens[mention.start - 1] if mention.start > 0 else ""
    return not (tokens[mention.start] in PLACE_ENDINGS and before.isalpha() and before not in KNOWN_WORDS)
