"""Helpers for the threaded concurrency tests: start N callers at once, collect what each got."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select

from adapters.sql.tables import credit_accounts, holds


@dataclass(frozen=True)
class CallResult:
    """What one caller got: a value or the exception it raised."""

    value: Any = None
    error: BaseException | None = None


def all_at_once(n: int, work: Callable[[int], Any], *, timeout_s: float = 60.0) -> list[CallResult]:
    """Run work(0..n-1) on n threads released together by a barrier; every result or error is kept."""
    barrier = threading.Barrier(n)
    results: list[CallResult | None] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=timeout_s)
            results[i] = CallResult(value=work(i))
        except BaseException as exc:
            results[i] = CallResult(error=exc)

    threads = [threading.Thread(target=run, args=(i,), name=f"caller-{i}", daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"callers still running after {timeout_s}s: {stuck}"
    return [r if r is not None else CallResult(error=RuntimeError("no result")) for r in results]


def counting_holds_total(engine: Engine, customer_code: str, sale_group_code: str) -> Decimal:
    """The sum of the account's holds that count, read straight from the table."""
    a = credit_accounts.c
    stmt = (
        select(func.coalesce(func.sum(holds.c.amount_fen), 0))
        .select_from(holds.join(credit_accounts, holds.c.account_id == a.id))
        .where(
            a.customer_code == customer_code, a.sale_group_code == sale_group_code, holds.c.counting.is_(True)
        )
    )
    with engine.connect() as conn:
        fen = conn.execute(stmt).scalar_one()
    return Decimal(int(fen)) / 100


def hold_count(engine: Engine, order_id: str | None = None) -> int:
    stmt = select(func.count()).select_from(holds)
    if order_id is not None:
        stmt = stmt.where(holds.c.order_id == order_id)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
