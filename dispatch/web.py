"""The dispatcher's pages: login, the live status page, and the sandbox phone simulator.

Pages carry no data of their own: they fetch the admin JSON API with the session cookie
and a CSRF token, so every action from a page goes through the same rules as the API.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, session, url_for

from dispatch.admin_auth import TooManyWrongTokens, token_ok
from dispatch.clock import iso
from dispatch.phones import sender_key

bp = Blueprint("web", __name__)

SESSION_HOURS = 12


def services():
    return current_app.extensions["supportcarr"]


def session_secret(admin_token: str | None, secret_key: str | None) -> str:
    """SECRET_KEY if set; else derived from the admin token, so every process agrees and
    changing the token logs everyone out."""
    if secret_key:
        return secret_key
    return hmac.new((admin_token or "").encode(), b"supportcarr-session", hashlib.sha256).hexdigest()


def logged_in() -> bool:
    return bool(session.get("admin")) and time.time() < float(session.get("expires", 0))


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def csrf_ok() -> bool:
    given = request.headers.get("X-CSRF-Token") or request.form.get("csrf") or ""
    return bool(session.get("csrf")) and hmac.compare_digest(given.encode(), session["csrf"].encode())


@bp.get("/login")
def login_page():
    return render_template("login.html", csrf=csrf_token(), error=None)


@bp.post("/login")
def login():
    if not csrf_ok():
        abort(400)
    svc = services()
    try:
        ok = token_ok(svc.redis, svc.settings.admin_token, request.form.get("token", "") or " ", request.remote_addr,
                      svc.settings.admin_token_tries_per_minute)
    except TooManyWrongTokens:
        return render_template("login.html", csrf=csrf_token(), error="Too many attempts; wait a minute."), 429
    if not ok:
        return render_template("login.html", csrf=csrf_token(), error="That token is not right."), 401
    session.clear()
    session.update(admin=True, expires=time.time() + SESSION_HOURS * 3600, csrf=secrets.token_urlsafe(24))
    session.permanent = True
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
    return render_template("status.html", csrf=csrf_token(), area=s.service_area, sandbox=s.sandbox)


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
    if not services().settings.sandbox:
        abort(404)
    if not logged_in():
        abort(401)
    phone = sender_key(request.args.get("phone", ""), services().settings.default_region)
    docs = services().db.messages.find({"phone": phone}).sort("created_at", 1).limit(200) if phone else []
    return jsonify({"messages": [{"direction": m["direction"], "body": m["body"], "status": m["status"],
                                  "at": iso(m["created_at"])} for m in docs]})
