"""Decisions: the outcome for one order, with every matching rule, the facts used and the rule set version."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from creditctl.domain.balance import BalanceSnapshot
from creditctl.domain.hold import Hold
from creditctl.domain.json_text import json_writer
from rules import Outcome

# json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str), made once
_FINGERPRINT_JSON = json_writer(str, sort_keys=True, ensure_ascii=False)


class DecisionState(StrEnum):
    """Where the order stands: decided for good, parked for a re-check, or ended while parked."""

    DECIDED = "decided"
    DEFERRED = "deferred"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Order:
    """What the order system asks about: one purchase order on one payer account."""

    order_id: str
    customer_code: str
    sale_group_code: str
    amount: Decimal
    channel: str | None = None
    metadata: dict[str, Any] | None = None

    def fingerprint(self) -> str:
        """A digest of the body, so a replay is told apart from a reuse of the id with another body."""
        body = {
            "order_id": self.order_id,
            "customer_code": self.customer_code,
            "sale_group_code": self.sale_group_code,
            "amount": str(self.amount),
            "channel": self.channel,
            "metadata": self.metadata,
        }
        raw = _FINGERPRINT_JSON(body)
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(slots=True)
class Decision:
    id: str
    order: Order
    account_id: int
    fingerprint: str
    outcome: Outcome
    reasons: tuple[Reason, ...]
    actions: tuple[str, ...]
    balance: BalanceSnapshot | None
    exposure: Decimal
    available: Decimal | None
    credit_limit: Decimal
    credit_grade: str
    shortfall: Decimal | None
    rule_set_id: int
    rule_set_version: int
    decided_at: datetime
    state: DecisionState
    facts: dict[str, Any] = field(default_factory=dict)
    hold: Hold | None = None
    deferral_expires_at: datetime | None = None
    rechecks: int = 0
    rechecked_at: datetime | None = None
    # The review record, oldest first: each release, reject or recheck a person made, with who
    # (key name, role), why, when and the facts at that moment.
    reviews: list[dict[str, Any]] = field(default_factory=list)

    @property
    def order_id(self) -> str:
        return self.order.order_id
