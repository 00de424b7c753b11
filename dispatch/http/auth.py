"""Who may use the admin API and the pages, and what their role lets them do (PRODUCT.md §8).

Two ways in. The admin token (shared by the API, /metrics, the sandbox outbox, and the login
form with the username left empty: one comparison, one guessing limit) acts as the built-in
administrator. A dispatcher account signs in on the login form with its username and password
(werkzeug's scrypt hash) and gets the status page's session with a CSRF token; its role is read
from the account on every request, so a demotion or a deactivation takes effect at once.

The token comparison is constant-time. Wrong tokens and wrong passwords are counted per client
address in a one-minute window; an address over the limit is refused without a comparison
until the window ends, so guessing runs at a few tries a minute whichever door is knocked on.
Only wrong guesses count: a dispatcher's scripts using the right token are never slowed. If
Redis is down the limit is skipped (the comparison still decides): locking dispatchers out
during an outage would be worse than a minute of unthrottled guessing.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from functools import cache

from flask import g, request, session
from redis.exceptions import RedisError
from werkzeug.security import check_password_hash, generate_password_hash

from dispatch.http import error, services
from dispatch.model.account import ADMIN, BUILTIN_ADMIN, DISPATCHER, VIEWER, Account, Identity, may
from dispatch.texts import language

WINDOW_SECONDS = 60
PASSWORD_METHOD = "scrypt"

# What each admin API route needs beyond reading. Reads need `viewer`; a change not listed
# here needs `admin`, so a new route is closed until it is given a role.
ROLE_OF = {
    "api.assign_rescue": DISPATCHER,
    "api.cancel_rescue": DISPATCHER,
    "api.message_party": DISPATCHER,
    "api.resend_payment_link": DISPATCHER,
    "api.resolve_help_request": DISPATCHER,
    "accounts.list_dispatchers": ADMIN,
}
READ_METHODS = ("GET", "HEAD", "OPTIONS")


class TooManyWrongTokens(Exception):
    """This address guessed wrong too often in the current window."""


def _limit_name() -> str:
    return f"admin-token:{request.remote_addr or 'unknown'}"


def _guarded(given: str, check: Callable[[], bool]) -> bool:
    """`check()` under the per-address guessing limit; a failed non-empty guess counts."""
    svc = services()
    try:
        if svc.limits.count(_limit_name(), WINDOW_SECONDS) >= svc.settings.admin_token_tries_per_minute:
            raise TooManyWrongTokens(request.remote_addr)
    except RedisError:
        pass
    if check():
        return True
    if given:  # no token at all is not a guess (a browser without a session, say)
        try:
            services().limits.hit(_limit_name(), WINDOW_SECONDS)
        except RedisError:
            pass
    return False


def token_ok(given: str) -> bool:
    """Whether `given` is the admin token (raises TooManyWrongTokens past the guessing limit)."""
    token = services().settings.admin_token
    return _guarded(given, lambda: bool(token) and hmac.compare_digest(given.encode(), token.encode()))


def bearer_ok() -> bool:
    header = request.headers.get("Authorization", "")
    return token_ok(header[7:] if header.startswith("Bearer ") else "")


# -- passwords ----------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


@cache
def _decoy_hash() -> str:
    """Checked for unknown usernames, so a wrong name takes as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


def sign_in(username: str, password: str) -> Identity | None:
    """The identity these credentials prove (raises TooManyWrongTokens past the guessing limit).

    An empty username with the admin token as the password is the built-in administrator."""
    if not username:
        return Identity(BUILTIN_ADMIN, ADMIN) if token_ok(password or " ") else None
    account = services().accounts.by_username(username)

    def check() -> bool:
        ok = check_password_hash(account.password_hash if account else _decoy_hash(), password)
        return ok and account is not None and account.active

    return account.identity if _guarded(password or " ", check) else None


# -- the status page's session ------------------------------------------------------------------
SESSION_HOURS = 12


def session_secret(admin_token: str | None, secret_key: str | None) -> str:
    """SECRET_KEY if set; else derived from the admin token, so every process agrees and
    changing the token logs everyone out."""
    if secret_key:
        return secret_key
    return hmac.new((admin_token or "").encode(), b"supportcarr-session", hashlib.sha256).hexdigest()


# The built-in administrator has no account to keep a language on: its session keeps it.
LANGUAGE_KEY = "lang"


def session_identity() -> Identity | None:
    """The signed-in person, with the role their account has now (None when signed out)."""
    if "identity" in g:
        return g.identity
    found = None
    username = session.get("user")
    if username and time.time() < float(session.get("expires", 0)):
        if username == BUILTIN_ADMIN:
            found = Identity(BUILTIN_ADMIN, ADMIN, language(session.get(LANGUAGE_KEY)))
        else:
            account: Account | None = services().accounts.by_username(username)
            found = account.identity if account and account.active else None
    g.identity = found
    return found


def choose_language(identity: Identity, lang: str) -> None:
    """Keep `lang` as the signed-in person's language: on their account, so it follows them to
    any browser; the built-in administrator's in the session."""
    if identity.username == BUILTIN_ADMIN:
        session[LANGUAGE_KEY] = lang
    else:
        account = services().accounts.by_username(identity.username)
        if account is not None:
            services().accounts.update(account.id, {"language": lang})
    g.pop("identity", None)


def logged_in() -> bool:
    return session_identity() is not None


def start_session(identity: Identity) -> None:
    session.clear()
    session.update(user=identity.username, expires=time.time() + SESSION_HOURS * 3600,
                   csrf=secrets.token_urlsafe(24))
    session.permanent = True
    g.identity = identity


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def csrf_ok() -> bool:
    given = request.headers.get("X-CSRF-Token") or request.form.get("csrf") or ""
    return bool(session.get("csrf")) and hmac.compare_digest(given.encode(), session["csrf"].encode())


# -- the admin API's door -----------------------------------------------------------------------
def needed_role() -> str:
    if request.endpoint in ROLE_OF:
        return ROLE_OF[request.endpoint]
    return VIEWER if request.method in READ_METHODS else ADMIN


def acting() -> Identity:
    """Who is making this (already admitted) API request."""
    return g.identity


# The API's own document is public: it holds no data, and tools read it before they have a token.
PUBLIC_ENDPOINTS = {"api.openapi_spec"}


def admit_api_request():
    """The bearer token, or the status page's session (with its CSRF token on changes), under
    the role the route needs: None to go on, else the refusal (401, 403 or 429)."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    identity = session_identity() if "Authorization" not in request.headers else None
    if identity is not None:
        if request.method not in READ_METHODS and not csrf_ok():
            return error("missing or wrong CSRF token", 403)
    else:
        try:
            if not bearer_ok():
                return error("missing or wrong bearer token", 401)
        except TooManyWrongTokens:
            return error("too many wrong tokens from this address; wait a minute", 429)
        identity = g.identity = Identity(BUILTIN_ADMIN, ADMIN)
    needed = needed_role()
    if not may(identity.role, needed):
        return error(f"your role ({identity.role}) may not do this; it needs {needed}", 403)
    return None
