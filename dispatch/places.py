"""Turning what people text into places: coordinates, the built-in gazetteer, a geocoder.

The flows depend only on `Locator`; a geocoder (`dispatch.adapters.nominatim`) is a port
behind it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources

from dispatch.model.geo import Point, parse_coordinates
from dispatch.ports import Geocoder, GeocoderUnavailable

MAX_CHOICES = 5

_ABBREVIATIONS = {
    "street": "st", "avenue": "ave", "av": "ave", "square": "sq", "place": "pl",
    "and": "&", "at": "&", "boulevard": "blvd", "first": "1st", "second": "2nd",
    "third": "3rd", "fourth": "4th", "fifth": "5th", "sixth": "6th", "seventh": "7th",
    "eighth": "8th", "ninth": "9th", "tenth": "10th",
}
_STOP_TOKENS = {"the", "near", "by", "in", "on", "im", "i'm", "i", "am", "of", "&", "corner", "nyc", "ny",
                "manhattan", "st"}


def normalise_place(text: str) -> str:
    words = re.findall(r"[a-z0-9&']+", (text or "").lower().replace("&", " & "))
    return " ".join(_ABBREVIATIONS.get(w, w) for w in words)


@dataclass(frozen=True)
class _Entry:
    point: Point
    names: tuple[str, ...]  # normalised name and aliases


class Gazetteer:
    """Named places of the demo city, so that the service works with `GEOCODER=none`."""

    def __init__(self, entries: list[dict]) -> None:
        self._entries = [
            _Entry(Point(e["lat"], e["lng"], e["name"]),
                   tuple(normalise_place(n) for n in [e["name"], *e.get("aliases", [])]))
            for e in entries
        ]

    @classmethod
    def builtin(cls) -> Gazetteer:
        raw = resources.files("dispatch.data").joinpath("gazetteer.json").read_text()
        return cls(json.loads(raw))

    def names(self) -> list[str]:
        return [e.point.label for e in self._entries]

    def search(self, query: str) -> list[Point]:
        """Exact name or alias first; otherwise every place whose name holds all the words."""
        q = normalise_place(query)
        if not q:
            return []
        exact = [e.point for e in self._entries if q in e.names]
        if exact:
            return exact[:MAX_CHOICES]
        tokens = [t for t in q.split() if t not in _STOP_TOKENS]
        if not tokens:
            return []
        matches = [e.point for e in self._entries
                   if any(all(t in name.split() for t in tokens) for name in e.names)]
        return matches[:MAX_CHOICES]

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
    """Coordinates and map links first, then the gazetteer, then the geocoder if configured."""

    def __init__(self, gazetteer: Gazetteer, geocoder: Geocoder | None = None) -> None:
        self.gazetteer = gazetteer
        self.geocoder = geocoder

    def resolve(self, text: str) -> list[Point]:
        point = parse_coordinates(text)
        if point:
            return [point]
        found = self.gazetteer.search(text)
        if found or self.geocoder is None:
            return found
        return self.geocoder.search(text)

    def spot_in_message(self, text: str) -> Point | None:
        """A location mentioned in passing (first message): no geocoder guesswork on chatter."""
        return parse_coordinates(text) or self.gazetteer.find_in_text(text)


__all__ = ["Gazetteer", "GeocoderUnavailable", "Locator", "MAX_CHOICES", "normalise_place"]
