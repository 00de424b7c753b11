"""Turning what people text into places: coordinates and map links, the demo city's landmarks
(the gazetteer) and street grid, a geocoder.

The flows depend only on `Locator`; a geocoder (`dispatch.adapters.geocoders`) and the
follower of short map links (`dispatch.adapters.map_links`) are ports behind it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources

from dispatch.model.geo import Point
from dispatch.model.location_text import coordinate_label, find_short_link, parse_location
from dispatch.model.spelling import closest
from dispatch.model.street_grid import StreetGrid
from dispatch.ports import Geocoder, GeocoderUnavailable, LinkResolver, MapLinkUnreadable

MAX_CHOICES = 5

_ABBREVIATIONS = {
    "street": "st", "avenue": "ave", "av": "ave", "square": "sq", "place": "pl",
    "and": "&", "at": "&", "boulevard": "blvd", "first": "1st", "second": "2nd",
    "third": "3rd", "fourth": "4th", "fifth": "5th", "sixth": "6th", "seventh": "7th",
    "eighth": "8th", "ninth": "9th", "tenth": "10th",
}
_STOP_TOKENS = {"the", "near", "by", "in", "on", "im", "i'm", "i", "am", "of", "&", "corner", "nyc", "ny",
                "manhattan", "st"}


# Words that say what kind of street, not which: "5th ave" names no landmark.
_STREET_KINDS = {"st", "ave", "blvd", "pl", "sq", "rd", "dr", "street", "avenue"}


def _names_something(text: str) -> bool:
    """Whether a text has a word besides street numbers and kinds. A lone "9th" or "14th st" must
    not be taken for the one landmark whose alias mentions it (the street grid reads streets)."""
    words = normalise_place(text).split()
    return any(w.isalpha() and w not in _STOP_TOKENS and w not in _STREET_KINDS for w in words)


def normalise_place(text: str) -> str:
    words = re.findall(r"[a-z0-9&']+", (text or "").lower().replace("&", " & "))
    return " ".join(_ABBREVIATIONS.get(w, w) for w in words)


@dataclass(frozen=True)
class _Entry:
    point: Point
    names: tuple[str, ...]  # normalised name and aliases
    spelled: tuple[str, ...]  # name and aliases as written, in lower case


class Gazetteer:
    """Named places of the demo city, so that the service works with `GEOCODER=none`."""

    def __init__(self, entries: list[dict]) -> None:
        self._entries = [
            _Entry(Point(e["lat"], e["lng"], e["name"]),
                   tuple(normalise_place(n) for n in [e["name"], *e.get("aliases", [])]),
                   tuple(" ".join(n.lower().split()) for n in [e["name"], *e.get("aliases", [])]))
            for e in entries
        ]
        self._spellings = [(i, name) for i, e in enumerate(self._entries) for name in e.spelled]

    @classmethod
    def builtin(cls) -> Gazetteer:
        raw = resources.files("dispatch.data").joinpath("gazetteer.json").read_text()
        return cls(json.loads(raw))

    def names(self) -> list[str]:
        return [e.point.label for e in self._entries]

    def exact(self, query: str) -> list[Point]:
        """The places whose name or alias is exactly `query` (several share "central park")."""
        q = normalise_place(query)
        return [e.point for e in self._entries if q and q in e.names][:MAX_CHOICES]

    def search(self, query: str) -> list[Point]:
        """Exact name or alias first; otherwise every place whose name holds all the words."""
        q = normalise_place(query)
        if not q:
            return []
        exact = self.exact(query)
        if exact:
            return exact
        tokens = [t for t in q.split() if t not in _STOP_TOKENS]
        if not tokens:
            return []
        matches = [e.point for e in self._entries
                   if any(all(t in name.split() for t in tokens) for name in e.names)]
        return matches[:MAX_CHOICES]

    def misspelt(self, query: str) -> list[Point]:
        """The places whose name `query` is a slip away from ("unoin square", "penn staton")."""
        typed = " ".join(re.findall(r"[a-z0-9&']+", (query or "").lower()))
        nearest = closest(typed, [name for _, name in self._spellings])
        points = []
        for k in nearest:
            point = self._entries[self._spellings[k][0]].point
            if point not in points:
                points.append(point)
        return points[:MAX_CHOICES]

    def find_in_text(self, text: str) -> Point | None:
        """The longest place name standing as whole words inside a free-text message."""
        padded = f" {normalise_place(text)} "
        best: tuple[int, Point] | None = None
        for entry in self._entries:
            for name in entry.names:
                if len(name) >= 4 and f" {name} " in padded and (best is None or len(name) > best[0]):
                    best = (len(name), entry.point)
        return best[1] if best else None


class Locator:
    """Where a text says a place is: what it carries itself (coordinates, a map link, a Plus
    Code), then the demo city's landmarks and street grid, then the geocoder if one is set."""

    def __init__(self, gazetteer: Gazetteer, *, streets: StreetGrid | None = None, geocoder: Geocoder | None = None,
                 links: LinkResolver | None = None, near: tuple[float, float] | None = None) -> None:
        self.gazetteer = gazetteer
        self.streets = streets
        self.geocoder = geocoder
        self.links = links
        self.near = near  # where a short Plus Code ("Q23G+GF") is recovered: the service area

    def pinpoint(self, text: str, name: bool = True) -> Point | None:
        """The location a text carries itself, or None. A short map link is followed to the
        place it points at; one that leads nowhere raises MapLinkUnreadable. With `name`, bare
        coordinates get a readable name from the geocoder, when there is one, so that what is
        said back and shown to the driver is a place rather than numbers."""
        point = parse_location(text, self.near)
        if point is None:
            link = find_short_link(text)
            if link is None:
                return None
            try:
                target = self.links.resolve(link) if self.links else None
            except GeocoderUnavailable as exc:
                raise MapLinkUnreadable(link) from exc
            point = parse_location(target, self.near) if target else None
            if point is None:
                raise MapLinkUnreadable(link)
        if name and self.geocoder and point.label == coordinate_label(point.lat, point.lng):
            try:
                name = self.geocoder.reverse(point)
            except GeocoderUnavailable:
                name = None  # the numbers are still the place
            if name:
                point = Point(point.lat, point.lng, name)
        return point

    def resolve(self, text: str, geocode: bool = True) -> list[Point]:
        """Every place `text` may mean, at most MAX_CHOICES, best first; the geocoder is asked
        only with `geocode` and only about what the city's own names do not cover. Raises
        GeocoderUnavailable (MapLinkUnreadable for a short link)."""
        point = self.pinpoint(text)
        if point:
            return [point]
        exact = self.gazetteer.exact(text)
        if exact:
            return exact
        crossing = self.streets.find(text) if self.streets else []
        if crossing:
            return crossing[:MAX_CHOICES]
        named = (self.gazetteer.search(text) if _names_something(text) else []) or \
            [p for p in [self.gazetteer.find_in_text(text)] if p] or self.gazetteer.misspelt(text)
        if named or not geocode or self.geocoder is None:
            return named
        return self.geocoder.search(text)

    def spot_in_message(self, text: str) -> Point | None:
        """A location mentioned in passing (a driver's text): what the text carries, or a
        landmark named in it; no guesswork by the geocoder or the street grid on chatter, and no
        name looked up for a driver's every position."""
        try:
            return self.pinpoint(text, name=False) or self.gazetteer.find_in_text(text)
        except GeocoderUnavailable:
            return self.gazetteer.find_in_text(text)


__all__ = ["Gazetteer", "GeocoderUnavailable", "Locator", "MAX_CHOICES", "MapLinkUnreadable", "normalise_place"]
