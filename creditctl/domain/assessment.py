"""Assess one order against one account: facts in, outcome out. Pure; the service supplies the lock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from creditctl.domain.account import AccountStatus, CreditAccount
from creditctl.domain.credit import credit_terms
from creditctl.domain.decision import Order, Reason
from rules import PARAM_DEFAULTS, Outcome, RuleSet

FUNDS_REASONS = frozenset({"INSUFFICIENT_BALANCE", "CREDIT_LIMIT_EXCEEDED"})
FUNDS_FLOOR = Reason(
    rule="funds_floor",
    reason="CREDIT_LIMIT_EXCEEDED",
    message="The order is above the available money plus the credit limit; nothing is approved beyond it",
)
FAIL_CLOSED = Reason(
    rule="fail_closed",
    reason="BALANCE_UNAVAILABLE",
    message="No balance young enough to rely on; nothing is approved on unknown state",
)


@dataclass(frozen=True, slots=True)
class Assessment:
    outcome: Outcome
    reasons: tuple[Reason, ...]
    actions: tuple[str, ...]
    facts: dict[str, Any]
    available: Decimal | None
    credit_limit: Decimal
    credit_grade: str
    shortfall: Decimal | None
    unfrozen: bool


def rule_params(rules: RuleSet) -> dict[str, Decimal]:
    """The rule set's parameters over the documented defaults (an imported set may omit some)."""
    return {**PARAM_DEFAULTS, **rules.params}


def effective_params(rules: RuleSet, account: CreditAccount | None) -> dict[str, Decimal]:
    """The rule set's parameters with the account's overrides on top."""
    params = rule_params(rules)
    if account is not None:
        params.update({k: Decimal(v) for k, v in account.params.items()})
    return params


def build_facts(
    order: Order, account: CreditAccount, params: Mapping[str, Decimal], now: datetime
) -> dict[str, Any]:
    """The fact catalogue for this order. A balance older than the rule set allows is no balance."""
    snap = account.snapshot
    age = snap.age_s(now) if snap is not None else None
    usable = snap is not None and age is not None and age <= int(params["max_balance_age_s"])
    balance = snap.amount if (snap is not None and usable) else None
    margin = Decimal(params.get("safety_margin", 0))
    terms = credit_terms(account, params, now)  # from the locked row: no statement of its own
    created = account.created_at or now
    return {
        "order.amount": order.amount,
        "order.sale_group": order.sale_group_code,
        "order.channel": order.channel,
        "balance.amount": balance,
        "balance.age_s": age,
        "exposure": account.exposure,
        "available": None if balance is None else balance - account.exposure - margin,
        "credit.limit": terms.limit,
        "credit.grade": terms.grade,
        "payment.max_overdue_days": account.payment.max_overdue_days,
        "payment.on_time_ratio": account.payment.on_time_ratio,
        "payment.overdue_amount": account.payment.overdue_amount,
        "account.status": account.status.value,
        "account.age_days": max(0, (now - created).days),
        "now.hour": now.hour,
    }


def assess(
    order: Order,
    account: CreditAccount,
    rules: RuleSet,
    now: datetime,
    *,
    upstream_error: Reason | None = None,
    params: Mapping[str, Decimal] | None = None,
) -> Assessment:
    """Evaluate every rule, apply the fail-closed guard, and say how much money is missing.

    `params`: effective_params(rules, account), where the caller has them already (the decision path)."""
    if params is None:
        params = effective_params(rules, account)
    facts = build_facts(order, account, params, now)
    unfrozen = _auto_unfreeze(account, rules, facts, params)
    evaluation = rules.evaluate(facts, params)
    outcome = evaluation.outcome
    if outcome is Outcome.FREEZE and account.is_frozen and not unfrozen:
        outcome = Outcome.BLOCK  # already frozen: every later order on it is blocked (design.md)
    reasons = [Reason(m.rule_id, m.reason, m.message) for m in evaluation.matches]
    actions = tuple(a for m in evaluation.matches for a in m.actions)
    if facts["balance.amount"] is None:
        if outcome is Outcome.APPROVE:
            outcome = Outcome.DEFER
            reasons.append(FAIL_CLOSED)
            actions = ()
        if upstream_error is not None:
            reasons.append(upstream_error)
    elif outcome is Outcome.APPROVE and order.amount > facts["available"] + facts["credit.limit"]:
        # The floor in code, whatever the rules say (a rule set without the money rules included).
        outcome = Outcome.BLOCK
        reasons.append(FUNDS_FLOOR)
        actions = ()
    winners = [m.reason for m in evaluation.matches if m.outcome is outcome]
    if FUNDS_FLOOR in reasons:
        winners.append(FUNDS_FLOOR.reason)
    return Assessment(
        outcome=outcome,
        reasons=tuple(reasons),
        actions=actions if outcome is Outcome.APPROVE else (),
        facts=facts,
        available=facts["available"],
        credit_limit=facts["credit.limit"],
        credit_grade=facts["credit.grade"],
        shortfall=_shortfall(outcome, winners, order.amount, facts["available"]),
        unfrozen=unfrozen,
    )


def _auto_unfreeze(
    account: CreditAccount, rules: RuleSet, facts: dict[str, Any], params: Mapping[str, Decimal]
) -> bool:
    """Only a freeze the rules made may be lifted by the rules; an administrator's freeze stays."""
    if not account.is_frozen or not (account.frozen_by or "").startswith("rule:"):
        return False
    if not rules.auto_unfreeze(facts, params):
        return False
    facts["account.status"] = AccountStatus.ACTIVE.value
    return True


def _shortfall(
    outcome: Outcome, winners: list[str], amount: Decimal, available: Decimal | None
) -> Decimal | None:
    if outcome not in (Outcome.DEFER, Outcome.BLOCK) or available is None:
        return None
    if not any(reason in FUNDS_REASONS for reason in winners):
        return None
    missing = amount - available
    return missing if missing > 0 else None
