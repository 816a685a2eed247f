"""Liveness and readiness for orchestrators: /healthz says the process runs, /readyz that it can serve.

/readyz also reports the upstream twice, and says whose view each is: `upstream` is this worker
process's own (its circuit breaker; with several workers each has one), `shared_upstream` is what every
instance has recorded in the database (up or down, the last outcome and its age)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

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
    context = current_app.extensions["creditctl"]
    status: dict[str, object] = {}
    for name, probe in context.status.items():
        try:
            status[name] = probe()
        except Exception as exc:  # reporting only
            status[name] = f"unknown ({type(exc).__name__})"
    if status:
        status["scope"] = f"this process (pid {os.getpid()})"
    body = {
        "status": "ready" if ready else "not ready",
        "checks": checks,
        "upstream": status,
        "shared_upstream": _shared_upstream(context.shared_upstream),
    }
    return jsonify(body), 200 if ready else 503


def _shared_upstream(probe: Callable[[], dict[str, object]] | None) -> dict[str, object] | None:
    if probe is None:
        return None  # balances come from no upstream
    try:
        return probe()
    except Exception as exc:  # reporting only: the database check says whether it is down
        return {"scope": "every instance (from the database)", "state": f"unknown ({type(exc).__name__})"}
