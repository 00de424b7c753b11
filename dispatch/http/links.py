"""Live links (PRODUCT.md §9): the rider's tracking page `/t/<token>` and the driver's job page
`/d/<token>`, with their JSON and the job page's actions.

No login: the token is the credential (dispatch.model.link), so every request is counted
against its token (and unknown tokens against the client's address) and refused with a 429
past the limit; a page shows only what §9 lists, never a phone number; the job page's actions
go through the same dispatcher rules as the driver's texts and stop with a 410 once the job is
closed or someone else's. Pages carry their own strict Content-Security-Policy (everything
from this service, tiles as images from the tile server) and never hand the token on in a
Referer.
"""
from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlsplit

import structlog
from flask import Blueprint, Response, jsonify, make_response, render_template, request, url_for
from redis.exceptions import RedisError

from dispatch import dispatcher as d
from dispatch.announcer import BOARD, about_rescue
from dispatch.http import error, services
from dispatch.http.sse import stream
from dispatch.links import Opened
from dispatch.model.geo import Point, valid_coordinates
from dispatch.model.link import DRIVER, RIDER
from dispatch.texts import page_words

log = structlog.get_logger(__name__)
bp = Blueprint("links", __name__)

WINDOW_SECONDS = 60
# Per token and minute. The job page posts a position at most every few seconds and polls
# its state; the tracking page polls every few seconds when it has no live stream.
READS_PER_MINUTE = 240
POSITIONS_PER_MINUTE = 30
ACTIONS_PER_MINUTE = 10
# A phone can claim any accuracy; beyond this it is not a position worth keeping.
MAX_ACCURACY_M = 50_000
POLL_SECONDS = 5
STREAM_BUSY_RETRY_SECONDS = 30
ACTIONS = {"arrived": "arrive", "done": "complete"}


class Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


@bp.errorhandler(Refused)
def refused(exc: Refused) -> Response:
    return exc.response


@bp.after_request
def private_page(response: Response) -> Response:
    """What a page reached by a secret URL needs: not cached or indexed, never framed, the token
    never sent on to another site, nothing loaded from anywhere but here (and the tiles)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        f"img-src 'self' data: {tile_source(services().settings.map_tiles_url)}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return response


def tile_source(template: str) -> str:
    """The CSP source that allows the tile server of MAP_TILES_URL (`{s}` subdomains as `*`)."""
    parts = urlsplit(template)
    host = parts.netloc.replace("{s}", "*")
    if parts.scheme not in ("http", "https") or not host or "{" in host:
        return f"{parts.scheme}:" if parts.scheme in ("http", "https") else ""
    return f"{parts.scheme}://{host}"


# -- opening a link ------------------------------------------------------------------------------
def _count(name: str, limit: int) -> bool:
    """One more in this window; whether it is over `limit`. Redis down: not counted (the
    token still decides, and locking riders out of their map would be worse)."""
    try:
        return services().limits.hit(name, WINDOW_SECONDS) > limit
    except RedisError:
        return False


def _misses_over(address: str) -> bool:
    try:
        return services().limits.count(f"link-miss:{address}", WINDOW_SECONDS) >= \
            services().settings.link_misses_per_minute
    except RedisError:
        return False


def _refuse(status: int, as_page: bool, lang: str) -> Refused:
    """404 (no such link) or 429 (over a limit): a page in the reader's language, or JSON."""
    if as_page:
        words = page_words(lang)
        message = words["too_many"] if status == 429 else words["not_found"]
        return Refused(make_response(render_template("links/gone.html", w=words, message=message), status))
    return Refused(error("no such link" if status == 404 else "too many requests; wait a minute", status))


def _page_lang() -> str:
    return request.accept_languages.best_match(["en", "es"]) or "en"


