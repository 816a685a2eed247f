"""Ending holds whose time has passed, under the account lock, with one audit event per hold."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from creditctl.domain.account import CreditAccount
from creditctl.domain.audit import SYSTEM
from creditctl.domain.audit_records import account_subject
from creditctl.domain.hold import ZERO
from creditctl.ports.unit_of_work import UnitOfWork


def expire_due_holds(uow: UnitOfWork, account: CreditAccount, now: datetime) -> Decimal:
    """Under the lock: end the account's holds past their expiry, one audit event per hold (its order
    id a filter column, so an auditor finds an order's expiry); returns the sum that stopped counting."""
    total = ZERO
    for hold in uow.holds.expire_due(account.id, now):
        before = account.exposure
        account.exposure -= hold.amount
        total += hold.amount
        uow.audit.append(
            "hold.expired",
            at=now,
            actor=SYSTEM,
            subject=account_subject(account, order_id=hold.order_id, hold_id=hold.hold_id),
            before={"exposure": before, "status": "open"},
            after={"exposure": account.exposure, "status": "expired", "expired_amount": hold.amount},
        )
    return total
