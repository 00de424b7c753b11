"""dispatch.model.location_text: locations as riders paste them, and the texts that are not locations."""
from __future__ import annotations

import pytest

from dispatch.model.location_text import (
    REDIRECT_HOSTS,
    SHORT_LINK_HOSTS,
    allowed_redirect_host,
    find_short_link,
    parse_location,
)

SF = (37.7793, -122.4193, "37.77930,-122.41930")
SF_DMS = (37.779306, -122.419306, "37.77931,-122.41931")
ESB = (40.7484, -73.9857, "40.74840,-73.98570")
NEAR_MANHATTAN = (40.78, -73.97)
TOLERANCE_DEG = 1e-5
# Copied from the apps' share sheets: the pin's own position (!3d/!4d) differs from the map's centre (@).
GOOGLE_PLACE = ("https://www.google.com/maps/place/Empire+State+Building/@40.7484405,-73.9878531,17z/"
                "data=!3m1!4b1!4m6!3m5!1s0x89c259a9b3117469:0xd134e199a405a163!8m2!3d40.7484405"
                "!4d-73.9856644!16zL20vMDJuZDg")
APPLE_PLACE = ("https://maps.apple.com/?address=350%205th%20Ave,%20New%20York,%20NY%2010118"
               "&ll=40.748440,-73.985664&q=Empire%20State%20Building")
DROPPED_PIN = ("Dropped Pin\nNear 350 5th Ave, New York, NY 10118\n"
               "https://maps.apple.com/?ll=40.748440,-73.985664&q=Dropped%20Pin&t=m")

