"""Decision history over the fake store: the decisions it holds, as the SQL history serves them.

Facts are handed out as JSON text with Decimals as strings, exactly as ExactJson stores them, and
batches are built only as they are asked for; `served` counts the rows handed out so far, so a
test can see that a consumer works through the batches one at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from adapters.fake.unit_of_work import FakeStore
from creditctl.ports.decision_history import HistoryRow


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


class FakeDecisionHistory:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.served = 0
        self.batch_sizes: list[int] = []

    def as_of(self) -> datetime | None:
        """The fake store is its own primary: every stored decision is there at once."""
        return datetime.max.replace(tzinfo=UTC)

    def batches(self, start: datetime, end: datetime, *, batch_size: int) -> Iterator[Sequence[HistoryRow]]:
        with self.store.lock:
            picked = sorted(
                (d for d in self.store.state.decisions.values() if start <= d.decided_at < end),
                key=lambda d: (d.decided_at, d.id),
            )
        for i in range(0, len(picked), batch_size):
            batch = [
                (
                    d.order_id,
                    d.order.customer_code,
                    d.order.sale_group_code,
                    int(d.order.amount * 100),
                    d.outcome.value,
                    d.state.value,
                    json.dumps(d.facts, default=_default, sort_keys=True),
                    d.account_id,
                )
                for d in picked[i : i + batch_size]
            ]
            self.served += len(batch)
            self.batch_sizes.append(len(batch))
            yield batch

    def count(self, start: datetime, end: datetime) -> int:
        with self.store.lock:
            return sum(1 for d in self.store.state.decisions.values() if start <= d.decided_at < end)

    def account_overrides(self) -> Mapping[int, Mapping[str, str]]:
        with self.store.lock:
            accounts = list(self.store.state.accounts.values())
        return {a.id: {k: str(v) for k, v in a.params.items()} for a in accounts if a.params}
