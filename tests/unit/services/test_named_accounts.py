"""open_named_account and the services that use it: a payer account the provider names is usable on every
route from the start; one it does not name stays unknown; nothing asked for outside the caller's scope."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.fake.unit_of_work import FakeStore, FakeUnitOfWork
from creditctl.domain.api_key import ApiKey, Role
from creditctl.domain.authority import Operator
from creditctl.domain.errors import UnknownAccount, UnknownCustomer, UpstreamUnavailable
from creditctl.domain.payment import PaymentRecord
from creditctl.services.account_holds import list_holds
from creditctl.services.account_view import view_account
from creditctl.services.credit_profile import set_base_limit, view_credit_profile
from creditctl.services.customers import register_customer
from creditctl.services.freeze_account import freeze_account, unfreeze_account
from creditctl.services.freeze_history import account_freezes
from creditctl.services.limit_requests import RequestLimit, list_limit_requests, request_limit
from creditctl.services.named_accounts import open_named_account
from creditctl.services.payments import PostPayments, list_payments, post_payments
from creditctl.services.rule_set_assignments import assign_rule_set, set_account_params, unassign_rule_set
from rules import Outcome
from tests.keys import key
from tests.unit.services.conftest import CUSTOMER, Desk

pytestmark = pytest.mark.unit

NEW = "8800000003"  # named by the provider with GC30 and GD40; no order, no refresh
ADMIN = ApiKey(
    id=1, name="admin", role=Role.ADMIN, customers=None, created_at=datetime(2026, 1, 1, tzinfo=UTC)
)


@pytest.fixture
def named(desk: Desk, balances: FakeBalanceProvider) -> Desk:
    balances.set_balance(NEW, "GC30", "700.00")
    balances.set_balance(NEW, "GD40", "900.00")
    return desk


@pytest.fixture
def kept(named: Desk, clock: FakeClock) -> Desk:
    """NEW registered, its first order (GC30) kept the provider's answer naming GD40 too."""
    register_customer(NEW, uow=named.uow, clock=clock)
    assert named.decide("100.00", customer=NEW, group="GC30").outcome is Outcome.APPROVE
    return named


def open_(desk: Desk, group: str = "GD40", *, customer: str = NEW, **kw: Any) -> None:
    kw.setdefault("balances", desk.balances)
    open_named_account(desk.uow, kw.pop("balances"), customer, group, kw.pop("scope", None), **kw)


def opened(store: FakeStore, group: str = "GD40", customer: str = NEW) -> bool:
    return (customer, group) in store.state.accounts


