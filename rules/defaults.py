"""The rule set published on a fresh install: design.md's table, as a document an admin can edit."""

from __future__ import annotations

import copy
from typing import Any

from rules.numbers import canonical_number
from rules.params import KNOWN_PARAMS


def _fact(name: str) -> dict[str, str]:
    return {"fact": name}


def _param(name: str) -> dict[str, str]:
    return {"param": name}


def _cmp(fact: str, op: str, value: Any) -> dict[str, Any]:
    return {"fact": fact, "op": op, "value": value}


_SPENDABLE = {"add": [_fact("available"), _fact("credit.limit")]}


def _rule(
    rule_id: str,
    description: str,
    when: dict[str, Any],
    outcome: str,
    reason: str,
    message: str,
    actions: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "id": rule_id,
        "description": description,
        "when": when,
        "outcome": outcome,
        "reason": reason,
        "message": message,
        "actions": list(actions),
        "enabled": True,
    }


_RULES = [
    _rule(
        "frozen",
        "A frozen account places no orders.",
        _cmp("account.status", "eq", "frozen"),
        "block",
        "ACCOUNT_FROZEN",
        "Account is {account.status}; orders are blocked until an administrator unfreezes it",
    ),
    _rule(
        "stale",
        "Fail closed: no decision on a missing or old balance.",
        {
            "any": [
                {"fact": "balance.amount", "op": "missing"},
                _cmp("balance.age_s", "gt", _param("max_balance_age_s")),
            ]
        },
        "defer",
        "BALANCE_UNAVAILABLE",
        "No balance younger than {max_balance_age_s} seconds (age in seconds: {balance.age_s}); "
        "deferred until a fresh balance arrives",
    ),
    _rule(
        "depleted",
        "Nothing left on the payer account.",
        _cmp("balance.amount", "lte", 0),
        "freeze",
        "BALANCE_DEPLETED",
        "Balance {balance.amount} is zero or negative; account frozen",
    ),
    _rule(
        "overdue",
        "Payments overdue for too long.",
        _cmp("payment.max_overdue_days", "gt", _param("max_overdue_days")),
        "freeze",
        "PAYMENT_OVERDUE",
        "Payment overdue {payment.max_overdue_days} days, more than the allowed {max_overdue_days}; "
        "account frozen",
    ),
    _rule(
        "over_limit",
        "More than available money plus the credit line.",
        _cmp("order.amount", "gt", _SPENDABLE),
        "block",
        "CREDIT_LIMIT_EXCEEDED",
        "Order amount {order.amount} exceeds available {available} plus credit limit {credit.limit}",
    ),
    _rule(
        "short",
        "More than available money but within the credit line: wait for funds.",
        {"all": [_cmp("order.amount", "gt", _fact("available")), _cmp("order.amount", "lte", _SPENDABLE)]},
        "defer",
        "INSUFFICIENT_BALANCE",
        "Order amount {order.amount} exceeds available {available}; "
        "within credit limit {credit.limit}, deferred until funds arrive",
    ),
    _rule(
        "large",
        "Large orders are reviewed by a person.",
        _cmp("order.amount", "gt", _param("single_order_review_amount")),
        "defer",
        "MANUAL_REVIEW",
        "Order amount {order.amount} exceeds the manual review threshold {single_order_review_amount}",
    ),
    _rule(
        "low",
        "Approve, but tell the distributor that money is running low.",
        {
            "all": [
                _cmp("order.amount", "lte", _fact("available")),
                # available - order.amount < threshold, written with the fact on the left
                _cmp("available", "lt", {"add": [_fact("order.amount"), _param("low_balance_threshold")]}),
            ]
        },
        "approve",
        "BALANCE_LOW",
        "Order amount {order.amount} leaves less than {low_balance_threshold} of available {available}",
        ("notify:balance.low",),
    ),
]


def default_rule_set_document() -> dict[str, Any]:
    """The default set with the default params; a fresh copy each call, safe to edit."""
    params = {name: canonical_number(spec.default) for name, spec in KNOWN_PARAMS.items()}
    integers = {
        name: int(spec.default) for name, spec in KNOWN_PARAMS.items() if spec.type.value == "integer"
    }
    params.update(integers)
    return {"name": "default", "params": params, "auto_unfreeze": None, "rules": copy.deepcopy(_RULES)}
