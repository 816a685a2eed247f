"""What the audit trail records of each kind of object: its subject and the state before/after a change."""

from __future__ import annotations

from typing import Any

from creditctl.domain.account import CreditAccount
from creditctl.domain.decision import Decision
from creditctl.domain.webhook import Subscription


def account_subject(account: CreditAccount, **more: Any) -> dict[str, Any]:
    """The account a change is about (customer and sales group are filter columns)."""
    return {"customer_code": account.customer_code, "sale_group_code": account.sale_group_code, **more}


def decision_subject(decision: Decision) -> dict[str, Any]:
    """The order a change is about (customer, sales group, order id are filter columns)."""
    return {
        "customer_code": decision.order.customer_code,
        "sale_group_code": decision.order.sale_group_code,
        "order_id": decision.order_id,
        "decision_id": decision.id,
    }


def decision_state(decision: Decision) -> dict[str, Any]:
    """Outcome, state, the money and the reasons a decision stands on, and its hold if any."""
    hold = decision.hold
    return {
        "outcome": decision.outcome.value,
        "state": decision.state.value,
        "amount": decision.order.amount,
        "available": decision.available,
        "exposure": decision.exposure,
        "credit_limit": decision.credit_limit,
        "shortfall": decision.shortfall,
        "reasons": [r.reason for r in decision.reasons],
        "rule_set": {"id": decision.rule_set_id, "version": decision.rule_set_version},
        "hold": None
        if hold is None
        else {
            "id": hold.id,
            "amount": hold.amount,
            "status": hold.status.value,
            "expires_at": hold.expires_at,
        },
    }


def account_status(account: CreditAccount) -> dict[str, Any]:
    """Frozen or not, by whom and why, and the exposure counted against it."""
    return {
        "status": account.status.value,
        "frozen_reason": account.frozen_reason,
        "frozen_by": account.frozen_by,
        "exposure": account.exposure,
    }


def decided_state(decision: Decision, account: CreditAccount) -> dict[str, Any]:
    """A decision's state plus the account's status after it (a freeze outcome freezes the account)."""
    return {**decision_state(decision), "account_status": account.status.value}


def webhook_subject(subscription: Subscription) -> dict[str, Any]:
    """The webhook subscription a change is about (a global event: no customer)."""
    return {"subscription_id": subscription.id}


def webhook_state(subscription: Subscription) -> dict[str, Any]:
    """Where it posts what, whether it is on, and until when a rotated-out secret still signs. Never a
    secret, sealed or not, nor anything derived from one: the trail is read by auditors."""
    return {
        "url": subscription.url,
        "events": list(subscription.events),
        "status": subscription.status.value,
        "disabled_reason": subscription.disabled_reason,
        "previous_secret_until": subscription.previous_secret_until,
        "created_by": subscription.created_by,
        "updated_at": subscription.updated_at,
    }
