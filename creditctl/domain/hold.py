"""Holds: money reserved for an approved order until Haier debits it, it is cancelled, or it expires.

A hold is settled in one or several parts (two-phase transfers, as TigerBeetle's and Blnk's pending
transfers): each part is a `Settlement` with its own time. What still counts against the account is the
open remainder, and each settled part until a balance as of a moment after ITS settlement arrives."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from creditctl.domain.errors import OverSettlement, SettlementIdReused

ZERO = Decimal("0.00")


class HoldStatus(StrEnum):
    OPEN = "open"  # some amount is still held (possibly after settled parts)
    SETTLED = "settled"  # settled in full (in one or several parts)
    RELEASED = "released"  # the remainder was released (after any settled parts)
    EXPIRED = "expired"  # the remainder ran out of time (after any settled parts)


@dataclass(frozen=True, slots=True)
class Settlement:
    """One settled part of a hold. `settlement_id` is the caller's idempotency handle (None: none given)."""

    id: str
    hold_id: str
    account_id: int
    settlement_id: str | None
    amount: Decimal
    settled_at: datetime
    counting: bool = True


@dataclass(frozen=True, slots=True)
class ExpiredHold:
    """A hold the sweep (or a decision) ended for running out of time, and the remainder it freed."""

    hold_id: str
    order_id: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class HoldEvent:
    """A step in a hold's life: held, settled (a part), released or expired (the remainder)."""

    type: str
    amount: Decimal
    at: datetime
    settlement_id: str | None = None


@dataclass(slots=True)
class Hold:
    """A reservation. `counting` is true while any of it counts: the open remainder, or a settled part
    no balance as of a later moment includes yet."""

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
    settled: Decimal = ZERO
    settlements: list[Settlement] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status is HoldStatus.OPEN

    @property
    def remaining(self) -> Decimal:
        """What is still held: zero once the hold has ended."""
        return self.amount - self.settled if self.is_open else ZERO

    @property
    def unsettled(self) -> Decimal:
        """The part never settled: still held, or released or expired."""
        return self.amount - self.settled

    @property
    def counting_settled(self) -> Decimal:
        return sum((s.amount for s in self.settlements if s.counting), ZERO)

    def find_settlement(self, settlement_id: str) -> Settlement | None:
        return next((s for s in self.settlements if s.settlement_id == settlement_id), None)

    def settle(
        self, amount: Decimal | None, settlement_id: str | None, *, part_id: str, now: datetime
    ) -> Settlement:
        """Settle `amount` (None: the whole remainder) of the open hold; the hold ends once nothing is left.

        The open remainder becomes a counting settled part: exposure does not change."""
        left = self.remaining
        part = left if amount is None else amount
        if part > left or part <= ZERO:
            raise OverSettlement(self.order_id, requested=part, remaining=left)
        s = Settlement(
            id=part_id,
            hold_id=self.id,
            account_id=self.account_id,
            settlement_id=settlement_id,
            amount=part,
            settled_at=now,
        )
        self.settlements.append(s)
        self.settled += part
        if self.settled == self.amount:
            self.status, self.ended_at = HoldStatus.SETTLED, now
        return s

    def check_retry(self, existing: Settlement, amount: Decimal | None) -> None:
        """A settle repeating a settlement id must repeat its amount (or give none)."""
        if amount is not None and amount != existing.amount:
            raise SettlementIdReused(self.order_id, existing.settlement_id or "", existing.amount)

    def end_remainder(self, status: HoldStatus, now: datetime) -> Decimal:
        """Release or expire what is still held; return it (it stops counting at once)."""
        left = self.remaining
        self.status, self.ended_at = status, now
        self.counting = any(s.counting for s in self.settlements)
        return left

    def as_seen_at(self, now: datetime) -> Hold:
        """The hold as it stands at `now`: an open hold past its expiry has expired (at its expiry),
        whether or not the sweeper has ended it yet."""
        if not (self.is_open and self.expires_at <= now):
            return self
        seen = replace(self, settlements=list(self.settlements))
        seen.end_remainder(HoldStatus.EXPIRED, self.expires_at)
        return seen

    @property
    def events(self) -> list[HoldEvent]:
        """The hold's life, oldest first: held, each settled part, then released or expired."""
        out = [HoldEvent("held", self.amount, self.created_at)]
        out += [HoldEvent("settled", s.amount, s.settled_at, s.settlement_id) for s in self.settlements]
        if self.status in (HoldStatus.RELEASED, HoldStatus.EXPIRED) and self.ended_at is not None:
            out.append(HoldEvent(self.status.value, self.unsettled, self.ended_at))
        return out
