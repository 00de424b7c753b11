"""The core's HTTP entry points (admin API, status page, Stripe webhook, sandbox pages): the
only part of `dispatch` that imports Flask. Each route translates a request into a call on
the services and a domain result or error into a status code."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Response, current_app, jsonify

from dispatch.model.errors import Conflict, DomainError, Invalid, NotFound

if TYPE_CHECKING:
    from dispatch.bootstrap import Services

STATUS_OF = {NotFound: 404, Conflict: 409, Invalid: 400}


def services() -> Services:
    return current_app.extensions["supportcarr"]


def error(message: str, status: int, **extra: Any):
    return jsonify({"error": message, **extra}), status


def refused(exc: DomainError):
    """A domain error as the status its kind means."""
    return error(str(exc), STATUS_OF.get(type(exc), 409))


def plain(text: str, status: int) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")
