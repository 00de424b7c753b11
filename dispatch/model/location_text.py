"""A location inside whatever a stranded rider pastes: coordinates in any notation, map links, Plus Codes.

Riders copy from whatever app they have: a GPS app's "37.7793° N, 122.4193° W", an iPhone's
"Dropped Pin" share, a Google Maps link with the place name in its path, a Plus Code off a map.
Everything here is pure text work (no network), so a short link is only *found* here; an adapter
follows its redirect and hands the final URL back to `parse_location`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from openlocationcode import openlocationcode as olc

from dispatch.model.geo import Point

# Phones, keyboards and word processors each have their own minus, prime and degree characters.
_SYMBOLS = str.maketrans({
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2012": "-", "\ufe63": "-", "\uff0d": "-",
    "\u2032": "'", "\u2019": "'", "\u2018": "'", "\u00b4": "'",
    "\u2033": '"', "\u201c": '"', "\u201d": '"',
    "\u00ba": "°", "\u02da": "°",
})
# A bare pair ("40.748, -73.985") needs this many decimals on both numbers: two decimals are a box a
# kilometre wide, too coarse to send a van to, and they are what prices ("25.50") and times ("10.30") have.
BARE_PAIR_MIN_DECIMALS = 3
# Google puts the whole address after a place's name; the name and the street are enough to say back.
MAX_LABEL_PARTS = 2

_NUMBER = r"(?<![\d.]){name}(?!\.\d)"


def _component(p: str) -> str:
    """One latitude or longitude: label, hemisphere and sign in any of the places people put them."""
    deg = _NUMBER.format(name=rf"(?P<{p}deg>\d{{1,3}}(?:\.(?P<{p}dec>\d+))?)")
    minutes = _NUMBER.format(name=rf"(?P<{p}min>\d{{1,2}}(?:\.\d+)?)")
    seconds = _NUMBER.format(name=rf"(?P<{p}sec>\d{{1,2}}(?:\.\d+)?)")
    return (
        rf"(?:(?P<{p}label>(?i:lat(?:itude)?|lng|lon(?:g(?:itude)?)?))\.?\s*[:=]?\s*)?"
        rf"(?:(?P<{p}pre>[NSEW])\s?|(?P<{p}pre_lc>[nsew]))?"
        rf"(?P<{p}sign>[-+])?\s?"
        rf"{deg}(?:\s?(?P<{p}degmark>°|(?i:deg(?:rees)?\b)))?"
        # minutes only after whole degrees; their mark may be left out after a degree mark ("40° 44.9 N")
        rf"(?({p}dec)|(?:\s?{minutes}\s?(?({p}degmark)'?|')(?:\s?{seconds}\s?\")?)?)"
        # a letter after the number only when none stood before it: "N 40.7 W 73.9" is N, then W
        rf"(?({p}pre)|(?({p}pre_lc)|(?:(?P<{p}post_lc>[nsew])(?![A-Za-z])|\s?(?P<{p}post>[NSEW])(?![A-Za-z]))?))"
    )


_PAIR = re.compile(rf"(?<![\w$€£.]){_component('a')}\s*[,;/]?\s*{_component('b')}(?!\s*%)")
_OLC_DIGIT = "[23456789CFGHJMPQRVWX]"
_PLUS_CODE = re.compile(rf"(?<![\w+])({_OLC_DIGIT}{{4,8}}\+{_OLC_DIGIT}{{0,3}})(?![\w+])", re.IGNORECASE)
_URL = re.compile(r"(?:https?://|geo:)[^\s<>\"]+|(?<![\w.@/])(?:[a-z0-9-]+\.)+[a-z]{2,}/[^\s<>\"]*",
                  re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""
_NEAR_LINE = re.compile(r"^\s*(Near\s.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_COORD_VALUE = re.compile(
    r"^\s*(?:loc:)?\s*(-?\d{1,3}(?:\.\d+)?)\s*,\s*(-?\d{1,3}(?:\.\d+)?)\s*(?:\((.*)\))?\s*$")
_GOOGLE_PIN = re.compile(r"!3d(-?\d{1,3}\.\d+)!4d(-?\d{1,3}\.\d+)")
_GOOGLE_AT = re.compile(r"@(-?\d{1,3}\.\d+),(-?\d{1,3}\.\d+)")
# Query parameters that carry the location itself, most specific first.
_LOCATION_PARAMS = ("ll", "q", "query", "destination", "daddr", "coordinate", "center", "sll")
# Names apps put where a place name would be when the rider dropped a pin rather than picked a place.
_NOT_A_NAME = {"dropped pin", "current location", "my location", "shared location", "marked location", "pin"}

# Hosts of short map links, each with the path its map links start with (goo.gl also shortens other things).
SHORT_LINK_HOSTS: Mapping[str, str] = {
    "maps.app.goo.gl": "/",
    "goo.gl": "/maps/",
    "maps.google.com": "/",
    "g.co": "/kgs/",
    "apple.co": "/",
    "maps.apple": "/",
}
# Where following a short link may lead: the map services themselves, never an arbitrary host.
REDIRECT_HOSTS = frozenset({
    "google.com", "www.google.com", "maps.google.com", "consent.google.com",
    "maps.app.goo.gl", "goo.gl", "g.co",
    "maps.apple.com", "maps.apple", "apple.co",
})


def coordinate_label(lat: float, lng: float) -> str:
    return f"{lat:.5f},{lng:.5f}"


def _valid(lat: float, lng: float) -> bool:
    return -90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0 and not (lat == 0.0 and lng == 0.0)


def _point(lat: float, lng: float, label: str | None = None) -> Point | None:
    if not _valid(lat, lng):
        return None
    return Point(lat, lng, label or coordinate_label(lat, lng))


# -- coordinates written out ------------------------------------------------------------------

def _value(m: re.Match, p: str) -> tuple[float, str | None, bool] | None:
    """(signed degrees, axis from its letter or label, whether anything marked it as a coordinate)."""
    degrees = float(m[f"{p}deg"])
    if m[f"{p}min"] is not None:
        if m[f"{p}dec"] is not None or float(m[f"{p}min"]) >= 60 or float(m[f"{p}sec"] or 0) >= 60:
            return None
        degrees += float(m[f"{p}min"]) / 60 + float(m[f"{p}sec"] or 0) / 3600
    letter = next((m[g].upper() for g in (f"{p}pre", f"{p}pre_lc", f"{p}post", f"{p}post_lc") if m[g]), None)
    label = (m[f"{p}label"] or "").lower()
    axis = {"N": "lat", "S": "lat", "E": "lng", "W": "lng"}.get(letter or "")
    if label:
        label_axis = "lat" if label.startswith("lat") else "lng"
        if axis and axis != label_axis:
            return None
        axis = label_axis
    negative = m[f"{p}sign"] == "-" or letter in ("S", "W")
    marked = bool(letter or label or m[f"{p}degmark"] or m[f"{p}min"] is not None)
    if not marked and len(m[f"{p}dec"] or "") < BARE_PAIR_MIN_DECIMALS:
        return None
    return (-degrees if negative else degrees), axis, marked


def _coordinates_in(text: str) -> Point | None:
    for m in _PAIR.finditer(text):
        first, second = _value(m, "a"), _value(m, "b")
        if first is None or second is None:
            continue
        if first[1] == "lng" or second[1] == "lat":
            first, second = second, first
        if first[1] == "lng" or second[1] == "lat":
            continue  # two latitudes or two longitudes: not a position
        point = _point(first[0], second[0])
        if point:
            return point
    return None


# -- map links --------------------------------------------------------------------------------

def _clean_url(raw: str) -> str:
    """Drop the sentence's punctuation after a link, but keep the ")" closing a geo: URI's "(label)"."""
    url = raw.rstrip(_TRAILING)
    while raw[len(url):].startswith(")") and url.count("(") > url.count(")"):
        url += ")"
    return url


def _name(value: str | None) -> str | None:
    name = ", ".join(" ".join(unquote_plus(value or "").split()).split(", ")[:MAX_LABEL_PARTS])
    if not name or name.lower() in _NOT_A_NAME or _COORD_VALUE.match(name) or _coordinates_in(name):
        return None
    return name


def _pair(value: str) -> tuple[float, float, str | None] | None:
    m = _COORD_VALUE.match(unquote_plus(value))
    return (float(m[1]), float(m[2]), _name(m[3])) if m else None


def _from_geo_uri(url: str) -> Point | None:
    """geo:lat,lng[;u=..][?q=lat,lng(label)]: Android's share; geo:0,0?q=... means "see q"."""
    body, _, query = url[len("geo:"):].partition("?")
    params = parse_qs(query)
    found = _pair(params["q"][0]) if "q" in params else None
    if found:
        return _point(found[0], found[1], found[2])
    own = _pair(",".join(body.split(";")[0].split(",")[:2]))  # drop altitude and ;u= uncertainty
    return _point(own[0], own[1]) if own else None


