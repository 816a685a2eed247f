"""A local emulator of the JSH open platform: both token flows, the balance query, switchable faults.

Nobody here can reach Haier, so development, demos and tests talk to this instead; faults are
switched at run time through POST /_emulator/faults. It never echoes a submitted credential.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request
from werkzeug.serving import run_simple

from adapters.haier.balance_client import BALANCE_PATH
from adapters.haier.emulator_state import FAULT_MODES, FAULT_TARGETS, TOKEN_LIFETIME_S, EmulatorState, Fault

CLIENT_CREDENTIALS_PATHS = ("/oauth2/auth", "/oauth2/token")


def create_emulator_app(
    customers: dict[str, dict[str, Any]] | None = None,
    *,
    client_id: str = "demo-client",
    client_secret: str = "demo-secret",
    username: str = "demo-user",
    password: str = "demo-password",
    rate_limit_per_s: int = 100,
    token_paths: Iterable[str] = CLIENT_CREDENTIALS_PATHS,
    token_in_data: bool = False,
) -> Flask:
    """Build the emulator. `customers`: {code: {"password", "accounts": [entry...]}}, default demo data.

    `token_paths` says which client-credentials paths exist (to emulate the /oauth2/auth vs
    /oauth2/token confusion); `token_in_data` wraps the token answer in {"data": {...}}.
    """
    app = Flask("haier_emulator")
    state = EmulatorState.create(customers, rate_limit_per_s)
    app.extensions["haier_emulator"] = state
    credentials = _Credentials(client_id, client_secret, username, password)
    _register_token_routes(app, state, credentials, tuple(token_paths), token_in_data)
    _register_balance_route(app, state)
    _register_control_routes(app, state)
    return app


@dataclass(frozen=True)
class _Credentials:
    client_id: str
    client_secret: str = field(repr=False)
    username: str
    password: str = field(repr=False)


def _register_token_routes(
    app: Flask, state: EmulatorState, creds: _Credentials, paths: tuple[str, ...], token_in_data: bool
) -> None:
    def token_answer() -> Response:
        token = {"access_token": state.issue_token(), "token_type": "bearer", "expires_in": TOKEN_LIFETIME_S}
        return _json({"success": True, "code": "success", "data": token} if token_in_data else token)

    def token_gate(path: str) -> Response | None:
        state.count("token", path)
        if state.throttled("token"):
            return _json({"error": "too_many_requests"}, 429, {"Retry-After": "1"})
        return _apply_fault(state.take_fault("token"))

    @app.post("/oauth2/<kind>")
    def client_credentials(kind: str) -> Response:
        path = f"/oauth2/{kind}"
        if path not in paths:
            return _json({"error": "not_found"}, 404)
        refused = token_gate(path)
        if refused is not None:
            return refused
        body = request.get_json(silent=True) or {}
        ok = (
            body.get("grant_type") == "client_credentials"
            and _same(body.get("client_id"), creds.client_id)
            and _same(body.get("client_secret"), creds.client_secret)
        )
        return token_answer() if ok else _json({"error": "invalid_client"}, 401)

    @app.post("/oauth/token")
    def password_grant() -> Response:
        refused = token_gate("/oauth/token")
        if refused is not None:
            return refused
        ok = (
            request.headers.get("system-name") == "ylh-open-api"
            and _basic_matches(request.headers.get("Authorization", ""), creds.client_id, creds.client_secret)
            and request.form.get("grant_type") == "password"
            and _same(request.form.get("username"), creds.username)
            and _same(request.form.get("password"), creds.password)
        )
        return token_answer() if ok else _json({"error": "invalid_grant"}, 401)


def _register_balance_route(app: Flask, state: EmulatorState) -> None:
    @app.post(BALANCE_PATH)
    def balance() -> Response:
        state.count("balance")
        if state.throttled("balance"):
            return _envelope(False, "429", "too many requests", status=429, headers={"Retry-After": "1"})
        fault = state.take_fault("balance")
        refused = _apply_fault(fault)
        if refused is not None:
            return refused
        if not state.token_valid(_bearer(request.headers.get("Authorization", ""))):
            return _envelope(False, "401", "token invalid or expired", status=401)
        return _balance_answer(state, request.get_json(silent=True), fault)


def _register_control_routes(app: Flask, state: EmulatorState) -> None:
    @app.post("/_emulator/faults")
    def set_fault() -> Response:
        body = request.get_json(silent=True) or {}
        mode, target = body.get("mode", "none"), body.get("target", "balance")
        count, delay = body.get("count"), body.get("delay_s")
        if mode not in FAULT_MODES or target not in FAULT_TARGETS:
            allowed = f"mode must be one of {sorted(FAULT_MODES)}, target one of {sorted(FAULT_TARGETS)}"
            return _json({"error": allowed}, 400)
        if not (count is None or (isinstance(count, int) and count > 0)) or not (
            delay is None or (isinstance(delay, int | float) and 0 <= delay <= 120)
        ):
            return _json({"error": "count must be a positive integer, delay_s 0-120 seconds"}, 400)
        state.set_fault(mode, target, delay, count)
        return _json(state.snapshot()["fault"])

    @app.get("/_emulator/stats")
    def stats() -> Response:
        return _json(state.snapshot())

    @app.post("/_emulator/balances")
    def set_balance() -> Response:
        body = request.get_json(silent=True) or {}
        code, group = body.get("customerCode"), body.get("saleGroupCode")
        amount = body.get("payerAccountBalance")
        if not (isinstance(code, str) and isinstance(group, str) and isinstance(amount, str)):
            needed = "customerCode, saleGroupCode and payerAccountBalance (a string) are required"
            return _json({"error": needed}, 400)
        entry = {
            "saleGroupCode": group,
            "saleGroupName": body.get("saleGroupName", f"sales group {group}"),
            "payerAccountCode": body.get("payerAccountCode", code),
            "payerAccountName": body.get("payerAccountName", f"payer {code}"),
            "payerAccountBalance": amount,
        }
        state.set_balance(code, entry, body.get("customerPassword"))
        return _json({"ok": True})


def run_emulator(host: str = "127.0.0.1", port: int = 8099, **kwargs: Any) -> None:
    """Serve the emulator with werkzeug's threaded server (blocks)."""
    run_simple(host, port, create_emulator_app(**kwargs), threaded=True, use_reloader=False)


