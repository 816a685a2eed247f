"""Credit limit requests: a temporary limit one administrator asks for and another approves (four eyes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class LimitRequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"  # approved, then replaced by a later approval on the same account


@dataclass(slots=True)
class CreditLimitRequest:
    """While approved and `until` is ahead (the database's clock), credit.limit is at least `amount`."""

    id: str
    account_id: int
    customer_code: str
    sale_group_code: str
    amount: Decimal
    until: datetime
    reason: str
    status: LimitRequestStatus
    requested_by: str
    requested_by_key_id: int
    requested_by_owner: str  # the person: four eyes compares owners, not keys
    requested_at: datetime
    decided_by: str | None = None
    decided_by_key_id: int | None = None
    decided_by_owner: str | None = None
    decided_at: datetime | None = None
    note: str | None = None

    def shown_status(self, now: datetime) -> str:
        """The status as a reader sees it: an approved request past its `until` is "expired"."""
        if self.status is LimitRequestStatus.APPROVED and now >= self.until:
            return "expired"
        return self.status.value
