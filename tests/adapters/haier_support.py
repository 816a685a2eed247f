"""Helpers for the Haier integration tests: the emulator served on a loopback port, an upstream that
echoes the credentials it receives, known secrets, and cleanup of the shared upstream tables."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from flask import Flask
from sqlalchemy import Engine, delete
from werkzeug.serving import make_server

from adapters.haier.balance_client import BALANCE_PATH
from adapters.haier.emulator_state import EmulatorState
from adapters.sql.tables import balance_reports, upstream_configs, upstream_tokens
from creditctl.services.shared_balances import SharedBalanceProvider

# Keys: passphrases of 16+ characters (FernetSecretBox stretches them with HKDF).
KEY_A = "issue3-key-A-0123456789abcdef"
KEY_B = "issue3-key-B-fedcba9876543210"

# Secrets an administrator configures; each is distinctive, so a leak anywhere is found by search.
CLIENT_ID = "creditctl-client"
CLIENT_SECRET = "cs-KNOWN-7f3a9c1e5b"
CUSTOMER = "8800633175"
CUSTOMER_PASSWORD = "cpw-KNOWN-4d2e8a6c0f"
CUSTOMER_2 = "8800633176"
FALLBACK_PASSWORD = "fpw-KNOWN-1b9d7f5a3e"
KNOWN_SECRETS = (CLIENT_SECRET, CUSTOMER_PASSWORD, FALLBACK_PASSWORD)

ACCOUNTS_175 = [
    {
        "saleGroupCode": "1001",
        "saleGroupName": "海尔空调销售组织",
        "payerAccountCode": "8800633175",
        "payerAccountName": "青岛示例家电有限公司",
        "payerAccountBalance": "1250000.00",
    },
    {
        "saleGroupCode": "1002",
        "saleGroupName": "海尔冰箱销售组织",
        "payerAccountCode": "8800633175",
        "payerAccountName": "青岛示例家电有限公司",
        "payerAccountBalance": "38000.50",
    },
]
ACCOUNTS_176 = [
    {
        "saleGroupCode": "1001",
        "saleGroupName": "海尔空调销售组织",
        "payerAccountCode": "8800633176",
        "payerAccountName": "济南示例电器商行",
        "payerAccountBalance": "-1520.75",
    }
]


def known_emulator_app(**kwargs: Any) -> Flask:
    """The emulator expecting the known secrets above (customer 176 uses the fallback password)."""
    customers = {
        CUSTOMER: {"password": CUSTOMER_PASSWORD, "accounts": ACCOUNTS_175},
        CUSTOMER_2: {"password": FALLBACK_PASSWORD, "accounts": ACCOUNTS_176},
    }
    kwargs.setdefault("customers", customers)
    return _emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **kwargs)


def _emulator(**kwargs: Any) -> Flask:
    from adapters.haier.emulator import create_emulator_app

    return create_emulator_app(**kwargs)


def config_document(base_url: str, **overrides: Any) -> dict[str, Any]:
    """A client-credentials config for the emulator at `base_url` with the known secrets."""
    body: dict[str, Any] = {
        "base_url": base_url,
        "auth": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "auth_scheme": "Bearer",
        "customer_password": FALLBACK_PASSWORD,
        "customers": {CUSTOMER: CUSTOMER_PASSWORD},
        "timeouts": {"connect_s": 2, "read_s": 5},
        "is_active": True,
    }
    body.update(overrides)
    return body


class EchoingUpstream:
    """WSGI middleware in front of the emulator: when switched on, the token or balance endpoint fails
    and echoes back the credentials it was sent (Authorization header and body), as careless upstream
    error pages do. Everything else passes through to the emulator."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.mode: str | None = None  # None, "balance" or "token"
        self.echoed = 0
        # When set, every balance query gets this answer instead: (status line, headers, body). For
        # faults the emulator has no switch for: 502, a NaN or huge balance, a redirect, a 10 MB body.
        self.canned: tuple[str, list[tuple[str, str]], bytes] | None = None
        self.canned_served = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        target = "balance" if path == BALANCE_PATH else "token" if "oauth" in path else None
        if self.canned is not None and target == "balance":
            status, headers, payload = self.canned
            self.canned_served += 1
            start_response(status, [*headers, ("Content-Length", str(len(payload)))])
            return [payload]
        if self.mode is None or target != self.mode:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        sent = environ["wsgi.input"].read(length).decode("utf-8", "replace") if length else ""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        self.echoed += 1
        if target == "balance":
            status = "500 INTERNAL SERVER ERROR"
            body = {
                "success": False,
                "code": "500",
                "description": f"gateway error for request with Authorization: {auth} and body {sent}",
                "data": {"authorization": auth, "request": sent},
            }
        else:
            status = "401 UNAUTHORIZED"
            body = {
                "error": "invalid_client",
                "error_description": f"rejected {sent} sent with Authorization: {auth}",
                "echo": {"body": sent, "authorization": auth},
            }
        payload = json.dumps(body, ensure_ascii=False).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]


