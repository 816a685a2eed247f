"""A WSGI lane in front of Flask for the one hot call: POST /v1/decisions with a plainly valid body.

Flask's own work around a view (request and app contexts, routing, the session check, hooks, signals,
the response's finalising) was ~110 µs of the ~205 µs the web layer spent on a decision
(bench/web_layer_bench.py). The lane answers the common case without it, doing what the Flask path does
for it (adapters/web/request_context.py's hooks, the direct view in adapters/web/decisions.py), with the
same helpers; every other request goes to Flask untouched (`inner`). Its answer is written without a
werkzeug Response: the body ExactJSONProvider.answer_body writes and the headers a flask.Response with it
sends (Content-Type, Content-Length, then X-Request-ID from the after-request hook), in that order.

It takes a request only when everything that could make the answer differ has been checked without a side
effect: the method and exact path; the decision view still registered (tests swap it); an application/json
body with a Content-Length within MAX_CONTENT_LENGTH and no Transfer-Encoding; a key found in the key
cache whose role may decide; a body fast_decision_request takes. Anything else, or a short body, goes to
Flask, with the body it has read put back. From the rate limit's token on (a side effect), an error is
answered by Flask's own error path in a request context of its own: the same handlers, hooks and
teardown. The lane is off when the application has hooks it does not repeat (CORS, a hook on the
decisions blueprint) or a session cookie path that covers the API. tests/api/test_decision_lane.py sends
each case through the lane and through Flask: same status, headers, body, access line and metrics.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, g
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.utils import get_content_type

from adapters.web import decisions, request_context
from adapters.web.json_provider import ExactJSONProvider, loads_exact
from adapters.web.logs import request_id_var
from adapters.web.metrics import http_requests
from adapters.web.schemas.decisions import decision_json, fast_decision_request
from creditctl.domain.api_key import ApiKey, hash_secret
from creditctl.domain.authority import AUTHORITY, Act, Scope

PATH = "/v1/decisions"
ENDPOINT = "decisions.decide"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_RULE = AUTHORITY[Act.DECIDE_ORDER]
_STATUS_LINES = {code: f"{code} {text.upper()}" for code, text in HTTP_STATUS_CODES.items()}  # as Response


def init_app(app: Flask) -> None:
    """Put the lane in front of `app`, if the application's hooks are the ones it repeats."""
    if not _repeatable(app):
        return
    if isinstance(app.wsgi_app, ProxyFix):  # behind trusted proxies: the lane sees what Flask would
        app.wsgi_app.app = DecisionLane(app, app.wsgi_app.app)
    else:
        app.wsgi_app = DecisionLane(app, app.wsgi_app)  # type: ignore[method-assign]


def _repeatable(app: Flask) -> bool:
    names = ("before_request_funcs", "after_request_funcs", "teardown_request_funcs")
    hooks = {name: getattr(app, name) for name in names}
    blueprint = decisions.bp.name
    return (
        hooks["before_request_funcs"].get(None) == [request_context._start]
        and hooks["after_request_funcs"].get(None) == [request_context._finish]
        and hooks["teardown_request_funcs"].get(None) == [request_context._clear]
        and not any(h.get(blueprint) for h in hooks.values())
        and not app.url_value_preprocessors
        and app.response_class is Response  # the lane writes the headers a flask.Response writes
        and isinstance(app.json, ExactJSONProvider)
        and not PATH.startswith(app.config["SESSION_COOKIE_PATH"].rstrip("/") or "/")
    )


class DecisionLane:
    def __init__(self, app: Flask, inner: WSGIApp) -> None:
        self.app = app
        self.inner = inner
        self.view = app.view_functions[ENDPOINT]
        # What the answer's Response would put in Content-Type for the JSON provider's mimetype.
        self.content_type = get_content_type(app.json.mimetype, "utf-8")  # type: ignore[attr-defined]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        if (
            environ.get("PATH_INFO") != PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("CONTENT_TYPE") != "application/json"
            or "HTTP_TRANSFER_ENCODING" in environ
            or self.app.view_functions.get(ENDPOINT) is not self.view
            or "werkzeug.debug.preserve_context" in environ  # a test client keeping Flask's contexts
        ):
            return self.inner(environ, start_response)
        key = self._key(environ)
        length = environ.get("CONTENT_LENGTH", "")
        limit = self.app.config["MAX_CONTENT_LENGTH"]
        if key is None or not length.isdigit() or not 0 < int(length) <= (limit or 0):
            return self.inner(environ, start_response)
        data = environ["wsgi.input"].read(int(length))
        body = _plain_body(data) if len(data) == int(length) else None
        if body is None:
            environ["wsgi.input"] = io.BytesIO(data)  # Flask reads it as if untouched
            return self.inner(environ, start_response)
        environ["wsgi.input"] = io.BytesIO(data)  # for Flask's error path, should it be needed
        return self._decide(environ, start_response, key, body, started)

    def _key(self, environ: dict[str, Any]) -> ApiKey | None:
        """The caller's key if the key cache holds it and it may decide (auth.current_key, gate: the same
        header rules and checks), else None: Flask looks it up and answers."""
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header[:7].lower() == "bearer ":
            secret = header[7:].strip()
        else:
            secret = environ.get("HTTP_X_API_KEY", "").strip()
        if not secret:
            return None
        key: ApiKey | None = self.app.extensions["creditctl.keys"].get(hash_secret(secret))
        if key is None or key.role not in _RULE.roles or (_RULE.scope is Scope.GLOBAL and not key.is_global):
            return None
        return key

    def _decide(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        key: ApiKey,
        body: dict[str, Any],
        started: float,
    ) -> Iterable[bytes]:
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if request_context._REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request_id_var.set(request_id)
        app, known = self.app, None
        try:
            app.extensions["creditctl.rate_limit"].take(key.id)  # RateLimited: 429, nothing done
            known = key
            decision, status = decisions._decided(body, key, app.extensions["creditctl"], request_id)
            answer = app.json.answer_body(decision_json(decision))  # type: ignore[attr-defined]
            headers = [
                ("Content-Type", self.content_type),
                ("Content-Length", str(len(answer))),
                ("X-Request-ID", request_id),
            ]
            http_requests("POST", PATH, status).inc()  # its labelled child is kept (adapters/web/metrics.py)
            request_context.access_line("POST", PATH, status, started, key)
            start_response(_STATUS_LINES[status], headers)
            return [answer]
        except Exception as exc:
            return self._error(environ, start_response, exc, request_id, started, known)
        finally:
            request_id_var.set(None)

    def _error(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        exc: Exception,
        request_id: str,
        started: float,
        key: ApiKey | None,
    ) -> Iterable[bytes]:
        """Flask's answer to `exc` raised by the view: its error handlers, after-request hooks and
        teardown, in a request context of this request (Flask.wsgi_app and full_dispatch_request)."""
        app = self.app
        ctx = app.request_context(environ)
        error: BaseException | None = None
        try:
            ctx.push()
            g.request_id, g.started = request_id, started
            if key is not None:
                g.api_key = key
            request_id_var.set(request_id)
            try:
                response = app.finalize_request(app.handle_user_exception(exc))
            except Exception as again:
                error = again
                response = app.handle_exception(again)
            return response(environ, start_response)  # type: ignore[no-any-return]
        finally:
            ctx.pop(error)


def _plain_body(data: bytes) -> dict[str, Any] | None:
    """The body as the direct view takes it (plain_json_body, fast_decision_request), or None."""
    try:
        return fast_decision_request(loads_exact(data.decode("utf-8")))
    except ValueError:
        return None
