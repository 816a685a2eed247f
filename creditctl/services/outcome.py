"""What an assessment does to a locked account: holds, freezes, notifications; and evaluating the
account's deferred orders again when a newer balance arrives."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from creditctl.domain.account import CreditAccount
from creditctl.domain.assessment import Assessment, assess, effective_params
from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.audit_records import (
    account_status,
    account_subject,
    decided_state,
    decision_state,
    decision_subject,
)
from creditctl.domain.decision import Decision, DecisionState, Reason
from creditctl.domain.freeze import LiftedHow
from creditctl.domain.hold import Hold, HoldStatus
from creditctl.domain.low_balance import TOPIC as BALANCE_LOW
from creditctl.domain.low_balance import take_alert
from creditctl.domain.rule_set import RuleSetVersion
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.expiry import end_deferral_if_due
from creditctl.services.freeze_history import record_freeze, record_lift
from rules import Outcome

REQUEUE_LIMIT = 100  # deferred orders evaluated again per adopted balance; the rest on the next one


def reassess_locked(
    uow: UnitOfWork,
    decision: Decision,
    locked: CreditAccount,
    rule_set: RuleSetVersion,
    now: datetime,
    *,
    upstream_error: Reason | None = None,
    actor: Actor = SYSTEM,
) -> Decision:
    """Under the account lock: evaluate a deferred order again and store what it now is (an approval
    takes its hold and raises the exposure). decided_at stays; rechecked_at and rechecks move. One audit
    event records it (by `actor`: the caller of a recheck, or creditctl when a newer balance came)."""
    before = decision_state(decision)
    assessment = assess(decision.order, locked, rule_set.rules, now, upstream_error=upstream_error)
    decision.outcome = assessment.outcome
    decision.reasons = assessment.reasons
    decision.actions = assessment.actions
    decision.balance = locked.snapshot
    decision.exposure = locked.exposure
    decision.available = assessment.available
    decision.credit_limit = assessment.credit_limit
    decision.credit_grade = assessment.credit_grade
    decision.shortfall = assessment.shortfall
    decision.rule_set_id, decision.rule_set_version = rule_set.id, rule_set.version
    decision.rechecked_at = now  # decided_at stays the order's first decision
    decision.facts = assessment.facts
    decision.rechecks += 1
    if assessment.outcome is not Outcome.DEFER:
        decision.state = DecisionState.DECIDED
    apply_outcome(uow, decision, locked, assessment, effective_params(rule_set.rules, locked), now)
    uow.decisions.update(decision)
    if decision.hold is not None:
        uow.holds.add(decision.hold)
    queue_notifications(uow, decision, locked, now)
    uow.audit.append(
        "decision.rechecked",
        at=now,
        actor=actor,
        subject=decision_subject(decision),
        before=before,
        after=decided_state(decision, locked),
    )
    return decision


def recheck_account_queue(
    uow: UnitOfWork, locked: CreditAccount, now: datetime, *, actor: Actor = SYSTEM
) -> int:
    """Under the account lock, with a newer balance adopted: the account's deferred orders, oldest
    first, are ended if their deferral ran out or evaluated again (recorded as `actor`'s: the request
    that brought the balance, or creditctl); returns how many were looked at."""
    deferred = uow.decisions.deferred_on_account(locked.id, REQUEUE_LIMIT)
    if not deferred:
        return 0
    rule_set = uow.rule_sets.for_account(locked.customer_code, locked.sale_group_code).rule_set
    for decision in deferred:
        if not end_deferral_if_due(uow, decision, now):
            reassess_locked(uow, decision, locked, rule_set, now, actor=actor)
    return len(deferred)


def apply_outcome(
    uow: UnitOfWork,
    decision: Decision,
    account: CreditAccount,
    assessment: Assessment,
    params: dict[str, Decimal],
    now: datetime,
) -> None:
    """Reserve what is approved, freeze what must be frozen, and queue the notifications rules asked for.

    A freeze or unfreeze by the rules is an audit event of its own (actor: the rule), as an
    administrator's is, so `?type=account.frozen` finds every freeze however it came."""
    if assessment.unfrozen:
        before, reason = account_status(account), "auto_unfreeze condition held"
        record_lift(uow, account, how=LiftedHow.RULE, by="rules:auto_unfreeze", reason=reason, now=now)
        _rule_event(
            uow, "account.unfrozen", account, "rules:auto_unfreeze", before, now,
            order_id=decision.order_id, reason=reason,
        )  # fmt: skip
    if decision.outcome is Outcome.APPROVE:
        _reserve(decision, account, params, now)
    elif decision.outcome is Outcome.FREEZE and not account.is_frozen:
        first = next((r for r in decision.reasons if r.rule != "upstream"), None)
        before, by = account_status(account), f"rule:{first.rule if first else 'unknown'}"
        record_freeze(uow, account, reason=first.reason if first else "FROZEN_BY_RULE", by=by, now=now)
        _rule_event(uow, "account.frozen", account, by, before, now, order_id=decision.order_id)


def _rule_event(
    uow: UnitOfWork,
    type_: str,
    account: CreditAccount,
    rule: str,
    before: dict[str, object],
    now: datetime,
    *,
    order_id: str,
    reason: str | None = None,
) -> None:
    """The account's freeze or unfreeze by a rule; its subject names the order that set it off, so
    `?order_id=` finds it."""
    uow.audit.append(
        type_,
        at=now,
        actor=Actor(name=rule, role="rule"),
        subject=account_subject(account, order_id=order_id),
        before=before,
        after={**account_status(account), **({"reason": reason} if reason else {})},
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


def _reserve(decision: Decision, account: CreditAccount, params: dict[str, Decimal], now: datetime) -> None:
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


def take_hold(
    uow: UnitOfWork, decision: Decision, account: CreditAccount, params: dict[str, Decimal], now: datetime
) -> None:
    """Under the account lock: reserve the order's amount (a hold until now + hold_ttl_s) and store it."""
    _reserve(decision, account, params, now)
    assert decision.hold is not None
    uow.holds.add(decision.hold)