CASES = [
    # coordinates, every notation riders use
    ("37.7793,-122.4193", *SF),
    ("37.7793, -122.4193", *SF),
    ("37.7793 -122.4193", *SF),
    ("37.7793;-122.4193", *SF),
    ("37.7793 ; -122.4193", *SF),
    ("37.7793/-122.4193", *SF),
    ("lat 37.7793 long -122.4193", *SF),
    ("Lat: 37.7793 Lng: -122.4193", *SF),
    ("latitude=37.7793, longitude=-122.4193", *SF),
    ("lat 37.7793 lon -122.4193", *SF),
    ("lng -122.4193 lat 37.7793", *SF),
    ("37.7793° N, 122.4193° W", *SF),
    ("37.7793°N 122.4193°W", *SF),
    ("37.7793 N 122.4193 W", *SF),
    ("37.7793N,122.4193W", *SF),
    ("37.7793n 122.4193w", *SF),
    ("N 37.7793 W 122.4193", *SF),
    ("N37.7793, W122.4193", *SF),
    ("122.4193° W, 37.7793° N", *SF),
    ("37.7793 degrees N 122.4193 degrees W", *SF),
    ("37.7793, \u2212122.4193", *SF),                      # unicode minus
    ("37.7793, \u2013122.4193", *SF),                      # en dash
    ("37.7793, \uff0d122.4193", *SF),                      # full-width hyphen
    ("37°46'45.5\"N 122°25'09.5\"W", *SF_DMS),
    ("37°46\u203245.5\u2033N 122°25\u203209.5\u2033W", *SF_DMS),   # primes
    ("37º46'45.5\"N 122º25'09.5\"W", *SF_DMS),             # masculine ordinal for degrees
    ("37° 46' 45.5\" N, 122° 25' 9.5\" W", *SF_DMS),
    ("37°46'45.5''N 122°25'09.5''W", *SF_DMS),             # two apostrophes for seconds
    ("40°44.904'N 73°59.142'W", *ESB),                      # degrees and decimal minutes
    ("40° 44.904 N, 73° 59.142 W", *ESB),                   # ... with the minutes' mark left out
    ("40 deg 44.904 N, 73 deg 59.142 W", *ESB),
    ("S 33.8688 E 151.2093", -33.8688, 151.2093, "-33.86880,151.20930"),
    ("im at 40.7484,-73.9857 flat tire pls hurry", *ESB),
    ("40.7484,-73.9857 n broadway", *ESB),
    ("my location: 40.74840, -73.98570 (accuracy 12 m)", *ESB),
    ("+40.7484, -73.9857", *ESB),
    ("I'm at 40.7484,-73.9857.", *ESB),                    # a sentence's full stop
    ("(40.7484,-73.9857)", *ESB),
    # Google Maps
    (GOOGLE_PLACE, 40.7484405, -73.9856644, "Empire State Building"),
    ("https://www.google.com/maps/place/Joe's+Pizza/@40.7305,-74.0021,17z", 40.7305, -74.0021, "Joe's Pizza"),
    ("https://www.google.com/maps/place/Caf%C3%A9+Lalo/@40.7838,-73.9786,15z",
     40.7838, -73.9786, "Café Lalo"),
    ("https://www.google.com/maps/place/Bryant+Park,+New+York,+NY+10018/@40.7536,-73.9832,17z",
     40.7536, -73.9832, "Bryant Park, New York"),
    # a dropped pin's "name" in a Google link is its own coordinates: say the coordinates back
    ("https://www.google.com/maps/place/40%C2%B044'54.2%22N+73%C2%B059'08.5%22W/@40.748387,-73.985694,17z",
     40.748387, -73.985694, "40.74839,-73.98569"),
    ("https://www.google.com/maps/@40.7484,-73.9857,15z", *ESB),
    ("https://maps.google.com/?q=40.7484,-73.9857", *ESB),
    ("https://maps.google.com/maps?q=loc:40.7484,-73.9857", *ESB),
    ("https://maps.google.com/?ll=40.7484,-73.9857&z=16", *ESB),
    ("https://www.google.com/maps/search/?api=1&query=40.7484%2C-73.9857", *ESB),
    ("https://www.google.com/maps/dir/?api=1&destination=40.7484,-73.9857", *ESB),
    ("https://www.google.com/maps/search/40.7484,+-73.9857", *ESB),
    ("come get me https://maps.google.com/?q=40.7484,-73.9857.", *ESB),   # sentence punctuation
    ("https://maps.google.com/?q=40.7484,-73.9857(My+bike)", 40.7484, -73.9857, "My bike"),
    # Apple Maps
    ("https://maps.apple.com/?ll=40.7484,-73.9857", *ESB),
    ("https://maps.apple.com/?q=40.7484,-73.9857", *ESB),
    (APPLE_PLACE, 40.74844, -73.985664, "Empire State Building"),
    ("https://maps.apple.com/?address=350%205th%20Ave,%20New%20York&ll=40.748440,-73.985664",
     40.74844, -73.985664, "350 5th Ave, New York"),
    (DROPPED_PIN, 40.74844, -73.985664, "Near 350 5th Ave, New York, NY 10118"),
    ("Dropped Pin\nhttps://maps.apple.com/?ll=40.748440,-73.985664&q=Dropped%20Pin&t=m",
     40.74844, -73.985664, "40.74844,-73.98566"),
    ("https://maps.apple.com/place?coordinate=40.7484,-73.9857&name=Empire%20State%20Building",
     40.7484, -73.9857, "Empire State Building"),
    # geo: URIs (Android shares)
    ("geo:40.7484,-73.9857", *ESB),
    ("geo:40.7484,-73.9857;u=35", *ESB),
    ("geo:40.7484,-73.9857,12.5", *ESB),
    ("geo:0,0?q=40.7484,-73.9857(Empire+State+Building)", 40.7484, -73.9857, "Empire State Building"),
    ("sent from my phone: geo:40.7484,-73.9857?z=17", *ESB),
    # Plus Codes (full codes stand alone; short ones are recovered near the service area)
    ("87G8Q23G+GF", 40.753812, -73.973813, "40.75381,-73.97381"),
    ("87g8q23g+gf", 40.753812, -73.973813, "40.75381,-73.97381"),
    ("Q23G+GF New York", 40.753812, -73.973813, "40.75381,-73.97381"),
    ("im at Q23G+GF", 40.753812, -73.973813, "40.75381,-73.97381"),
    ("https://plus.codes/87G8Q23G+GF", 40.753812, -73.973813, "40.75381,-73.97381"),
]


@pytest.mark.parametrize("text, lat, lng, label", CASES)
def test_parse_location(text, lat, lng, label):
    point = parse_location(text, near=NEAR_MANHATTAN)
    assert point is not None, text
    assert point.lat == pytest.approx(lat, abs=TOLERANCE_DEG)
    assert point.lng == pytest.approx(lng, abs=TOLERANCE_DEG)
    assert point.label == label


def test_there_are_enough_realistic_cases():
    assert len(CASES) >= 60