def _from_map_url(url: str, near_line: str | None) -> Point | None:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    path = unquote_plus(parts.path)
    place = re.search(r"/place/([^/@]+)", parts.path)
    place_name = _name(place[1]) if place else None
    label = place_name or _name(params.get("name")) or _name(params.get("q")) or _name(params.get("address"))
    label = label or near_line
    pin = _GOOGLE_PIN.search(url) or _GOOGLE_AT.search(path)
    if pin:
        return _point(float(pin[1]), float(pin[2]), label)
    for key in _LOCATION_PARAMS:
        found = _pair(params[key]) if key in params else None
        if found:
            return _point(found[0], found[1], found[2] or label)
    in_path = re.search(r"/(?:place|search|dir)/(?:[^/]*/)*?(-?\d{1,3}\.\d+),\s*(-?\d{1,3}\.\d+)", path)
    if in_path:
        return _point(float(in_path[1]), float(in_path[2]), label)
    return None


def _from_links(text: str) -> Point | None:
    near = _NEAR_LINE.search(text)
    # Apple's "Near <address>" line of a Dropped Pin share; "near 40.70,-74.00 <link>" is no address.
    near_line = " ".join(near[1].split()) if near and not (_URL.search(near[1]) or _coordinates_in(near[1])) \
        else None
    for raw in _URL.findall(text):
        url = _clean_url(raw)
        point = _from_geo_uri(url) if url.lower().startswith("geo:") else _from_map_url(url, near_line)
        if point:
            return point
    return None


