"""Events of the credit operations, written to the outbox in the transaction of the change they describe."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from creditctl.domain.account import CreditAccount
from creditctl.domain.decision import Decision
from creditctl.ports.unit_of_work import UnitOfWork


def decision_event(uow: UnitOfWork, topic: str, decision: Decision, now: datetime, **extra: Any) -> None:
    """decision.deferred / released / rejected / expired: the order, its outcome and its reasons."""
    uow.outbox.add(
        event_id=uuid4().hex,
        topic=topic,
        payload={
            "order_id": decision.order_id,
            "decision_id": decision.id,
            "customer_code": decision.order.customer_code,
            "sale_group_code": decision.order.sale_group_code,
            "amount": str(decision.order.amount),
            "outcome": decision.outcome.value,
            "state": decision.state.value,
            "reasons": [r.reason for r in decision.reasons],
            **extra,
        },
        now=now,
    )


def account_event(uow: UnitOfWork, topic: str, account: CreditAccount, now: datetime, **extra: Any) -> None:
    """account.frozen / account.unfrozen."""
    uow.outbox.add(
        event_id=uuid4().hex,
        topic=topic,
        payload={
            "customer_code": account.customer_code,
            "sale_group_code": account.sale_group_code,
            **extra,
        },
        now=now,
    )
