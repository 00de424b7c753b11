"""Every admin API request checked against the API's OpenAPI document (dispatch.http.openapi)
before its view runs, so the document is the one statement of what the API accepts: a
request it allows reaches the view, one it does not gets a 400 naming the field.

The document is kept by hand (its schemas are plain JSON Schema, checked with `jsonschema`);
tests/dispatch/http/test_api_schema.py holds the API to it with schemathesis. What no schema
can say is a format checked here: `phone` (a number `dispatch.model.phones.normalise` takes).
Integers beyond 64 bits are refused anywhere in a request: no store takes them.
"""
from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from flask import request
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from dispatch.http import error, services
from dispatch.http.openapi import OPENAPI
from dispatch.model.phones import normalise

INT64 = (-(2**63), 2**63 - 1)
INTEGER_RE = re.compile(r"^-?[0-9]+$")
MESSAGE_MAX = 200
FORMATS = FormatChecker()


@FORMATS.checks("phone")
def _phone(value: object) -> bool:
    return not isinstance(value, str) or normalise(value, services().settings.default_region) is not None


class Refused(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def check_against_document():
    """A Flask before_request hook: None to go on, or the 400 answer."""
    operation = _operation(request.url_rule.rule if request.url_rule else "", request.method.lower())
    if operation is None:
        return None
    try:
        _check_parameters(operation)
        _check_body(operation)
    except Refused as exc:
        extra = {"field": exc.field} if exc.field else {}
        return error(str(exc)[:MESSAGE_MAX], 400, **extra)
    return None


@cache
def _operation(rule: str, method: str) -> dict[str, Any] | None:
    """The document's operation for a Flask rule (`/api/drivers/<driver_id>` is
    `/api/drivers/{id}`), with the path's parameters merged in."""
    shape = re.sub(r"<[^>]+>", "{}", rule)
    for path, item in OPENAPI["paths"].items():
        if re.sub(r"{[^}]+}", "{}", path) == shape and method in item:
            operation = dict(item[method])
            operation["parameters"] = [*item.get("parameters", []), *operation.get("parameters", [])]
            operation["path_names"] = re.findall(r"{([^}]+)}", path)
            return operation
    return None


@cache
def _validator(schema_json: str) -> Draft4Validator:
    return Draft4Validator(json.loads(schema_json), format_checker=FORMATS)


def _validate(value: Any, schema: dict[str, Any], name: str | None) -> None:
    found = next(iter(_validator(json.dumps(schema, sort_keys=True)).iter_errors(value)), None)
    if found is not None:
        raise Refused(_say(found, name), _field(found, name))


def _check_parameters(operation: dict[str, Any]) -> None:
    # The route's segments in order are the document's path parameters in order.
    segments = dict(zip(operation["path_names"], (request.view_args or {}).values(), strict=False))
    sources = {"query": request.args, "header": request.headers, "path": segments}
    known = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    unknown = sorted(set(request.args) - known)
    if unknown:  # like unknown body fields: a typo is a 400, not silently ignored
        raise Refused(f"unknown query parameter {unknown[0][:40]!r}", unknown[0][:40])
    for param in operation["parameters"]:
        source = sources.get(param["in"])
        if source is None:
            continue
        name, schema = param["name"], param.get("schema", {})
        raw = source.get(name)
        if raw is None:
            if param.get("required"):
                raise Refused(f"{name} is required", name)
            continue
        _validate(_typed(raw, schema, name), schema, name)


def _typed(raw: str, schema: dict[str, Any], name: str) -> Any:
    if schema.get("type") != "integer":
        return raw
    if not INTEGER_RE.match(raw.strip()):
        raise Refused(f"{name} must be an integer", name)
    value = int(raw.strip())
    if not INT64[0] <= value <= INT64[1]:
        raise Refused(f"{name} is out of range", name)
    return value


def _check_body(operation: dict[str, Any]) -> None:
    spec = operation.get("requestBody")
    raw = request.get_data(cache=True)
    if spec is None or not raw.strip():
        if spec is not None and spec.get("required"):
            raise Refused("a JSON body is required")
        return
    try:
        body = json.loads(raw, parse_constant=_no_constant)
        if not _within_int64(body):
            raise Refused("an integer in the body is out of range")
        _validate(body, spec["content"]["application/json"]["schema"], None)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, Refused):
            raise
        raise Refused("the body must be JSON (UTF-8, not nested too deeply)") from exc


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _within_int64(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return INT64[0] <= value <= INT64[1]
    if isinstance(value, dict):
        return all(_within_int64(v) for v in value.values())
    if isinstance(value, list):
        return all(_within_int64(v) for v in value)
    return True


def _field(found: ValidationError, name: str | None) -> str | None:
    if name is not None:
        return name
    if found.absolute_path:
        return str(found.absolute_path[0])
    if found.validator == "additionalProperties" and isinstance(found.instance, dict):
        extra = sorted(set(found.instance) - set(found.schema.get("properties", {})))
        return extra[0][:40] if extra else None
    if found.validator == "required" and isinstance(found.validator_value, list):
        missing = [f for f in found.validator_value if isinstance(found.instance, dict) and f not in found.instance]
        return missing[0] if missing else None
    return None


def _say(found: ValidationError, name: str | None) -> str:
    where = name or ".".join(str(p) for p in found.absolute_path) or "body"
    return f"{where}: {found.message}"
