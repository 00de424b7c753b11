"""The dispatcher's pages: login, the live status page, the sandbox phone simulator and outbox.

Pages carry no data of their own: they fetch the admin JSON API with the session cookie
and a CSRF token, so every action from a page goes through the same rules as the API.
"""
from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, session, url_for

from dispatch.http import services
from dispatch.http.auth import (
    TooManyWrongTokens,
    choose_language,
    csrf_ok,
    csrf_token,
    logged_in,
    session_identity,
    sign_in,
    start_session,
    token_ok,
)
from dispatch.model.clock import iso
from dispatch.model.phones import sender_key
from dispatch.model.rescue import STATUSES
from dispatch.texts import ENGLISH, LANGUAGES, SPANISH, STATUS, page_words

bp = Blueprint("web", __name__)

THREAD_MESSAGES = 200
OUTBOX_ROWS = 100


def _browser_language() -> str:
    """Nobody is signed in on the login page, so the browser's own preference decides."""
    return request.accept_languages.best_match(LANGUAGES) or ENGLISH


def _login(error: str | None = None, status: int = 200) -> tuple[str, int]:
    w = page_words(_browser_language(), STATUS)
    return render_template("login.html", csrf=csrf_token(), w=w, error=w["login"][error] if error else None), status


@bp.get("/login")
def login_page():
    return _login()


@bp.post("/login")
def login():
    if not csrf_ok():
        abort(400)
    try:
        identity = sign_in(request.form.get("username", "").strip(), request.form.get("password", ""))
    except TooManyWrongTokens:
        return _login("too_many", 429)
    if identity is None:
        return _login("wrong", 401)
    start_session(identity)
    return redirect(url_for("web.status_page"))


@bp.post("/logout")
def logout():
    if csrf_ok():
        session.clear()
    return redirect(url_for("web.login_page"))


@bp.get("/")
def status_page():
    if not logged_in():
        return redirect(url_for("web.login_page"))
    s = services().settings
    me, area = session_identity(), s.service_area
    config = {"username": me.username, "role": me.role, "tilesUrl": s.map_tiles_url,
              "area": {"lat": area.lat, "lng": area.lng, "radius_km": area.radius_km}}
    # The switch offers the other language in that language: its reader may not read this one.
    other = ENGLISH if me.language == SPANISH else SPANISH
    return render_template("status.html", csrf=csrf_token(), sandbox=s.sandbox, me=me, config=config,
                           statuses=STATUSES, w=page_words(me.language, STATUS), other_language=other,
                           switch_title=page_words(other, STATUS)["nav"]["switch"])


@bp.post("/language")
def set_language():
    """A page form rather than PATCH /api/dispatchers: that is an admin's change to someone's
    account, while everyone signed in, a viewer too, picks their own language."""
    if not csrf_ok():
        abort(400)
    me = session_identity()
    if me is None:
        return redirect(url_for("web.login_page"))
    lang = request.form.get("lang", "")
    if lang not in LANGUAGES:
        abort(400)
    choose_language(me, lang)
    return redirect(url_for("web.status_page"))


@bp.get("/simulator")
def simulator_page():
    if not services().settings.sandbox:
        abort(404)
    if not logged_in():
        return redirect(url_for("web.login_page"))
    return render_template("simulator.html", csrf=csrf_token())


@bp.get("/simulator/messages")
def simulator_messages():
    """The simulated phone's thread: what it sent and what the service sent it."""
    svc = services()
    if not svc.settings.sandbox:
        abort(404)
    if not logged_in():
        abort(401)
    phone = sender_key(request.args.get("phone", ""), svc.settings.default_region)
    docs = svc.messages.thread(phone, THREAD_MESSAGES) if phone else []
    return jsonify({"messages": [{"direction": m["direction"], "body": m["body"], "status": m["status"],
                                  "at": iso(m["created_at"])} for m in docs]})


@bp.get("/sandbox/outbox")
def sandbox_outbox():
    svc = services()
    if not svc.settings.sandbox:
        abort(404)
    try:
        if not token_ok(request.args.get("token", "")):
            abort(401)
    except TooManyWrongTokens:
        abort(429)
    return render_template("sandbox_outbox.html", messages=svc.messages.newest(OUTBOX_ROWS))
