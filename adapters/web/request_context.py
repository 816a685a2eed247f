"""Per-request plumbing: a request id, content-type and size limits, one access log line, HTTP metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from flask import Flask, Request, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from adapters.web.logs import ACCESS_MESSAGE, AccessLineWriter, request_id_var
from adapters.web.metrics import http_requests
from adapters.web.problems import problem

log = logging.getLogger("creditctl.access")
access_writer = AccessLineWriter(log)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")  # \Z: `$` also matches before a final newline
MAX_BODY_BYTES = 64 * 1024


def init_app(app: Flask) -> None:
    # Flask's default config already holds MAX_CONTENT_LENGTH = None, so setdefault would never apply.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_clear)


def _start() -> Response | None:
    req, state = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
    environ = req.environ  # each header read once, from the environ (req.headers.get reads it there)
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    state.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    state.started = time.perf_counter()
    request_id_var.set(state.request_id)
    length = req.content_length  # None without the header, or when chunked
    if not (length or environ.get("HTTP_TRANSFER_ENCODING", "") == "chunked"):
        return None  # no body: nothing to check
    if length is None:
        _refuse_oversized_chunked_body(req)
    writes = req.method in ("POST", "PUT", "PATCH")
    if writes and not (req.is_json or _console_form()):
        return problem(
            415,
            "Unsupported media type",
            "Send the body as application/json",
            code="http.415",
            errors={"Content-Type": [f"expected application/json, got {req.mimetype or 'nothing'}"]},
        )
    return None


def _refuse_oversized_chunked_body(req: Request) -> None:
    """Werkzeug stops reading a body without Content-Length at MAX_CONTENT_LENGTH and hands the view
    the truncated prefix without a word; read such a body here and refuse it whole when it is longer."""
    limit = req.max_content_length
    if limit is not None and len(req.get_data(cache=True)) >= limit and req.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def _console_form() -> bool:
    """The console's pages post HTML forms (each checked for its CSRF token); the API takes JSON only."""
    return request.blueprint == "console" and request.mimetype == "application/x-www-form-urlencoded"


def _finish(response: Response) -> Response:
    req, state = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
    response.headers["X-Request-ID"] = state.get("request_id", "")
    method, status = req.method, response.status_code
    http_requests(method, req.url_rule.rule if req.url_rule else "unmatched", status).inc()
    access_line(method, req.path, status, state.get("started"), state.get("api_key"))
    return response


def access_line(method: str, path: str, status: int, started: float | None, key: Any) -> None:
    """The request's one access log line (adapters/web/fast_lane.py writes it too)."""
    if not log.isEnabledFor(logging.INFO):  # the line would be dropped (level WARNING): not built either
        return
    elapsed_ms = (time.perf_counter() - (time.perf_counter() if started is None else started)) * 1000
    duration_ms, name = round(elapsed_ms, 2), key.name if key else None
    if access_writer.write(method, path, status, duration_ms, name):  # as logging writes it, when it would
        return
    log.info(
        ACCESS_MESSAGE,
        method,
        path,
        status,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "key": name,
        },
    )


def _clear(_exc: BaseException | None) -> None:
    request_id_var.set(None)