class EmulatorServer:
    """The emulator app served by werkzeug on 127.0.0.1 on a free port, in a thread."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.state: EmulatorState = app.extensions["haier_emulator"]
        self.echo = EchoingUpstream(app)
        self._server = make_server("127.0.0.1", 0, self.echo, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator", daemon=True)
        self._http = requests.Session()
        self._http.trust_env = False

    def start(self) -> EmulatorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._http.close()

    def fault(self, mode: str, *, target: str = "balance", count: int | None = None, **extra: Any) -> None:
        """Switch a fault on through the emulator's control endpoint ("none" switches it off)."""
        body = {"mode": mode, "target": target, "count": count, **extra}
        r = self._http.post(self.url + "/_emulator/faults", json=body, timeout=5)
        assert r.status_code == 200, r.text

    def stats(self) -> dict[str, Any]:
        r = self._http.get(self.url + "/_emulator/stats", timeout=5)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def issued_tokens(self) -> list[str]:
        with self.state.lock:
            return list(self.state.tokens)


@contextmanager
def serving(app: Flask) -> Iterator[EmulatorServer]:
    server = EmulatorServer(app).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def flights_ended_at_exit(timeout_s: float = 10.0) -> Iterator[None]:
    """Every SharedBalanceProvider made inside the block: at its end, each background fetch still in the
    air is waited for (it fails the test if one has not ended within `timeout_s`) and the threads stopped.

    A fetch that outlives its test goes on using the test's engine after the engine's fixture disposed of
    it: the connection it opens then is left in a pool nobody closes, and the garbage collector finds it
    open (psycopg's "was deleted while still open" ResourceWarning, an error at whatever later test it
    happens in). An instance waiting on another's lease polls for the stored report for up to
    fetch_timeout_s + 5 s (35 s), and never finds it once the test's teardown has cleared the table:
    end the block before clearing the upstream tables."""
    made: list[SharedBalanceProvider] = []
    init = SharedBalanceProvider.__init__

    def recorded(self: SharedBalanceProvider, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    SharedBalanceProvider.__init__ = recorded  # type: ignore[method-assign]
    try:
        yield
    finally:
        SharedBalanceProvider.__init__ = init  # type: ignore[method-assign]
        give_up = time.monotonic() + timeout_s
        while any(p._inflight for p in made) and time.monotonic() < give_up:
            time.sleep(0.01)
        in_the_air = sorted({code for p in made for code in p._inflight})
        for provider in made:
            provider._pool.shutdown(wait=not in_the_air)
        assert not in_the_air, f"balance fetches still in the air at the end of the test: {in_the_air}"


def clear_upstream_tables(engine: Engine) -> None:
    """The shared PostgreSQL test database is truncated only for the order tables: clear ours."""
    with engine.begin() as conn:
        for table in (upstream_tokens, balance_reports, upstream_configs):
            conn.execute(delete(table))