class TestOpening:
    def test_a_group_the_kept_answer_names_is_opened_with_its_balance_without_asking_again(
        self, kept: Desk, balances: FakeBalanceProvider, clock: FakeClock, store: FakeStore
    ) -> None:
        answered_at, calls = clock.now(), len(balances.calls)
        clock.advance(3600)  # any age: the provider named it
        open_(kept)
        assert len(balances.calls) == calls
        account = kept.account(NEW, "GD40")
        assert account.snapshot is not None
        assert (account.snapshot.amount, account.snapshot.fetched_at) == (Decimal("900.00"), answered_at)
        assert account.exposure == Decimal("0.00")
        assert store.state.balance_history[-1] == (account.id, account.snapshot)

    def test_opening_twice_is_one_account_and_the_second_time_writes_nothing(
        self, kept: Desk, store: FakeStore
    ) -> None:
        open_(kept)
        commits, account_id = store.commits, kept.account(NEW, "GD40").id
        open_(kept)
        assert store.commits == commits
        assert kept.account(NEW, "GD40").id == account_id
        assert [g for c, g in store.state.accounts if c == NEW] == ["GC30", "GD40"]

    def test_a_group_a_young_kept_answer_does_not_name_is_unknown_without_asking(
        self, kept: Desk, balances: FakeBalanceProvider, store: FakeStore
    ) -> None:
        balances.set_balance(NEW, "GE50", "1.00")  # opened at Haier after the answer
        calls, commits = len(balances.calls), store.commits
        with pytest.raises(
            UnknownAccount, match="customer '8800000003' has no payer account in sales group 'GE50'"
        ):
            open_(kept, "GE50")
        assert (len(balances.calls), store.commits) == (calls, commits)

    def test_once_the_kept_answer_is_older_than_refresh_after_s_the_provider_is_asked(
        self, kept: Desk, balances: FakeBalanceProvider, clock: FakeClock, store: FakeStore
    ) -> None:
        balances.set_balance(NEW, "GE50", "1.00")
        clock.advance(300)
        calls = len(balances.calls)
        open_(kept, "GE50")
        assert len(balances.calls) == calls + 1
        assert opened(store, "GE50")
        assert store.state.balance_reports[NEW].for_sale_group("GE50") is not None  # the new answer kept

    def test_with_nothing_kept_the_provider_is_asked_once_and_its_answer_kept(
        self, named: Desk, balances: FakeBalanceProvider, store: FakeStore, clock: FakeClock
    ) -> None:
        register_customer(NEW, uow=named.uow, clock=clock)
        calls = len(balances.calls)
        open_(named, "GC30")
        open_(named, "GD40")
        assert len(balances.calls) == calls + 1
        assert opened(store, "GC30") and opened(store, "GD40")

    def test_a_customer_the_provider_names_is_registered_on_first_use(
        self, named: Desk, store: FakeStore
    ) -> None:
        assert NEW not in store.state.customers
        open_(named)
        assert NEW in store.state.customers and opened(store)

    def test_an_unknown_customer_is_unknown_and_nothing_is_asked_or_written(
        self, desk: Desk, balances: FakeBalanceProvider, store: FakeStore
    ) -> None:
        calls, commits = len(balances.calls), store.commits
        with pytest.raises(UnknownAccount):
            open_(desk, customer="9999999999")
        assert (len(balances.calls), store.commits) == (calls, commits)

    def test_outside_the_caller_s_scope_nothing_is_asked_or_written(
        self, named: Desk, balances: FakeBalanceProvider, store: FakeStore
    ) -> None:
        calls, commits = len(balances.calls), store.commits
        with pytest.raises(UnknownCustomer):
            open_(named, scope=frozenset({CUSTOMER}))
        assert (len(balances.calls), store.commits) == (calls, commits)

    @pytest.mark.parametrize("code", ["SERVICE_UNAVAILABLE", "UPSTREAM_TIMEOUT", "CIRCUIT_OPEN"])
    def test_an_unanswered_question_is_upstream_unavailable_never_unknown(
        self, named: Desk, balances: FakeBalanceProvider, store: FakeStore, clock: FakeClock, code: str
    ) -> None:
        register_customer(NEW, uow=named.uow, clock=clock)
        balances.fail_with(code)
        commits = store.commits
        with pytest.raises(UpstreamUnavailable, match="cannot verify sales group 'GD40'"):
            open_(named)
        assert store.commits == commits

    def test_a_customer_the_upstream_does_not_know_has_no_account(
        self, desk: Desk, balances: FakeBalanceProvider, clock: FakeClock, store: FakeStore
    ) -> None:
        register_customer("8800000004", uow=desk.uow, clock=clock)  # registered, unknown to Haier
        with pytest.raises(UnknownAccount):
            open_(desk, customer="8800000004")
        assert not opened(store, customer="8800000004")

    def test_without_a_provider_only_the_kept_answer_opens(self, kept: Desk, store: FakeStore) -> None:
        open_(kept, balances=None)
        assert opened(store)
        with pytest.raises(UnknownAccount):
            open_(kept, "GD40", customer="8800000009", balances=None)  # nothing kept for it

    def test_an_account_a_decision_opened_meanwhile_is_left_as_it_is(
        self, kept: Desk, store: FakeStore, clock: FakeClock
    ) -> None:
        kept.decide("100.00", customer=NEW, group="GD40")
        before = kept.account(NEW, "GD40")
        commits = store.commits
        open_(kept)
        assert store.commits == commits
        assert kept.account(NEW, "GD40") == before


FINANCE = Operator("finance")


def _payments(desk: Desk) -> Any:
    record = PaymentRecord("INV-1", Decimal("100.00"), desk.clock.now().date() - timedelta(days=3))
    return post_payments(
        PostPayments(NEW, "GD40", [record], by="finance"), who=FINANCE, uow=desk.uow, balances=desk.balances
    )


