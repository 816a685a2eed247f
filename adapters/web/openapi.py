"""The OpenAPI document tells the truth about errors and authentication, for every route of the API.

flask-smorest documents what a view's decorators say: its success answers, 422 for a parsed body, and a
"default" error as application/json. What the web edge really answers comes from elsewhere: the error
handlers (problem+json), `requires` (401, 403), the request plumbing (413, 415), the JSON parser (400)
and the domain (404, 409). This apispec plugin adds those to each operation from facts about its route
(its roles, its methods, whether it reads a body or a query), so a new or changed route is documented
without a line of its own.
"""

from __future__ import annotations

import http
from collections.abc import Mapping
from typing import Any

from apispec import BasePlugin
from flask import Flask
from flask_smorest import Api
from flask_smorest.utils import prepare_response

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "an API key as the bearer token"},
    "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
EITHER_KEY = [{name: []} for name in SECURITY_SCHEMES]  # a list of requirements: any one suffices
_BODY_METHODS = {"post", "put", "patch"}
_WHY = {
    400: "The body is not JSON this service reads (malformed, nested too deeply)",
    401: "No API key, or one that is unknown or revoked",
    403: "The key's role may not make this call, or the key is limited to other customers",
    404: "Something the call names does not exist (or is not visible to the key)",
    409: "The call conflicts with the current state (an order id used with another body, a hold ended)",
    413: "The body is larger than 64 KiB",
    412: "If-Match names another revision than the current one: the ETag header (and errors) name it",
    415: "A body that is not application/json",
    422: "A field or parameter is not valid: see errors for each",
    503: "The balance source is unavailable",
}


class ProblemApi(Api):
    """flask-smorest's Api with its error responses documented as application/problem+json."""

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


class ErrorResponsesPlugin(BasePlugin):
    """Document, on every operation, the error answers its route can give and the keys it accepts.

    `own_errors` maps a blueprint name to the schema its views answer every error with, as application/json
    (the seed-compatible balance answer); every other blueprint's errors are problem+json."""

    def __init__(self, app: Flask, own_errors: Mapping[str, dict[str, str]] = {}) -> None:
        self.app = app
        self.own_errors = own_errors

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        view = self.app.view_functions.get(rule.endpoint)
        roles = getattr(view, "_roles", None)
        own = self.own_errors.get(rule.endpoint.partition(".")[0])
        for method, operation in operations.items():
            _document_headers(view, operation)
            responses = operation.setdefault("responses", {})
            documented = {str(s) for s in responses}  # smorest's keys are ints, ours strings
            for status in sorted(_statuses(method, operation, authenticated=roles is not None)):
                if str(status) not in documented:
                    responses[str(status)] = {"description": _WHY[status]}
            if getattr(view, "_idempotent", False):
                conflict = responses.get(409) or responses.get("409")
                if isinstance(conflict, dict) and "$ref" not in conflict:
                    conflict["description"] = f"{conflict.get('description', '')}. {_KEY_CONFLICT}"
            for key, response in responses.items():
                status = int(key) if str(key).isdigit() else 0
                if status < 400 or not isinstance(response, dict):
                    continue  # "default", a success, or a reference to a component (problem+json already)
                if own is None:
                    _add_problem_content(response)
                elif "$ref" not in response:
                    response.setdefault("content", {}).setdefault("application/json", {"schema": own})
            if roles is None:
                operation["security"] = []  # open to anyone: no key needed
            else:
                operation.setdefault("x-roles", [r.value for r in roles])


def _statuses(method: str, operation: dict[str, Any], *, authenticated: bool) -> set[int]:
    statuses = {404}
    if authenticated:
        statuses |= {401, 403}
    if method in _BODY_METHODS:
        statuses |= {409, 413, 415}  # any body is refused unless JSON, any body over 64 KiB
    if "requestBody" in operation:
        statuses |= {400, 422}
    params = [p for p in operation.get("parameters", []) if isinstance(p, dict)]
    if any(p.get("in") in ("query", "header") for p in params):
        statuses.add(422)
    if any(p.get("in") == "header" and p.get("name") == "If-Match" for p in params):
        statuses.add(412)
    return statuses


_KEY_CONFLICT = (
    "Or the Idempotency-Key was used before with another body or query (conflict/idempotency_key_reused), "
    "or its first request is still running (conflict/idempotency_in_progress, with Retry-After)"
)
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: the first request with this key (for this API key and route) is "
    "applied once; a retry with the same key and the same body gets the first answer again (same status "
    "and body, header Idempotent-Replayed: true), a twin still running is waited for; the same key with "
    "another body is 409. Only successful answers are kept, for 24 hours.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]([ -~]*[!-~])?$"},
    "example": "5f0c6d0e-5d7a-4b43-9b8e-2f1f4ad7c1a9",
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of the revision this change is based on (from GET or the last write): "
    "applied only if it is still the current one, else 412 naming the current ETag. Optional: without "
    "it a change is still never written over another committed at the same time (409).",
    "schema": {"type": "string"},
    "example": '"7.3"',
}
ETAG = {"description": "The revision's entity tag, for If-Match", "schema": {"type": "string"}}


def _document_headers(view: Any, operation: dict[str, Any]) -> None:
    """The headers a view takes and gives, from its marks (adapters/web/idempotency.py, preconditions.py)."""
    params = operation.setdefault("parameters", [])
    named = {(p.get("in"), p.get("name")) for p in params if isinstance(p, dict)}
    for mark, param in (("_idempotent", IDEMPOTENCY_KEY), ("_if_match", IF_MATCH)):
        if getattr(view, mark, False) and ("header", param["name"]) not in named:
            params.append(dict(param))
    if not params:
        del operation["parameters"]
    if getattr(view, "_etag", False):
        for key, response in operation.get("responses", {}).items():
            if str(key).startswith("2") and isinstance(response, dict):
                response.setdefault("headers", {})["ETag"] = dict(ETAG)


def _add_problem_content(response: dict[str, Any]) -> None:
    if "$ref" in response:
        return
    content = response.setdefault("content", {})
    json_content = content.pop("application/json", None)  # smorest's default error type: it is not
    content.setdefault(PROBLEM_JSON, json_content or {"schema": PROBLEM_REF})


def document_security(api: Api) -> None:
    """Declare both ways of sending a key; operations need either (open ones say so themselves)."""
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