def open_link(token: str, party: str, kind: str, limit: int, as_page: bool = False) -> Opened:
    """The link behind `token`, counted against its limit; raises Refused (404, 429)."""
    svc = services()
    address = request.remote_addr or "unknown"
    if _misses_over(address):
        raise _refuse(429, as_page, _page_lang())
    opened = svc.links.open(token, party)
    if opened is None:
        _count(f"link-miss:{address}", svc.settings.link_misses_per_minute)
        raise _refuse(404, as_page, _page_lang())
    if _count(f"link:{opened.link.token_hash[:32]}:{kind}", limit):
        raise _refuse(429, as_page, _lang(opened))
    return opened


def _lang(opened: Opened) -> str:
    if opened.link.party == RIDER:
        return opened.rescue.language
    return opened.driver.language if opened.driver else "en"


def _page_config(**values: Any) -> dict[str, Any]:
    s = services().settings
    area = s.service_area
    return {"tilesUrl": s.map_tiles_url, "area": {"lat": area.lat, "lng": area.lng, "radius_km": area.radius_km},
            "pollSeconds": POLL_SECONDS, **values}


# -- the rider's tracking page -------------------------------------------------------------------
def rider_state(opened: Opened) -> dict[str, Any]:
    return services().tracking.rider_view(opened.rescue, opened.driver)


@bp.get("/t/<token>")
def track_page(token: str):
    opened = open_link(token, RIDER, "read", READS_PER_MINUTE, as_page=True)
    words = page_words(_lang(opened))
    config = _page_config(state=rider_state(opened), stateUrl=url_for("links.track_state", token=token),
                          eventsUrl=url_for("links.track_events", token=token))
    return render_template("links/track.html", w=words, state=config["state"], config=config)


@bp.get("/t/<token>/state.json")
def track_state(token: str):
    return jsonify(rider_state(open_link(token, RIDER, "read", READS_PER_MINUTE)))


@bp.get("/t/<token>/events")
def track_events(token: str):
    """Server-Sent Events: the page's new state whenever its rescue changes (a position, a
    status). With no stream to spare here the page polls state.json instead."""
    svc = services()
    opened = open_link(token, RIDER, "read", READS_PER_MINUTE)
    last: dict[str, Any] = {"state": rider_state(opened)}

    def render(change: dict[str, Any]) -> dict[str, Any] | None:
        if not about_rescue(change, opened.rescue.id):
            return None
        try:
            now = svc.links.reopen(opened.link)
            state = rider_state(now) if now else None
        except Exception as exc:  # noqa: BLE001 - a store hiccup skips one update; the page polls as well
            log.warning("track_stream_render_failed", error=type(exc).__name__)
            return None
        if state is None or state == last["state"]:
            return None
        last["state"] = state
        return state

    response = stream(svc.feed, [BOARD], "state", render)
    if response is None:
        busy = jsonify({"error": "no live stream to spare; poll state.json"})
        busy.status_code, busy.headers["Retry-After"] = 503, str(STREAM_BUSY_RETRY_SECONDS)
        return busy
    return response


# -- the driver's job page -----------------------------------------------------------------------
def job_state(opened: Opened) -> dict[str, Any]:
    """The job page's live part. A job that went to someone else shows no status of theirs."""
    rescue, mine = opened.rescue, opened.rescue.driver_id == opened.link.driver_id
    return {"live": opened.live, "status": rescue.status if mine else None,
            "eta_minutes": services().tracking.eta_minutes(rescue, opened.driver) if opened.live else None}


def _navigation(point: dict[str, Any] | None) -> dict[str, str] | None:
    if not point:
        return None
    at = f"{float(point['lat']):.6f},{float(point['lng']):.6f}"
    return {"label": point.get("label") or at, "lat": float(point["lat"]), "lng": float(point["lng"]),
            "google": f"https://www.google.com/maps/dir/?api=1&destination={at}&travelmode=driving",
            "apple": f"https://maps.apple.com/?daddr={at}&dirflg=d"}


