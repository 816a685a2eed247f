"""Ending holds whose time has passed, under the account lock, with one audit event per pass."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from creditctl.domain.account import CreditAccount
from creditctl.domain.audit import SYSTEM
from creditctl.domain.audit_records import account_subject
from creditctl.ports.unit_of_work import UnitOfWork


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
