"""Holds: money reserved for an approved order until Haier debits it, it is cancelled, or it expires."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class HoldStatus(StrEnum):
    OPEN = "open"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass(slots=True)
class Hold:
    """A reservation. It counts while open, and once settled until a balance fetched after the settlement."""

    id: str
    account_id: int
    order_id: str
    decision_id: str
    amount: Decimal
    status: HoldStatus
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    counting: bool = True

    @property
    def is_open(self) -> bool:
        return self.status is HoldStatus.OPEN
