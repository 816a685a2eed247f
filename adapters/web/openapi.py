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
from marshmallow import fields

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
    429: "The API key sent more requests than its rate allows (with Retry-After, in seconds)",
    422: "A field or parameter is not valid: see errors for each",
    503: "The balance source or the service's database is unavailable (with Retry-After)",
}


class ProblemApi(Api):
    """flask-smorest's Api with its error responses documented as application/problem+json, and nullable
    nested objects documented so that generated clients type them `T | None` (see `field2nullable`)."""

    def _init_spec(self, **kwargs: Any) -> None:
        super()._init_spec(**kwargs)
        converter = self.ma_plugin.converter
        functions = converter.attribute_functions
        functions[functions.index(converter.field2nullable)] = field2nullable.__get__(converter)

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


# Only null: in OpenAPI 3.0 `nullable` adds null to the `type` of its own schema object, so this branch
# accepts null and no object at all.
NULL_ONLY = {"type": "object", "nullable": True, "enum": [None]}


def field2nullable(self: Any, field: fields.Field, ret: dict[str, Any]) -> dict[str, Any]:
    """A field that may be null, documented as OpenAPI 3.0.3 means it (an apispec attribute function).

    apispec writes a nullable nested schema as `anyOf: [{type: object, nullable: true}, {$ref}]`: any
    object, or the schema. A generated client takes the first branch that fits (openapi-python-client
    typed `Decision.hold` as "any object, or Hold" and gave a dict). `anyOf: [{$ref}, NULL_ONLY]` is
    exactly "the schema or null", which openapi-python-client types `Hold | None` and openapi-typescript
    `Hold | null`; `allOf` with `nullable` beside it would not be nullable to a strict 3.0.3 validator
    (nullable needs a `type` in its own schema object)."""
    if not field.allow_none:
        return {}
    if "$ref" in ret:
        return {"anyOf": [{"$ref": ret.pop("$ref")}, {**NULL_ONLY, "enum": [None]}]}
    return {"nullable": True}


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
            statuses = _statuses(method, operation, authenticated=roles is not None)
            if {"customer_code", "sale_group_code"} <= set(rule.arguments):
                statuses.add(503)  # an account no order opened yet may need the balance source's answer
            for status in sorted(statuses):
                if str(status) not in documented:
                    responses[str(status)] = {"description": _WHY[status]}
            _document_key_conflict(view, responses)
            for key, response in responses.items():
                status = int(key) if str(key).isdigit() else 0
                if status < 400 or not isinstance(response, dict):
                    continue  # "default", a success, or a reference to a component (problem+json already)
                if own is None:
                    _add_problem_content(response)
                elif "$ref" not in response:
                    response.setdefault("content", {}).setdefault("application/json", {"schema": own})
                if status in (429, 503) and "$ref" not in response:
                    response.setdefault("headers", {}).setdefault("Retry-After", dict(RETRY_AFTER))
            if roles is None:
                operation["security"] = []  # open to anyone: no key needed
            else:
                operation.setdefault("x-roles", [r.value for r in roles])


def _document_key_conflict(view: Any, responses: dict[Any, Any]) -> None:
    """A route that takes an Idempotency-Key says, on its 409, what a reused key answers."""
    if getattr(view, "_idempotent", False):
        conflict = responses.get(409) or responses.get("409")
        if isinstance(conflict, dict) and "$ref" not in conflict:
            conflict["description"] = f"{conflict.get('description', '')}. {_KEY_CONFLICT}"


