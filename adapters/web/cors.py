"""CORS for browser front ends on other origins, with flask-cors, kept strict.

Only the exact origins in CREDITCTL_CORS_ORIGINS (none by default: no CORS headers at all), only /v1/* and
/api/*, no credentials (API keys travel in headers, never in cookies), no wildcard. A preflight is answered
204 by Flask's automatic OPTIONS response without an API key; a disallowed origin gets no CORS header, and
the browser keeps the answer from the page."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, request
from flask_cors import CORS

CONFIG_KEY = "CREDITCTL_CORS_ORIGINS"
RESOURCES = r"^/(v1|api)/.*"
METHODS = ["GET", "POST", "PUT", "DELETE"]
# Idempotency-Key: creating POSTs (settle documents it); If-Match: conditional updates (drafts).
ALLOW_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "X-Request-ID", "Idempotency-Key", "If-Match"]
EXPOSE_HEADERS = [
    "X-Request-ID", "Retry-After", "WWW-Authenticate", "ETag", "Idempotent-Replayed", "Data-As-Of"
]  # fmt: skip
MAX_AGE_S = 600
_HOST = re.compile(r"^[a-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9a-f:.]+\](:[0-9]{1,5})?$")


def parse_origins(value: str | Iterable[str]) -> tuple[str, ...]:
    """Comma-separated exact origins (`https://erp.example.com`, `http://127.0.0.1:5173`), normalised.

    Raises ValueError for anything that is not a plain http(s) origin: a wildcard, a path, a query."""
    items = value.split(",") if isinstance(value, str) else list(value)
    origins = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        parts = urlsplit(item.removesuffix("/"))
        host = parts.netloc.lower()
        if (
            parts.scheme.lower() not in ("http", "https")
            or not _HOST.match(host)
            or parts.path
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                f"CREDITCTL_CORS_ORIGINS: {item!r} is not an origin such as https://erp.example.com "
                "(scheme, host and port only; no wildcard, no path)"
            )
        origins.append(f"{parts.scheme.lower()}://{host}")
    return tuple(dict.fromkeys(origins))


def init_app(app: Flask) -> None:
    """Answer cross-origin calls from the configured origins; with none configured, do nothing."""
    origins = parse_origins(app.config.get(CONFIG_KEY) or ())
    if not origins:
        return
    # After-request functions run last-registered first: these two run after flask-cors's.
    app.after_request(_vary_on_origin)
    app.after_request(_preflight_is_204)
    CORS(
        app,
        resources={RESOURCES: {"origins": list(origins)}},
        methods=METHODS,
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        max_age=MAX_AGE_S,
        supports_credentials=False,
        send_wildcard=False,
        always_send=False,  # no Origin header, no CORS header (and the list of origins is not told)
        vary_header=True,
    )


def _preflight_is_204(response: Response) -> Response:
    if (
        request.method == "OPTIONS"
        and "Access-Control-Request-Method" in request.headers
        and "Access-Control-Allow-Methods" in response.headers
        and response.status_code == 200
    ):
        response.status_code = 204
        response.set_data(b"")
        response.headers.pop("Content-Type", None)
    return response


def _vary_on_origin(response: Response) -> Response:
    """Whether the answer carries CORS headers depends on Origin: say so to caches, for every origin
    (flask-cors says it only when more than one origin is allowed)."""
    if re.match(RESOURCES, request.path):
        response.vary.add("Origin")
    return response