@pytest.mark.parametrize("text", [
    "", "   ", "help my bike broke", "10:30", "at 10:30 pm near the park", "$25.50",
    "that was $25.50, 12.75 tip",
    "2, 3", "1.5, 2.5", "10.30, 11.45", "212-555-0123", "+1 212.555.0123", "(212) 555-0123",
    "12.05.2024", "2024-05-12", "12/05/2024", "version 17.4.1", "iOS 17.4, 16.2", "0,0", "0.000,0.000",
    "91.1234,10.1234", "45.1234,181.1234", "37°75'00\"N 122°25'09\"W",        # 75 minutes
    "40.7484 N, 73.9857 N",                                                    # two latitudes
    "https://www.google.com/maps/place/Empire+State+Building",                # a name, no position
    "https://maps.app.goo.gl/abc123", "geo:0,0?q=Empire+State+Building",
])
def test_not_a_location(text):
    assert parse_location(text, near=NEAR_MANHATTAN) is None


def test_short_plus_code_needs_a_reference_point():
    assert parse_location("Q23G+GF New York") is None
    assert parse_location("87G8Q23G+GF") is not None


def test_links_win_over_numbers_in_the_text():
    point = parse_location("at 10.123, 20.456? no: https://maps.google.com/?q=40.7484,-73.9857")
    assert (point.lat, point.lng) == (40.7484, -73.9857)


def test_a_line_starting_with_near_is_only_a_label_when_it_is_an_address():
    point = parse_location("near 40.7000,-74.0000 https://maps.apple.com/?ll=40.7484,-73.9857")
    assert (point.lat, point.lng, point.label) == ESB


@pytest.mark.parametrize("text", ["broke down 12.03.2024, 10.30 near times sq", "firmware 1.2.3,4.5"])
def test_dotted_numbers_are_neither_a_location_nor_a_crash(text):
    assert parse_location(text, near=NEAR_MANHATTAN) is None


@pytest.mark.parametrize("text, link", [
    ("https://maps.app.goo.gl/Xy12abCD34", "https://maps.app.goo.gl/Xy12abCD34"),
    ("here: https://maps.app.goo.gl/Xy12abCD34.", "https://maps.app.goo.gl/Xy12abCD34"),
    ("maps.app.goo.gl/Xy12abCD34", "https://maps.app.goo.gl/Xy12abCD34"),
    ("https://goo.gl/maps/AbC123", "https://goo.gl/maps/AbC123"),
    ("https://maps.google.com/?cid=1234567890", "https://maps.google.com/?cid=1234567890"),
    ("https://g.co/kgs/AbC123", "https://g.co/kgs/AbC123"),
    ("https://apple.co/3xYz", "https://apple.co/3xYz"),
    ("https://maps.apple/p/AbCdEf", "https://maps.apple/p/AbCdEf"),
])
def test_find_short_link(text, link):
    assert find_short_link(text) == link


@pytest.mark.parametrize("text", [
    "", "no link here", "https://goo.gl/AbC123",      # goo.gl outside /maps/ is not a map
    "https://g.co/other", "https://example.com/maps/abc", "https://maps.app.goo.gl/",
    "https://evil.com/?u=maps.app.goo.gl/abc",
])
def test_no_short_link(text):
    assert find_short_link(text) is None


def test_short_link_hosts_are_all_map_hosts_we_may_follow():
    assert set(SHORT_LINK_HOSTS) <= REDIRECT_HOSTS


@pytest.mark.parametrize("url, allowed", [
    ("https://www.google.com/maps/place/X/@40.7,-73.9,17z", True),
    ("https://maps.google.com/?q=40.7,-73.9", True),
    ("https://google.com/maps", True),
    ("https://maps.apple.com/?ll=40.7,-73.9", True),
    ("http://goo.gl/maps/abc", True),
    ("https://maps.app.goo.gl/abc", True),
    ("https://evil.com/maps", False),
    ("https://google.com.evil.com/", False),
    ("https://www.google.com@evil.com/", False),
    ("https://maps.google.com:8080/", False),
    ("ftp://maps.google.com/", False),
    ("javascript:alert(1)", False),
    ("http://127.0.0.1/", False),
    ("not a url", False),
    ("https://maps.google.com:99999/", False),
])
def test_allowed_redirect_host(url, allowed):
    assert allowed_redirect_host(url) is allowed
