"""Rule set services on the fake unit of work: drafts, publication by the database's clock,
assignments deciding orders."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.fake.clock import FakeClock
from adapters.fake.unit_of_work import FakeUnitOfWork
from creditctl.domain.decision import Order
from creditctl.domain.errors import RuleSetNotDraft, RuleSetRefused
from creditctl.services.decide_order import decide_order
from creditctl.services.rule_set_assignments import (
    WHOLE_CUSTOMER,
    assign_rule_set,
    pins_by_rule_set,
    set_account_params,
)
from creditctl.services.rule_sets import (
    create_draft,
    list_rule_sets,
    publish_rule_set,
    rollback_rule_set,
    update_draft,
)
from rules import default_rule_set_document
from tests.random_refs import random_order_id
from tests.unit.services.conftest import CUSTOMER, OTHER_CUSTOMER, RICH_GROUP


def _reviewing_everything() -> dict:  # type: ignore[type-arg]
    document = default_rule_set_document()
    document["params"]["single_order_review_amount"] = "1.00"
    return document


def _decide(uow: FakeUnitOfWork, balances: FakeBalanceProvider, clock: FakeClock, amount: str = "50.00"):  # type: ignore[no-untyped-def]
    order = Order(random_order_id(), CUSTOMER, RICH_GROUP, Decimal(amount))
    return decide_order(order, scope=None, uow=uow, balances=balances).decision


class TestPublishing:
    def test_a_scheduled_version_becomes_the_default_when_the_database_clock_reaches_it(
        self, uow: FakeUnitOfWork, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        draft = create_draft("review", _reviewing_everything(), by="alice", uow=uow)
        published = publish_rule_set(
            draft.record.id,
            reason="later",
            effective_at=clock.now() + timedelta(hours=1),
            by="alice",
            uow=uow,
        )
        assert published.status.value == "published"
        assert _decide(uow, balances, clock).rule_set_version == 1
        clock.advance(3601)
        assert _decide(uow, balances, clock).rule_set_version == 2
        assert [s.status.value for s in list_rule_sets(uow=uow)] == ["retired", "active"]

    def test_a_published_version_is_immutable_and_an_invalid_draft_is_not_published(
        self, uow: FakeUnitOfWork
    ) -> None:
        with pytest.raises(RuleSetNotDraft, match="cannot change"):
            update_draft(1, "x", {}, uow=uow)
        draft = create_draft("bad", {"name": "bad", "rules": [{"id": "a"}]}, by="alice", uow=uow)
        with pytest.raises(RuleSetRefused) as refused:
            publish_rule_set(draft.record.id, reason="x", effective_at=None, by="alice", uow=uow)
        assert set(refused.value.errors) == {"/rules/0"}


class TestAssignments:
    def test_an_account_assignment_decides_its_orders_and_its_overrides_apply_on_top(
        self, uow: FakeUnitOfWork, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        _decide(uow, balances, clock)  # the account exists
        draft = create_draft("review", _reviewing_everything(), by="alice", uow=uow)
        publish_rule_set(draft.record.id, reason="x", effective_at=None, by="alice", uow=uow)
        rollback_rule_set(1, reason="v1 stays the default", by="alice", uow=uow)  # v2: assignable only
        assign_rule_set(CUSTOMER, RICH_GROUP, draft.record.id, reason="risky", by="alice", uow=uow)
        decided = _decide(uow, balances, clock)
        assert (decided.outcome.value, decided.rule_set_version) == ("defer", 2)
        set_account_params(CUSTOMER, RICH_GROUP, {"single_order_review_amount": "1000.00"}, uow=uow)
        assert _decide(uow, balances, clock).outcome.value == "approve"

    def test_a_retired_version_still_pinned_says_where_as_the_caller_may_see(
        self, uow: FakeUnitOfWork, balances: FakeBalanceProvider, clock: FakeClock
    ) -> None:
        _decide(uow, balances, clock)  # the account exists
        draft = create_draft("next", None, by="alice", uow=uow)
        publish_rule_set(draft.record.id, reason="next", effective_at=None, by="alice", uow=uow)
        assign_rule_set(CUSTOMER, RICH_GROUP, 1, reason="exempt", by="alice", uow=uow)
        assign_rule_set(OTHER_CUSTOMER, "", 1, reason="stays", by="bob", uow=uow)
        assert [listing.status.value for listing in list_rule_sets(uow=uow)] == ["retired", "active"]
        pins = pins_by_rule_set(scope=None, uow=uow)
        assert list(pins) == [1]
        assert [(a.customer_code, a.sale_group_code, a.reason) for a in pins[1]] == [
            (CUSTOMER, RICH_GROUP, "exempt"),
            (OTHER_CUSTOMER, "", "stays"),
        ]
        mine = pins_by_rule_set(scope=frozenset({CUSTOMER}), uow=uow)
        assert [(a.customer_code, a.sale_group_code) for a in mine[1]] == [(CUSTOMER, RICH_GROUP)]

    @pytest.mark.parametrize("group", [RICH_GROUP, WHOLE_CUSTOMER], ids=["account", "customer"])
    def test_a_pinned_version_scheduled_for_later_decides_from_its_effective_at_on(
        self, uow: FakeUnitOfWork, balances: FakeBalanceProvider, clock: FakeClock, group: str
    ) -> None:
        _decide(uow, balances, clock)  # the account exists
        draft = create_draft("review", _reviewing_everything(), by="alice", uow=uow)
        later = clock.now() + timedelta(days=1)
        publish_rule_set(draft.record.id, reason="x", effective_at=later, by="alice", uow=uow)
        assign_rule_set(CUSTOMER, group, draft.record.id, reason="from tomorrow", by="alice", uow=uow)
        before = _decide(uow, balances, clock)
        assert (before.outcome.value, before.rule_set_version) == ("approve", 1)  # what applies without it
        clock.advance(86400)
        after = _decide(uow, balances, clock)
        assert (after.outcome.value, after.rule_set_version) == ("defer", 2)
