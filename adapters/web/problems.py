"""application/problem+json bodies (RFC 9457) with field errors and the request id."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g

PROBLEM_TYPE_BASE = "https://creditctl.dev/problems/"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    code: str = "error",
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code.replace(".", "/"),
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors or {},
        "request_id": g.get("request_id"),
    }
    response = current_app.response_class(
        current_app.json.dumps(body), status=status, mimetype="application/problem+json"
    )
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response
