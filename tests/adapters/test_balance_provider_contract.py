"""The BalanceProvider contract, one suite for every provider: the fake, and Haier's client against the
emulator served over real HTTP on loopback. Same customer, same accounts and exact Decimal amounts; an
unknown customer is UNKNOWN_CUSTOMER; a failing upstream is BalanceUnavailable, never a zero balance;
fetched_at is timezone-aware UTC; a slow upstream never holds the caller past its timeout; a balance
that is not exact money (a third decimal, NaN, huge) is UPSTREAM_MALFORMED, never rounded."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.haier.balance_provider import HaierBalanceProvider
from adapters.haier.config import HaierConfig
from adapters.haier.emulator import create_emulator_app
from adapters.haier.emulator_state import DEMO_CUSTOMERS
from adapters.haier.retry import RetryPolicy
from adapters.haier.token_store import InMemoryTokenStore
from creditctl.domain.balance import BalanceReport, PayerBalance
from creditctl.ports.balance_provider import UPSTREAM_CODES, BalanceProvider, BalanceUnavailable
from tests.adapters.haier_support import EmulatorServer, serving

pytestmark = pytest.mark.adapters

CUSTOMERS = sorted(DEMO_CUSTOMERS)  # 8800633175 (two payer accounts), 8800633176 (a negative balance)
UNKNOWN = "8800999999"

EXPECTED = {
    code: tuple(
        PayerBalance(
            e["saleGroupCode"],
            e["saleGroupName"],
            e["payerAccountCode"],
            e["payerAccountName"],
            Decimal(e["payerAccountBalance"]),
        )
        for e in customer["accounts"]
    )
    for code, customer in DEMO_CUSTOMERS.items()
}


@dataclass
class Subject:
    """A provider under test, and how to make its upstream fail or be slow."""

    provider: BalanceProvider
    kind: str
    emulator: EmulatorServer | None = None
    fake: FakeBalanceProvider | None = None

    def fail(self) -> None:
        if self.fake is not None:
            self.fake.fail_with("SERVICE_UNAVAILABLE")
        else:
            assert self.emulator is not None
            self.emulator.fault("503", target="all")

    def serve_balance(self, customer: str, raw: Any) -> None:
        """The upstream reports `raw` as the balance of the customer's first payer account."""
        accounts = copy.deepcopy(DEMO_CUSTOMERS[customer]["accounts"])
        accounts[0]["payerAccountBalance"] = raw
        if self.fake is not None:
            self.fake.load({customer: accounts})
        else:
            assert self.emulator is not None
            self.emulator.state.set_balance(customer, accounts[0], None)

    def slow(self, delay_s: float) -> None:
        if self.fake is not None:
            self.fake.delay_s = delay_s
        else:
            assert self.emulator is not None
            self.emulator.fault("slow", delay_s=delay_s)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with serving(create_emulator_app()) as server:
        yield server


def haier_provider(emulator: EmulatorServer, **overrides: Any) -> HaierBalanceProvider:
    body = {
        "base_url": emulator.url,
        "auth": "client_credentials",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
        "auth_scheme": "Bearer",
        "customers": {code: c["password"] for code, c in DEMO_CUSTOMERS.items()},
        "timeouts": {"connect_s": 2, "read_s": 5},
        "is_active": True,
        **overrides,
    }
    return HaierBalanceProvider(
        HaierConfig.from_dict(body, allow_loopback=True),
        token_store=InMemoryTokenStore(),
        config_name="contract",
        allow_loopback=True,
        retry_policy=RetryPolicy(base_s=0.01, max_backoff_s=0.05),
    )


@pytest.fixture(params=["fake", "haier"])
def subject(request: pytest.FixtureRequest) -> Subject:
    if request.param == "fake":
        fake = FakeBalanceProvider({code: c["accounts"] for code, c in DEMO_CUSTOMERS.items()})
        return Subject(fake, "fake", fake=fake)
    emulator: EmulatorServer = request.getfixturevalue("emulator")
    emulator.fault("none")
    request.addfinalizer(lambda: emulator.fault("none"))
    for code, customer in DEMO_CUSTOMERS.items():  # undo serve_balance on the shared emulator
        request.addfinalizer(
            lambda code=code, entry=copy.deepcopy(customer["accounts"][0]): emulator.state.set_balance(
                code, entry, None
            )
        )
    return Subject(haier_provider(emulator), "haier", emulator=emulator)


