"""Freezes are kept with their history and events: made by the rules or by hand, lifted by hand or by the
rule set's auto_unfreeze condition, which never lifts an administrator's freeze."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.fake.clock import FakeClock
from creditctl.domain.account import AccountStatus
from creditctl.domain.audit import AuditQuery
from creditctl.domain.freeze import LiftedHow
from creditctl.services.audit import list_audit_events
from creditctl.services.freeze_account import freeze_account, unfreeze_account
from creditctl.services.freeze_history import account_freezes
from rules import Outcome, default_rule_set_document
from tests.keys import key
from tests.unit.services.conftest import CUSTOMER, GROUP, Desk

pytestmark = pytest.mark.unit


def topics(desk: Desk) -> list[str]:
    return [e["topic"] for e in desk.uow.store.state.outbox if e["topic"].startswith("account.")]


def with_auto_unfreeze(desk: Desk, clock: FakeClock) -> None:
    """Lift a rule's freeze once the balance is above 500.00 and no invoice is overdue."""
    document = default_rule_set_document()
    document["auto_unfreeze"] = {
        "all": [
            {"fact": "balance.amount", "op": "gt", "value": 500},
            {"fact": "payment.max_overdue_days", "op": "eq", "value": 0},
        ]
    }
    with desk.uow:
        desk.uow.rule_sets.publish("with auto unfreeze", document, clock.now())
        desk.uow.commit()


def audited(desk: Desk, *types: str) -> list[dict[str, Any]]:
    """The account's audit events of these types, in chain order."""
    found = list_audit_events(AuditQuery(customer_code=CUSTOMER, limit=1000), uow=desk.uow)
    return [e.data for e in found if e.data["type"] in types]


def frozen_by_rule(desk: Desk) -> None:
    desk.new_balance("0.00")
    assert desk.decide("10.00").outcome is Outcome.FREEZE
    assert desk.account().frozen_by == "rule:depleted"


class TestFreezeHistory:
    def test_a_rule_freeze_and_a_manual_unfreeze_are_kept_with_their_events(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        frozen_by_rule(desk)
        unfreeze_account(CUSTOMER, GROUP, reason="paid", who=key("ops"), uow=desk.uow)
        [freeze] = account_freezes(CUSTOMER, GROUP, scope=None, uow=desk.uow)
        assert (freeze.reason, freeze.frozen_by) == ("BALANCE_DEPLETED", "rule:depleted")
        assert (freeze.lifted_how, freeze.lifted_by, freeze.lift_reason) == (
            LiftedHow.MANUAL,
            "admin:ops",
            "paid",
        )
        assert freeze.lifted_at == clock.now()
        assert topics(desk) == ["account.frozen", "account.unfrozen"]

    def test_an_administrators_freeze_takes_over_a_rule_freeze(self, desk: Desk, clock: FakeClock) -> None:
        frozen_by_rule(desk)
        freeze_account(CUSTOMER, GROUP, reason="dispute", who=key("ops"), uow=desk.uow)
        manual, rule = account_freezes(CUSTOMER, GROUP, scope=None, uow=desk.uow)
        assert (manual.frozen_by, manual.lifted_at) == ("admin:ops", None)
        assert rule.lifted_how is LiftedHow.REPLACED
        assert topics(desk) == ["account.frozen", "account.frozen"]  # never unfrozen in between


class TestAutoUnfreeze:
    def test_lifts_a_rule_freeze_when_the_condition_holds(self, desk: Desk, clock: FakeClock) -> None:
        with_auto_unfreeze(desk, clock)
        frozen_by_rule(desk)
        desk.new_balance("400.00")  # above zero, below the condition's 500.00: still frozen
        assert desk.decide("10.00").outcome is Outcome.BLOCK
        desk.new_balance("900.00")
        assert desk.decide("10.00").outcome is Outcome.APPROVE
        assert desk.account().status is AccountStatus.ACTIVE
        [freeze] = account_freezes(CUSTOMER, GROUP, scope=None, uow=desk.uow)
        assert freeze.lifted_how is LiftedHow.RULE
        assert topics(desk) == ["account.frozen", "account.unfrozen"]
        trail = audited(desk, "account.frozen", "account.unfrozen")
        assert [(e["type"], e["actor"]) for e in trail] == [
            ("account.frozen", {"name": "rule:depleted", "role": "rule"}),
            ("account.unfrozen", {"name": "rules:auto_unfreeze", "role": "rule"}),
        ]
        assert trail[0]["before"]["status"] == "active" and trail[0]["after"]["status"] == "frozen"
        assert trail[0]["after"]["frozen_reason"] == "BALANCE_DEPLETED"
        assert trail[1]["after"] | {"reason": "auto_unfreeze condition held"} == trail[1]["after"]
        assert trail[1]["after"]["status"] == "active"
        frozen_by = trail[0]["subject"]["order_id"]  # the order that set the freeze off finds it
        found = list_audit_events(AuditQuery(order_id=frozen_by, limit=10), uow=desk.uow)
        assert "account.frozen" in [e.data["type"] for e in found]

    def test_stays_frozen_while_an_invoice_is_overdue(self, desk: Desk, clock: FakeClock) -> None:
        with_auto_unfreeze(desk, clock)
        frozen_by_rule(desk)
        desk.set_params(max_overdue_days="100")  # overdue is tolerated by the rules, not by the condition
        account = desk.account()
        with desk.uow:
            locked = desk.uow.accounts.lock(CUSTOMER, GROUP)
            assert locked is not None
            locked.payment = type(account.payment)(max_overdue_days=3)
            locked.credit.valid_until = clock.now().replace(year=2100)
            desk.uow.accounts.save(locked)
            desk.uow.commit()
        desk.new_balance("900.00")
        assert desk.decide("10.00").outcome is Outcome.BLOCK
        assert desk.account().status is AccountStatus.FROZEN

    def test_never_lifts_an_administrators_freeze(self, desk: Desk, clock: FakeClock) -> None:
        with_auto_unfreeze(desk, clock)
        freeze_account(CUSTOMER, GROUP, reason="dispute", who=key("ops"), uow=desk.uow)
        desk.new_balance("900.00")
        assert desk.decide("10.00").outcome is Outcome.BLOCK
        assert desk.account().frozen_by == "admin:ops"
        [freeze] = account_freezes(CUSTOMER, GROUP, scope=None, uow=desk.uow)
        assert freeze.lifted_at is None
