"""The Haier emulator (`creditctl haier emulate`: the same app, served the same way) plus a record of
every balance call it answers, for the end-to-end test to count calls per customer and time window.

    python tests/e2e/recording_emulator.py --port PORT [--rate-limit N]

GET /_e2e/balance_calls lists the calls: arrival (Unix time, taken before anything else is done),
customer code, HTTP status, the fault the emulator applied (or null) and whether the answer was a
normal one (200, success, no fault): a balance the service received and stored. GET /_e2e/token_calls
lists the token requests: arrival, path, HTTP status."""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from flask import Response, g, request
from werkzeug.serving import run_simple

from adapters.haier.balance_client import BALANCE_PATH
from adapters.haier.emulator import CLIENT_CREDENTIALS_PATHS, create_emulator_app
from adapters.haier.emulator_state import Fault


def create_recording_app(rate_limit_per_s: int = 100) -> Any:
    app = create_emulator_app(rate_limit_per_s=rate_limit_per_s)
    state = app.extensions["haier_emulator"]
    calls: list[dict[str, Any]] = []
    token_calls: list[dict[str, Any]] = []
    token_paths = {*CLIENT_CREDENTIALS_PATHS, "/oauth/token"}
    guard = threading.Lock()
    take_fault = state.take_fault

    def recording_take_fault(interface: str) -> Fault | None:
        fault = take_fault(interface)
        g.e2e_fault = fault.mode if fault is not None else None
        return fault

    state.take_fault = recording_take_fault

    @app.before_request
    def arrived() -> None:
        if request.path == BALANCE_PATH or request.path in token_paths:
            g.e2e_arrived = time.time()

    @app.after_request
    def record(response: Response) -> Response:
        if request.path in token_paths:
            with guard:
                token_calls.append(
                    {"at": g.e2e_arrived, "path": request.path, "status": response.status_code}
                )
            return response
        if request.path != BALANCE_PATH:
            return response
        body = request.get_json(silent=True)
        fault = g.get("e2e_fault")
        normal = response.status_code == 200 and fault is None and not response.is_streamed
        if normal:
            try:
                normal = json.loads(response.get_data()).get("success") is True
            except ValueError:
                normal = False
        call = {
            "at": g.e2e_arrived,
            "customer": body.get("customerCode") if isinstance(body, dict) else None,
            "status": response.status_code,
            "fault": fault,
            "normal": normal,
        }
        with guard:
            calls.append(call)
        return response

    @app.get("/_e2e/balance_calls")
    def balance_calls() -> Response:
        with guard:
            return Response(json.dumps(calls), mimetype="application/json")

    @app.get("/_e2e/token_calls")
    def token_calls_made() -> Response:
        with guard:
            return Response(json.dumps(token_calls), mimetype="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate-limit", type=int, default=100, help="calls per second per interface")
    args = parser.parse_args()
    run_simple(args.host, args.port, create_recording_app(args.rate_limit), threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
