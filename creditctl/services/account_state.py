"""Bring a locked account up to date before anything is decided on it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from creditctl.domain.account import CreditAccount
from creditctl.domain.assessment import Assessment
from creditctl.domain.audit import SYSTEM
from creditctl.domain.audit_records import account_subject
from creditctl.domain.balance import BalanceReport
from creditctl.domain.decision import Decision
from creditctl.domain.hold import Hold, HoldStatus
from creditctl.domain.low_balance import TOPIC as BALANCE_LOW
from creditctl.domain.low_balance import rearm, take_alert
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.balances import adopt_report
from creditctl.services.credit_profile import account_params, recompute_profile
from rules import Outcome


def refresh_locked_account(
    uow: UnitOfWork,
    account: CreditAccount,
    report: BalanceReport | None,
    now: datetime,
    *,
    params: Mapping[str, Decimal] | None = None,
) -> None:
    """End holds past their expiry, take a newer balance, and stop counting settlements it includes;
    recompute the credit profile once its date has passed (the first time on a new UTC day).

    The common case (nothing due, no new snapshot, profile of today) runs no statement here."""
    if account.may_have_due_holds(now):
        expire_due_holds(uow, account, now)
    snapshot = adopt_report(account, report)
    if snapshot is not None:
        account.exposure -= uow.holds.stop_counting_settled(account.id, snapshot.fetched_at)
        uow.balance_history.add(account.id, snapshot)
    if account.credit.is_stale(now):
        if params is None:
            params = account_params(uow, account)
        recompute_profile(uow, account, params, now, trigger="daily", by="creditctl")
    if account.low_balance_alerted:  # money came back since the alert: the next fall alerts again
        rearm(account, params if params is not None else account_params(uow, account))


def expire_due_holds(uow: UnitOfWork, account: CreditAccount, now: datetime) -> Decimal:
    """Under the lock: end the account's holds past their expiry; one audit event when any ended."""
    expired = uow.holds.expire_due(account.id, now)
    if expired:
        before = account.exposure
        account.exposure -= expired
        uow.audit.append(
            "holds.expired",
            at=now,
            actor=SYSTEM,
            subject=account_subject(account),
            before={"exposure": before},
            after={"exposure": account.exposure, "expired_amount": expired},
        )
    return expired


def apply_outcome(
    uow: UnitOfWork,
    decision: Decision,
    account: CreditAccount,
    assessment: Assessment,
    params: dict[str, Decimal],
    now: datetime,
) -> None:
    """Reserve what is approved, freeze what must be frozen, and queue the notifications rules asked for."""
    if assessment.unfrozen:
        account.unfreeze()
    if decision.outcome is Outcome.APPROVE:
        decision.hold = Hold(
            id=uuid4().hex,
            account_id=account.id,
            order_id=decision.order_id,
            decision_id=decision.id,
            amount=decision.order.amount,
            status=HoldStatus.OPEN,
            created_at=now,
            expires_at=now + timedelta(seconds=int(params["hold_ttl_s"])),
        )
        account.exposure += decision.order.amount
    elif decision.outcome is Outcome.FREEZE and not account.is_frozen:
        first = next((r for r in decision.reasons if r.rule != "upstream"), None)
        account.freeze(
            reason=first.reason if first else "FROZEN_BY_RULE",
            by=f"rule:{first.rule if first else 'unknown'}",
            now=now,
        )


def queue_notifications(uow: UnitOfWork, decision: Decision, account: CreditAccount, now: datetime) -> None:
    """Each `notify:<topic>` action becomes an outbox row in the decision's own transaction;
    `notify:balance.low` only on the order that crosses below the threshold (once per crossing)."""
    for action in decision.actions:
        if not action.startswith("notify:"):
            continue
        if action == f"notify:{BALANCE_LOW}" and not take_alert(account):
            continue
        uow.outbox.add(
            event_id=uuid4().hex,
            topic=action.removeprefix("notify:"),
            payload={
                "order_id": decision.order_id,
                "decision_id": decision.id,
                "customer_code": account.customer_code,
                "sale_group_code": account.sale_group_code,
                "amount": str(decision.order.amount),
                "available": None if decision.available is None else str(decision.available),
                "reasons": [r.reason for r in decision.reasons],
            },
            now=now,
        )
