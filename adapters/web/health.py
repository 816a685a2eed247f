"""Liveness and readiness for orchestrators: /healthz says the process runs, /readyz that it can serve."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify

bp = Blueprint("health", __name__)
log = logging.getLogger("creditctl.web")


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks: dict[str, str] = {}
    for name, check in current_app.extensions["creditctl"].checks.items():
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # a readiness probe reports, it does not raise
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            checks[name] = "failing"
    ready = all(v == "ok" for v in checks.values())
    status = {}
    for name, probe in current_app.extensions["creditctl"].status.items():
        try:
            status[name] = probe()
        except Exception as exc:  # reporting only
            status[name] = f"unknown ({type(exc).__name__})"
    body = {"status": "ready" if ready else "not ready", "checks": checks, "upstream": status}
    return jsonify(body), 200 if ready else 503
