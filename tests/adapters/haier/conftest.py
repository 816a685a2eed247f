"""Shared helpers for the Haier adapter tests: a fake clock, configs with known secrets, canned answers."""

from __future__ import annotations

import io
import json
import os
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses

from adapters.haier.balance_client import BALANCE_PATH
from adapters.haier.balance_provider import HaierBalanceProvider
from adapters.haier.config import HaierConfig
from adapters.haier.retry import RetryPolicy
from adapters.haier.token_store import InMemoryTokenStore

SEED = int(os.environ.get("CREDITCTL_TEST_SEED", "20261127"))

BASE = "https://openplat-test.haier.net"
TOKEN_URL = BASE + "/oauth2/auth"
ALT_TOKEN_URL = BASE + "/oauth2/token"
PASSWORD_TOKEN_URL = "https://ylh-auth.haier.net/oauth/token"
BALANCE_URL = BASE + BALANCE_PATH

CLIENT_ID = "client-4711"
CLIENT_SECRET = "cs-SECRET-5f1e2d9a"
USERNAME = "ylh-user"
PASSWORD = "pw-SECRET-77aa01"
CUSTOMER = "8800633175"
CUSTOMER_PASSWORD = "cust-SECRET-9b3c44"
FALLBACK_PASSWORD = "fallback-SECRET-0d0d"
TOKEN = "tok-SECRET-abc123def456"
TOKEN_2 = "tok-SECRET-second-789"
SECRETS = (CLIENT_SECRET, PASSWORD, CUSTOMER_PASSWORD, FALLBACK_PASSWORD, TOKEN, TOKEN_2)

ENTRIES = [
    {
        "saleGroupCode": "1001",
        "saleGroupName": "空调",
        "payerAccountCode": "P-1001",
        "payerAccountName": "青岛示例",
        "payerAccountBalance": "1250000.00",
    },
    {
        "saleGroupCode": "1002",
        "saleGroupName": "冰箱",
        "payerAccountCode": "P-1002",
        "payerAccountName": "青岛示例",
        "payerAccountBalance": "38000.50",
    },
]


def public_resolver(host: str, port: int) -> list[str]:
    """Every test host resolves to a public address (no DNS in tests)."""
    return ["93.184.216.34"]


def config_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "base_url": BASE,
        "auth": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "auth_scheme": "Bearer",
        "customers": {CUSTOMER: CUSTOMER_PASSWORD},
        "is_active": True,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def make_config(**overrides: Any) -> HaierConfig:
    return HaierConfig.from_dict(config_body(**overrides), resolver=public_resolver)


def password_config(**overrides: Any) -> HaierConfig:
    return make_config(
        auth="password", token_url=PASSWORD_TOKEN_URL, username=USERNAME, password=PASSWORD, **overrides
    )


class FakeTime:
    """A clock, monotonic timer and sleep in one; sleeping moves time, and is recorded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.t = 1000.0
        self.start = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self.t

    def now(self) -> datetime:
        with self._lock:
            return self.start + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.t += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(SEED)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def make_provider(
    fake_time: FakeTime, config: HaierConfig | None = None, **kwargs: Any
) -> HaierBalanceProvider:
    kwargs.setdefault("token_store", InMemoryTokenStore())
    kwargs.setdefault("rng", random.Random(SEED))
    kwargs.setdefault("retry_policy", RetryPolicy())
    return HaierBalanceProvider(
        config or make_config(),
        config_name="test",
        clock=fake_time,
        sleep=fake_time.sleep,
        monotonic=fake_time.monotonic,
        **kwargs,
    )


def envelope(entries: Any = ENTRIES, *, success: bool = True, description: str = "ok") -> dict[str, Any]:
    return {
        "success": success,
        "code": "success" if success else "FAIL",
        "description": description,
        "timeStamp": "20261127080000",
        "data": entries,
    }


def add_token(rsps: responses.RequestsMock, value: str = TOKEN, url: str = TOKEN_URL, **extra: Any) -> None:
    rsps.post(url, json={"access_token": value, "token_type": "bearer", "expires_in": 3600, **extra})


def add_balance(rsps: responses.RequestsMock, body: Any = None, status: int = 200, **kwargs: Any) -> None:
    if isinstance(body, str | bytes):
        rsps.post(BALANCE_URL, body=body, status=status, **kwargs)
    else:
        rsps.post(BALANCE_URL, json=envelope() if body is None else body, status=status, **kwargs)


def calls_to(rsps: responses.RequestsMock, url: str) -> list[Any]:
    return [c for c in rsps.calls if c.request.url == url]


def sent_json(call: Any) -> Any:
    return json.loads(call.request.body)


class LazyBody(io.RawIOBase):
    """A response body made on demand: counts what was read; can break after `break_after` bytes."""

    def __init__(self, size: int, *, break_after: int | None = None, fill: bytes = b" ") -> None:
        self.size = size
        self.served = 0
        self.break_after = break_after
        self.fill = fill

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.break_after is not None and self.served >= self.break_after:
            raise ConnectionResetError("connection reset by peer")
        n = min(len(buffer), self.size - self.served)
        buffer[:n] = self.fill * n
        self.served += n
        return n


def lazy_reader(raw: LazyBody) -> io.BufferedReader:
    return io.BufferedReader(raw, buffer_size=8192)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed:
        report.sections.append(("seed", f"replay with CREDITCTL_TEST_SEED={SEED}"))
    return report