def _balance_answer(state: EmulatorState, body: Any, fault: Fault | None) -> Response:
    if not isinstance(body, dict) or not body.get("customerCode") or not body.get("customerPassword"):
        return _envelope(False, "400", "customerCode and customerPassword are required", status=400)
    found = state.accounts(str(body["customerCode"]))
    if found is None:
        return _envelope(False, "CUSTOMER_NOT_FOUND", "unknown customer code")
    expected, accounts = found
    if (fault and fault.mode == "wrong_password") or not _same(body["customerPassword"], expected):
        return _envelope(False, "PASSWORD_ERROR", "customer password is incorrect")
    return _envelope(True, "success", "ok", data=accounts)


def _apply_fault(fault: Fault | None) -> Response | None:
    """A canned failure for `fault`, after sleeping when it says so; None to answer normally."""
    if fault is None:
        return None
    if fault.mode in ("timeout", "slow"):
        time.sleep(fault.delay_s if fault.delay_s is not None else (35.0 if fault.mode == "timeout" else 2.0))
        return None
    if fault.mode in ("500", "503"):
        return _envelope(False, fault.mode, "service unavailable, retry later", status=int(fault.mode))
    if fault.mode == "429":
        return _envelope(False, "429", "too many requests", status=429, headers={"Retry-After": "1"})
    if fault.mode == "401":
        return _envelope(False, "401", "token invalid or expired", status=401)
    if fault.mode == "malformed":
        return Response('{"success": true, "data": [{"saleGroupCode": "10', 200, mimetype="application/json")
    if fault.mode == "reset":
        return _reset_mid_body()
    return None  # wrong_password is applied by the balance answer


def _reset_mid_body() -> Response:
    """Promise a body, send part of it, then drop the connection."""
    sock = request.environ.get("werkzeug.socket")

    def body() -> Iterator[bytes]:
        yield b'{"success": true, "data": [{"saleGroupCode": "1001", '
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)

    return Response(body(), 200, {"Content-Length": "4096"}, mimetype="application/json")


def _envelope(
    success: bool,
    code: str,
    description: str,
    *,
    status: int = 200,
    data: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    body = {"success": success, "code": code, "description": description, "timeStamp": stamp, "data": data}
    return _json(body, status, headers)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status, headers, mimetype="application/json")


def _same(given: Any, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def _bearer(header: str) -> str:
    return header[7:].strip() if header.lower().startswith("bearer ") else header.strip()


def _basic_matches(header: str, user: str, secret: str) -> bool:
    if not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    return _same(decoded, f"{user}:{secret}")


if __name__ == "__main__":  # python -m adapters.haier.emulator [port]
    import sys

    run_emulator(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8099)