@bp.get("/d/<token>")
def job_page(token: str):
    opened = open_link(token, DRIVER, "read", READS_PER_MINUTE, as_page=True)
    words, state = page_words(_lang(opened)), job_state(opened)
    rescue = opened.rescue
    job = None
    if opened.live:  # the rider's places are shown only to the driver who holds the job
        job = {"code": rescue.code, "problem": rescue.problem, "pickup": _navigation(rescue.pickup),
               "dropoff": _navigation(rescue.dropoff)}
    config = _page_config(state=state, job=job, stateUrl=url_for("links.job_state_json", token=token),
                          locationUrl=url_for("links.job_location", token=token),
                          actionUrls={name: f"{url_for('links.job_page', token=token)}/{name}" for name in ACTIONS})
    html = render_template("links/job.html", w=words, state=state, job=job, code=rescue.code, config=config)
    return html, 200 if opened.live else 410


@bp.get("/d/<token>/state.json")
def job_state_json(token: str):
    return jsonify(job_state(open_link(token, DRIVER, "read", READS_PER_MINUTE)))


def _json_object() -> dict[str, Any]:
    """The request's JSON object, or Refused(400). Parsed here rather than by Flask so that a
    body nested too deep for the parser is a 400 like any other bad body."""
    if not request.is_json:
        raise Refused(error("send a JSON object (Content-Type: application/json)", 400))
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, RecursionError):
        raise Refused(error("body is not valid JSON", 400)) from None
    if not isinstance(body, dict):
        raise Refused(error("body must be a JSON object", 400))
    return body


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _job_error(message: str, code: int, fields: dict[str, Any]) -> Response:
    """An error with the job's state beside it, so the page can show where things stand."""
    response = jsonify({"error": message, **fields})
    response.status_code = code
    return response


def _still_yours(opened: Opened) -> None:
    if not opened.live:
        raise Refused(_job_error("this job link no longer accepts changes", 410, job_state(opened)))


@bp.post("/d/<token>/location")
def job_location(token: str):
    """{"lat", "lng", "accuracy"}: the driver's position from the job page."""
    opened = open_link(token, DRIVER, "position", POSITIONS_PER_MINUTE)
    _still_yours(opened)
    body = _json_object()
    lat, lng = _number(body, "lat"), _number(body, "lng")
    if lat is None or lng is None or not valid_coordinates(lat, lng):
        return error("lat and lng must be numbers: a real position in degrees", 400, field="lat")
    accuracy = None
    if body.get("accuracy") is not None:
        accuracy = _number(body, "accuracy")
        if accuracy is None or not 0 <= accuracy <= MAX_ACCURACY_M:
            return error(f"accuracy must be metres, 0..{MAX_ACCURACY_M}", 400, field="accuracy")
    svc = services()
    svc.dispatcher.update_location(opened.driver, Point(lat, lng, f"{lat:.5f},{lng:.5f}"), accuracy_m=accuracy)
    return jsonify(job_state(svc.links.reopen(opened.link) or opened))


@bp.post("/d/<token>/arrived", defaults={"name": "arrived"})
@bp.post("/d/<token>/done", defaults={"name": "done"})
def job_action(token: str, name: str):
    """The job page's buttons: the same dispatcher rule as the ARRIVED / DONE texts."""
    opened = open_link(token, DRIVER, "action", ACTIONS_PER_MINUTE)
    _still_yours(opened)
    _json_object()
    result = services().dispatcher.job_action(opened.driver, ACTIONS[name])
    match result:
        case d.JobProgress(_, rescue, repeat):
            return jsonify({"status": rescue.status, "repeat": repeat})
        case d.JobRefused(_, rescue):
            state = job_state(services().links.reopen(opened.link) or opened)
            return _job_error(f"cannot do that while the job is {state['status']}", 409, state)
    return _job_error("this job link no longer accepts changes", 410, {"live": False, "status": None})