@pytest.mark.parametrize("customer", CUSTOMERS)
def test_same_customer_same_accounts_and_exact_amounts(subject: Subject, customer: str) -> None:
    report = subject.provider.fetch(customer, timeout_s=5)
    assert isinstance(report, BalanceReport)
    assert report.customer_code == customer
    assert report.accounts == EXPECTED[customer]
    assert all(type(a.amount) is Decimal for a in report.accounts)
    assert [str(a.amount) for a in report.accounts] == [
        e["payerAccountBalance"] for e in DEMO_CUSTOMERS[customer]["accounts"]
    ]


def test_fetched_at_is_timezone_aware_utc_and_source_named(subject: Subject) -> None:
    report = subject.provider.fetch(CUSTOMERS[0], timeout_s=5)
    assert report.fetched_at.tzinfo is not None
    assert report.fetched_at.utcoffset() == timedelta(0)
    assert isinstance(report.source, str) and report.source.startswith(subject.kind)


def test_the_configured_customers_are_listed(subject: Subject) -> None:
    assert sorted(subject.provider.customers()) == CUSTOMERS


def test_an_unknown_customer_is_unknown_customer(subject: Subject) -> None:
    with pytest.raises(BalanceUnavailable) as caught:
        subject.provider.fetch(UNKNOWN, timeout_s=5)
    assert caught.value.code == "UNKNOWN_CUSTOMER"


def test_a_failing_upstream_is_balance_unavailable_never_a_zero_balance(subject: Subject) -> None:
    subject.fail()
    for customer in CUSTOMERS:
        with pytest.raises(BalanceUnavailable) as caught:
            subject.provider.fetch(customer, timeout_s=5)
        assert caught.value.code in UPSTREAM_CODES


def test_a_slow_upstream_never_holds_the_caller_past_its_timeout(subject: Subject) -> None:
    subject.slow(2.0)
    started = time.monotonic()
    with pytest.raises(BalanceUnavailable) as caught:
        subject.provider.fetch(CUSTOMERS[0], timeout_s=0.5)
    assert caught.value.code == "UPSTREAM_TIMEOUT"
    assert time.monotonic() - started < 1.2


@pytest.mark.parametrize(
    "raw", ["1000.005", "-0.001", "NaN", "Infinity", "1e30", "1000000000000.01", "12,50", "", None, True]
)
def test_a_balance_that_is_not_exact_money_is_malformed_never_rounded(subject: Subject, raw: Any) -> None:
    subject.serve_balance(CUSTOMERS[0], raw)
    with pytest.raises(BalanceUnavailable) as caught:
        subject.provider.fetch(CUSTOMERS[0], timeout_s=5)
    assert caught.value.code == "UPSTREAM_MALFORMED"


@pytest.mark.parametrize(
    ("raw", "expected"), [("-1520.75", "-1520.75"), ("999999999999.99", "999999999999.99")]
)
def test_negative_and_largest_balances_are_kept_exactly(subject: Subject, raw: str, expected: str) -> None:
    subject.serve_balance(CUSTOMERS[0], raw)
    report = subject.provider.fetch(CUSTOMERS[0], timeout_s=5)
    assert report.accounts[0].amount == Decimal(expected)


# -- Haier only: every fault of the emulator is an error with a stable code, never a balance ---------


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("500", "SERVICE_UNAVAILABLE"),
        ("503", "SERVICE_UNAVAILABLE"),
        ("429", "RATE_LIMITED"),
        ("malformed", "UPSTREAM_MALFORMED"),
        ("reset", "SERVICE_UNAVAILABLE"),
        ("wrong_password", "BALANCE_QUERY_FAILED"),
    ],
)
def test_every_emulator_fault_maps_to_its_code(emulator: EmulatorServer, mode: str, code: str) -> None:
    emulator.fault("none")
    provider = haier_provider(emulator)
    provider.fetch(CUSTOMERS[0], timeout_s=5)  # a token first, so the fault hits the balance call
    emulator.fault(mode)
    try:
        with pytest.raises(BalanceUnavailable) as caught:
            provider.fetch(CUSTOMERS[0], timeout_s=3)
    finally:
        emulator.fault("none")
    assert caught.value.code == code


def test_a_customer_only_the_fallback_password_covers_is_refused_not_zero(emulator: EmulatorServer) -> None:
    """With a shared customer_password every code is "configured"; the platform's refusal of one it
    does not know is BALANCE_QUERY_FAILED (the platform has no documented not-found code)."""
    emulator.fault("none")
    provider = haier_provider(emulator, customer_password="demo-175")
    with pytest.raises(BalanceUnavailable) as caught:
        provider.fetch(UNKNOWN, timeout_s=5)
    assert caught.value.code == "BALANCE_QUERY_FAILED"
