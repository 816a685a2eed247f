"""The decision history port: stored decisions of a period, streamed in batches for a backtest."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Protocol

# One stored decision as a plain tuple, in this order (a tuple, not an object: a backtest reads
# millions of them, and building an object per row would be a third of its time):
#   0 order_id, 1 customer_code, 2 sale_group_code, 3 amount_fen (int, CNY fen),
#   4 outcome ("approve", "defer", "block", "freeze"), 5 state ("decided", "deferred", "cancelled",
#   "expired"), 6 facts (the JSON text stored with the decision: money and ratios as decimal strings),
#   7 account_id.
HistoryRow = tuple[str, str, str, int, str, str, str, int]
ORDER_ID, CUSTOMER, SALE_GROUP, AMOUNT_FEN, OUTCOME, STATE, FACTS, ACCOUNT_ID = range(8)


class DecisionHistory(Protocol):
    """Read-only access to stored decisions for replays; never blocks the deciding of new orders."""

    def as_of(self) -> datetime | None:
        """The moment the history holds every decision committed up to (a replica's may lag the
        primary); None: it cannot tell yet."""
        ...

    def batches(self, start: datetime, end: datetime, *, batch_size: int) -> Iterator[Sequence[HistoryRow]]:
        """Decisions with start <= decided_at < end (UTC), oldest first, in lists of at most
        `batch_size`. Rows are read from a cursor as the batches are consumed (never all at once);
        the period is one consistent snapshot of the table."""
        ...

    def count(self, start: datetime, end: datetime) -> int:
        """How many decisions have start <= decided_at < end (UTC) now: a run's total, before it reads
        them (a decision stored in the period meanwhile may still be read)."""
        ...

    def account_overrides(self) -> Mapping[int, Mapping[str, str]]:
        """Every account's *current* parameter overrides (decimal strings) by account id; accounts
        without overrides may be left out. Overrides are not recorded per decision."""
        ...