# -- Plus Codes -------------------------------------------------------------------------------

def _from_plus_code(text: str, near: tuple[float, float] | None) -> Point | None:
    """Full codes stand alone; a short one ("Q23G+GF New York") is recovered near the service area."""
    for code in _PLUS_CODE.findall(text):
        if not olc.isValid(code):
            continue
        if olc.isShort(code):
            if near is None:
                continue
            code = olc.recoverNearest(code, near[0], near[1])
        if olc.isFull(code):
            area = olc.decode(code)
            return _point(round(area.latitudeCenter, 6), round(area.longitudeCenter, 6))
    return None


# -- public -----------------------------------------------------------------------------------

def parse_location(text: str, near: tuple[float, float] | None = None) -> Point | None:
    """The location a message carries, or None. Map links first: their parameters say which numbers
    are the place, where numbers in free text are only recognised by their shape."""
    text = (text or "").translate(_SYMBOLS).replace("''", '"')
    return (_from_links(text) or _from_plus_code(unquote(text), near) or _coordinates_in(text))


def find_short_link(text: str) -> str | None:
    """A map short link in the text, to be resolved by following its redirects (see `allowed_redirect_host`).

    Call `parse_location` first: a long link that already carries coordinates needs no request.
    """
    for raw in _URL.findall(text or ""):
        url = _clean_url(raw)
        full = url if "://" in url else f"https://{url}"
        parts = urlsplit(full)
        host = (parts.hostname or "").lower()
        prefix = SHORT_LINK_HOSTS.get(host)
        if prefix is None or not parts.path.startswith(prefix):
            continue
        if len(parts.path) > len(prefix) or parts.query:
            return full
    return None


def allowed_redirect_host(url: str) -> bool:
    """Whether a redirect from a short link may be followed to `url`: only to the map services."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and (parts.hostname or "").lower() in REDIRECT_HOSTS
            and port in (None, 80, 443))
