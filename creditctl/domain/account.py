"""A credit account: one payer account of a customer in one sales organisation, and what counts against it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from creditctl.domain.balance import BalanceSnapshot, PayerBalance
from creditctl.domain.money import ZERO


class AccountStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"


@dataclass(frozen=True, slots=True)
class PaymentProfile:
    """Payment history facts (creditctl.domain.payment defines them); neutral without payment records."""

    max_overdue_days: int = 0
    on_time_ratio: Decimal = Decimal("1")
    overdue_amount: Decimal = ZERO
    # Counts behind on_time_ratio, for explanations; not stored on the account row (compare=False).
    judged: int = field(default=0, compare=False)
    on_time: int = field(default=0, compare=False)


@dataclass(slots=True)
class CreditInputs:
    """What the credit limit is computed from, stored on the account row so a decision reads it with the
    lock (no extra statement): the administrator's base limit (None: the rule parameter
    base_credit_limit), the average balance for the cap (None: no snapshot in the window), the approved
    temporary limit and when it ends, and until when the stored payment facts hold (they depend on the
    UTC date; None: never computed)."""

    base_limit: Decimal | None = None
    base_limit_reason: str | None = None
    average_balance: Decimal | None = None
    temporary_limit: Decimal | None = None
    temporary_until: datetime | None = None
    temporary_request_id: str | None = None
    computed_at: datetime | None = None
    valid_until: datetime | None = None

    def is_stale(self, now: datetime) -> bool:
        return self.valid_until is None or now >= self.valid_until

    def temporary_at(self, now: datetime) -> Decimal | None:
        """The approved temporary limit while it runs (it ends by itself at `temporary_until`)."""
        if self.temporary_limit is None or self.temporary_until is None or now >= self.temporary_until:
            return None
        return self.temporary_limit


@dataclass(slots=True)
class CreditAccount:
    """The unit of locking: decisions on one account are serialised on its row."""

    id: int
    customer_code: str
    sale_group_code: str
    sale_group_name: str = ""
    payer_account_code: str = ""
    payer_account_name: str = ""
    status: AccountStatus = AccountStatus.ACTIVE
    frozen_reason: str | None = None
    frozen_by: str | None = None
    frozen_at: datetime | None = None
    exposure: Decimal = ZERO
    snapshot: BalanceSnapshot | None = None
    params: dict[str, Any] = field(default_factory=dict)
    payment: PaymentProfile = field(default_factory=PaymentProfile)
    credit: CreditInputs = field(default_factory=CreditInputs)
    created_at: datetime | None = None
    # balance.low was sent and available has not gone back above threshold + hysteresis since.
    low_balance_alerted: bool = False
    # A hint a repository may give when locking: the earliest expiry among the account's open holds
    # (None: no open hold), so that nothing is expired when nothing is due (one statement less on the
    # hot path). Without the hint (`hold_expiry_known` False) the service always looks.
    hold_expiry_known: bool = False
    earliest_hold_expiry: datetime | None = None
    # The database's time when the lock was granted, where the repository reads it in the same round
    # trip (PostgreSQL); None: ask the unit of work.
    locked_at: datetime | None = None

    def may_have_due_holds(self, now: datetime) -> bool:
        if not self.hold_expiry_known:
            return True
        return self.earliest_hold_expiry is not None and self.earliest_hold_expiry <= now

    @property
    def is_frozen(self) -> bool:
        return self.status is AccountStatus.FROZEN

    def freeze(self, *, reason: str, by: str, now: datetime) -> None:
        self.status = AccountStatus.FROZEN
        self.frozen_reason = reason
        self.frozen_by = by
        self.frozen_at = now

    def unfreeze(self) -> None:
        self.status = AccountStatus.ACTIVE
        self.frozen_reason = None
        self.frozen_by = None
        self.frozen_at = None

    def adopt(self, payer: PayerBalance, snapshot: BalanceSnapshot) -> bool:
        """Take a newer snapshot (and the payer's names); an older one than we hold is ignored."""
        if self.snapshot is not None and snapshot.fetched_at <= self.snapshot.fetched_at:
            return False
        self.snapshot = snapshot
        self.sale_group_name = payer.sale_group_name
        self.payer_account_code = payer.payer_account_code
        self.payer_account_name = payer.payer_account_name
        return True