# Every service that works on one account, called on GD40 (named, never ordered in) with the provider.
SERVICES: dict[str, Callable[[Desk], Any]] = {
    "post_payments": _payments,
    "list_payments": lambda d: list_payments(
        NEW, "GD40", after=None, limit=10, scope=None, uow=d.uow, balances=d.balances
    ),
    "view_credit_profile": lambda d: view_credit_profile(
        NEW, "GD40", scope=None, uow=d.uow, balances=d.balances
    ),
    "set_base_limit": lambda d: set_base_limit(
        NEW,
        "GD40",
        base_limit=Decimal("10.00"),
        reason="r",
        who=key("a"),
        uow=d.uow,
        balances=d.balances,
    ),
    "request_limit": lambda d: request_limit(
        RequestLimit(NEW, "GD40", Decimal("10.00"), d.clock.now() + timedelta(days=1), "r"),
        key=ADMIN,
        uow=d.uow,
        balances=d.balances,
    ),
    "list_limit_requests": lambda d: list_limit_requests(
        customer_code=NEW, sale_group_code="GD40", status=None, scope=None, uow=d.uow, balances=d.balances
    ),
    "freeze_account": lambda d: freeze_account(
        NEW, "GD40", reason="r", who=key("a"), uow=d.uow, balances=d.balances
    ),
    "unfreeze_account": lambda d: unfreeze_account(
        NEW, "GD40", reason="r", who=key("a"), uow=d.uow, balances=d.balances
    ),
    "account_freezes": lambda d: account_freezes(NEW, "GD40", scope=None, uow=d.uow, balances=d.balances),
    "view_account": lambda d: view_account(NEW, "GD40", scope=None, uow=d.uow, balances=d.balances),
    "list_holds": lambda d: list_holds(
        NEW, "GD40", statuses=None, after=None, limit=10, scope=None, uow=d.uow, balances=d.balances
    ),
    "assign_rule_set": lambda d: assign_rule_set(
        NEW, "GD40", 1, reason="r", by="a", uow=d.uow, balances=d.balances
    ),
    "unassign_rule_set": lambda d: unassign_rule_set(NEW, "GD40", uow=d.uow, balances=d.balances),
    "set_account_params": lambda d: set_account_params(
        NEW, "GD40", {"max_overdue_days": 30}, uow=d.uow, balances=d.balances
    ),
}


class TestEveryAccountService:
    @pytest.mark.parametrize("service", sorted(SERVICES))
    def test_works_on_a_named_account_no_order_has_opened(
        self, kept: Desk, store: FakeStore, service: str
    ) -> None:
        assert not opened(store)
        SERVICES[service](kept)
        assert opened(store)

    def test_payments_posted_before_the_first_order_count_in_it(self, kept: Desk, clock: FakeClock) -> None:
        record = PaymentRecord("INV-9", Decimal("100.00"), clock.now().date() - timedelta(days=120))
        post_payments(
            PostPayments(NEW, "GD40", [record], by="finance"),
            who=FINANCE,
            uow=kept.uow,
            balances=kept.balances,
        )
        decision = kept.decide("10.00", customer=NEW, group="GD40")
        assert decision.outcome is Outcome.FREEZE  # 120 days overdue > max_overdue_days 90
        assert "PAYMENT_OVERDUE" in [r.reason for r in decision.reasons]

    def test_without_the_provider_a_service_finds_only_what_the_kept_answer_names(
        self, kept: Desk, store: FakeStore
    ) -> None:
        view_account(NEW, "GD40", scope=None, uow=kept.uow)
        with pytest.raises(UnknownAccount):
            view_account(NEW, "ZZ99", scope=None, uow=kept.uow)
        assert opened(store) and not opened(store, "ZZ99")


def test_the_fake_unit_of_work_keeps_the_newest_answer_only(
    uow: FakeUnitOfWork, balances: FakeBalanceProvider
) -> None:
    older = balances.fetch(CUSTOMER, timeout_s=1)
    newer = type(older)(
        older.customer_code, older.accounts[:1], older.fetched_at + timedelta(seconds=1), "fake"
    )
    with uow:
        uow.balance_reports.keep(newer)
        uow.balance_reports.keep(older)
        uow.commit()
    with uow:
        assert uow.balance_reports.latest(CUSTOMER) == newer
