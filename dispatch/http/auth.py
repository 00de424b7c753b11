"""Who may use the admin API and the pages: the admin token (shared by the API, /metrics, the
status page login and the sandbox outbox: one comparison, one guessing limit) and the status
page's session with its CSRF token.

The comparison is constant-time. Wrong tokens are counted per client address in a
one-minute window; an address over the limit is refused without a comparison until the
window ends, so guessing runs at a few tries a minute whichever door is knocked on. Only
wrong tokens count: a dispatcher's scripts using the right one are never slowed. If Redis
is down the limit is skipped (the comparison still decides): locking dispatchers out
during an outage would be worse than a minute of unthrottled guessing.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from flask import request, session
from redis.exceptions import RedisError

from dispatch.http import services

WINDOW_SECONDS = 60


class TooManyWrongTokens(Exception):
    """This address guessed wrong too often in the current window."""


def token_ok(given: str) -> bool:
    """Whether `given` is the admin token (raises TooManyWrongTokens past the guessing limit)."""
    svc = services()
    token, limits = svc.settings.admin_token, svc.limits
    name = f"admin-token:{request.remote_addr or 'unknown'}"
    try:
        if limits.count(name, WINDOW_SECONDS) >= svc.settings.admin_token_tries_per_minute:
            raise TooManyWrongTokens(request.remote_addr)
    except RedisError:
        pass
    if token and hmac.compare_digest(given.encode(), token.encode()):
        return True
    if given:  # no token at all is not a guess (a browser without a session, say)
        try:
            limits.hit(name, WINDOW_SECONDS)
        except RedisError:
            pass
    return False


def bearer_ok() -> bool:
    header = request.headers.get("Authorization", "")
    return token_ok(header[7:] if header.startswith("Bearer ") else "")


# -- the status page's session ------------------------------------------------------------------
SESSION_HOURS = 12


def session_secret(admin_token: str | None, secret_key: str | None) -> str:
    """SECRET_KEY if set; else derived from the admin token, so every process agrees and
    changing the token logs everyone out."""
    if secret_key:
        return secret_key
    return hmac.new((admin_token or "").encode(), b"supportcarr-session", hashlib.sha256).hexdigest()


def logged_in() -> bool:
    return bool(session.get("admin")) and time.time() < float(session.get("expires", 0))


def start_session() -> None:
    session.clear()
    session.update(admin=True, expires=time.time() + SESSION_HOURS * 3600, csrf=secrets.token_urlsafe(24))
    session.permanent = True


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def csrf_ok() -> bool:
    given = request.headers.get("X-CSRF-Token") or request.form.get("csrf") or ""
    return bool(session.get("csrf")) and hmac.compare_digest(given.encode(), session["csrf"].encode())
