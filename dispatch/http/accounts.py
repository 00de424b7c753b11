"""Dispatcher accounts over the admin API (PRODUCT.md §3, §8); admins only (dispatch.http.auth)."""
from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Blueprint, jsonify, request

from dispatch.adapters.mongo.accounts import DuplicateUsername
from dispatch.http import error, services
from dispatch.http.api import _page
from dispatch.http.auth import hash_password
from dispatch.http.validation import api_door
from dispatch.model.account import NAME_MAX, PASSWORD_MAX, PASSWORD_MIN, ROLES, USERNAME_MAX, Account, valid_username
from dispatch.model.phones import normalise
from dispatch.texts import LANGUAGES

bp = api_door(Blueprint("accounts", __name__, url_prefix="/api"))


def _fields(body: dict[str, Any], creating: bool) -> tuple[dict[str, Any], Any]:
    """The account fields of `body`, validated: (fields, None) or (None, the 400 answer)."""
    allowed = {"name", "password", "role", "phone", "active", "language"} | ({"username"} if creating else set())
    unknown = sorted(set(body) - allowed)
    if unknown:
        return {}, error(f"unknown field {unknown[0]}", 400, field=unknown[0])
    fields: dict[str, Any] = {}
    if creating:
        if not valid_username(body.get("username")):
            return {}, error(f"username must be 1..{USERNAME_MAX} letters, digits, . _ - (not 'admin')", 400,
                             field="username")
        fields["username"] = body["username"]
    for name, required in (("name", creating), ("password", creating), ("role", creating)):
        if name not in body and not required:
            continue
        value = body.get(name)
        if name == "name" and not (isinstance(value, str) and 0 < len(value.strip()) <= NAME_MAX):
            return {}, error(f"name must be 1..{NAME_MAX} characters", 400, field="name")
        if name == "password" and not (isinstance(value, str) and PASSWORD_MIN <= len(value) <= PASSWORD_MAX):
            return {}, error(f"password must be {PASSWORD_MIN}..{PASSWORD_MAX} characters", 400, field="password")
        if name == "role" and value not in ROLES:
            return {}, error(f"role must be one of {', '.join(ROLES)}", 400, field="role")
        fields[name] = value.strip() if name == "name" else value
    if "password" in fields:
        fields["password_hash"] = hash_password(fields.pop("password"))
    if "phone" in body:
        phone = normalise(body["phone"] if isinstance(body["phone"], str) else None,
                          services().settings.default_region)
        if phone is None:
            return {}, error("phone must be a valid phone number", 400, field="phone")
        fields["phone"] = phone
    if "active" in body:
        if not isinstance(body["active"], bool):
            return {}, error("active must be true or false", 400, field="active")
        fields["active"] = body["active"]
    if "language" in body:
        if body["language"] not in LANGUAGES:
            return {}, error(f"language must be one of {', '.join(LANGUAGES)}", 400, field="language")
        fields["language"] = body["language"]
    return fields, None


@bp.post("/dispatchers")
def create_dispatcher():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error("body must be a JSON object", 400)
    fields, refusal = _fields(body, creating=True)
    if refusal:
        return refusal
    account = Account(id=uuid.uuid4().hex, created_at=int(time.time() * 1000), **fields)
    try:
        services().accounts.add(account)
    except DuplicateUsername:
        return error("that username is taken", 409, field="username")
    return jsonify(account.to_json()), 201


@bp.get("/dispatchers")
def list_dispatchers():
    limit, offset = _page()
    if limit is None:
        return offset
    found = services().accounts.list(limit, offset)
    return jsonify({"dispatchers": [a.to_json() for a in found], "limit": limit, "offset": offset})


@bp.patch("/dispatchers/<account_id>")
def update_dispatcher(account_id: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body:
        return error("body must be a non-empty JSON object", 400)
    if services().accounts.get(account_id) is None:
        return error("no such dispatcher", 404)
    fields, refusal = _fields(body, creating=False)
    if refusal:
        return refusal
    return jsonify(services().accounts.update(account_id, fields).to_json())