class RequiredResponseFieldsPlugin(BasePlugin):
    """Mark every member of every schema an API answer uses as required (and a request body required only
    when its schema has a required member).

    marshmallow dumps each field of a schema, null where the value is None (documented nullable), so an
    answer always carries every member its schema names: the document says so, or a generated client
    types every member optional and a fuzzer cannot see one missing. A schema that requests use too
    would make the fields a client must send required; it is refused here: give the answer its own schema
    (a subclass is enough)."""

    def __init__(self) -> None:
        self.answered: set[str] = set()
        self.sent: set[str] = set()

    def init_spec(self, spec: Any) -> None:
        super().init_spec(spec)
        self.schemas: dict[str, Any] = spec.components.schemas

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        for operation in (operations or {}).values():
            self._body_required_only_with_a_required_member(operation.get("requestBody"))
            self.sent |= self._reached([operation.get("requestBody"), operation.get("parameters")])
            answers = [r for s, r in operation.get("responses", {}).items() if str(s).startswith("2")]
            self.answered |= self._reached(answers)
        both = self.answered & self.sent
        if both:
            raise ValueError(f"schemas used in requests and answers alike: {sorted(both)}")
        for name in self.answered:
            schema = self.schemas[name]
            if schema.get("properties"):
                schema["required"] = sorted(schema["properties"])

    def _body_required_only_with_a_required_member(self, body: dict[str, Any] | None) -> None:
        """The server reads a missing body as {} (webargs): only a schema with a required member makes the
        body required (POST .../release, .../recheck and /v1/reviews/recheck take none)."""
        schema = (body or {}).get("content", {}).get("application/json", {}).get("schema", {})
        name = schema.get("$ref", "").rpartition("/")[2]
        if body is not None and name in self.schemas and not self.schemas[name].get("required"):
            body["required"] = False

    def _reached(self, node: Any, found: set[str] | None = None) -> set[str]:
        """The names of the component schemas `node` refers to, directly or through others."""
        found = set() if found is None else found
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.rpartition("/")[2] if ref.startswith("#/components/schemas/") else None
            if name is not None and name not in found:
                found.add(name)
                self._reached(self.schemas.get(name), found)
            for value in node.values():
                self._reached(value, found)
        elif isinstance(node, list):
            for value in node:
                self._reached(value, found)
        return found


NUL_FREE = r"^[^\x00]*$"
NUL_FREE_NAMES = "No member name holds U+0000 (NUL)."


class NulFreeTextPlugin(BasePlugin):
    """Say, of every string a request carries, that it holds no U+0000, as the server refuses it in every
    body and query (adapters/web/json_provider.py; PostgreSQL's text cannot hold it).

    A string of a request with no pattern of its own gets NUL_FREE (a pattern of its own refuses U+0000
    itself: tests/api/test_u0000_in_every_field.py checks every one); an object with members of any name
    says so of their names. Schemas are copied where changed, so that a dict the code shares with an answer
    or another app stays as it was."""

    def init_spec(self, spec: Any) -> None:
        super().init_spec(spec)
        self.schemas: dict[str, Any] = spec.components.schemas
        self.done: set[str] = set()

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        for operation in (operations or {}).values():
            for param in operation.get("parameters", []):
                if isinstance(param, dict) and "schema" in param:
                    param["schema"] = self._text(param["schema"])
            for content in (operation.get("requestBody") or {}).get("content", {}).values():
                if "schema" in content:
                    content["schema"] = self._text(content["schema"])

    def _text(self, schema: Any) -> Any:
        if not isinstance(schema, dict):
            return schema
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            name = ref.rpartition("/")[2]
            if name not in self.done and name in self.schemas:
                self.done.add(name)
                self.schemas[name] = self._text(self.schemas[name])
            return schema
        out = dict(schema)
        if out.get("type") == "string" and "pattern" not in out and "enum" not in out:
            out["pattern"] = NUL_FREE
        if out.get("additionalProperties"):
            said = out.get("description", "")
            out["description"] = f"{said.rstrip('.')}. {NUL_FREE_NAMES}" if said else NUL_FREE_NAMES
        for key in ("items", "additionalProperties", "not"):
            if key in out:
                out[key] = self._text(out[key])
        for key in ("allOf", "anyOf", "oneOf"):
            if key in out:
                out[key] = [self._text(branch) for branch in out[key]]
        if "properties" in out:
            out["properties"] = {name: self._text(prop) for name, prop in out["properties"].items()}
        return out


def _statuses(method: str, operation: dict[str, Any], *, authenticated: bool) -> set[int]:
    statuses = {404}
    if authenticated:
        statuses |= {401, 403, 503}  # the key is looked up in the database, which may be away
        statuses.add(429)  # each key has a rate (adapters/web/rate_limit.py)
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
# Every 429 and 503 says when to try again (adapters/web/errors.py, rate_limit.py, compat.py).
RETRY_AFTER = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 0},
}


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
