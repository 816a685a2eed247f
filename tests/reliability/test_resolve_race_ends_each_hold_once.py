"""Reliability 4: settle, release and the expiry sweep fire at the same hold at once (PostgreSQL, a thread
and a connection each). Half of the holds are past their expiry by the database clock when they race, half
are not, so every pair of the three can win.

After: every hold is in exactly one final state, with exactly one ending event in the audit trail that
names that state; the losers got a clean "hold not open" (or, for a settle or release of a hold the sweep
just ended, the same); the effects happened once: the exposure freed once (inside checker), the upstream
debited once for each settled hold (outside checker). Default run: 100 holds; CREDITCTL_RELIABILITY_LONG=1:
the document's 500.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from adapters.fake.clock import FakeClock
from adapters.sql.tables import audit_events, holds
from creditctl.domain.decision import Order
from creditctl.domain.errors import HoldNotOpen
from creditctl.services.decide_order import decide_order
from creditctl.services.expiry import sweep
from creditctl.services.resolve_hold import release_order, settle_order
from rules import Outcome
from tests.adapters.concurrency import all_at_once
from tests.reliability.checkers import assert_checkers
from tests.reliability.conftest import LONG
from tests.reliability.instance import Instance, start

pytestmark = [pytest.mark.adapters, pytest.mark.postgres]

HOLDS = 500 if LONG else 100
BATCH = 20  # holds racing at once: 3 callers each, within the engine's 80 connections
ACCOUNTS = [("8800000001", "GA10"), ("8800000001", "GB20"), ("8800000002", "GA10"), ("8800000003", "GA10")]
AMOUNT = Decimal("10.00")
TTL_S = 3600
ENDINGS = {"hold.settled": "settled", "hold.released": "released", "hold.expired": "expired"}


def approve_holds(inst: Instance, clock: FakeClock, seed_value: int) -> list[Order]:
    """HOLDS approvals; the second half 10 minutes after the first, so only the first half is due."""
    orders = []
    for i in range(HOLDS):
        if i == HOLDS // 2:
            clock.advance(600)
        customer, group = ACCOUNTS[i % len(ACCOUNTS)]
        order = Order(f"race-{seed_value}-{i}", customer, group, AMOUNT)
        result = decide_order(order, scope=None, uow=inst.ctx.uow(), balances=inst.ctx.balances)
        assert result.decision.outcome is Outcome.APPROVE, result.decision.reasons
        inst.books.saw(result.decision)
        orders.append(order)
    clock.set(clock.now() + timedelta(seconds=TTL_S - 300))  # the first half is past its expiry
    return orders


def race(inst: Instance, batch: list[Order]) -> dict[str, dict[str, str]]:
    """Settle, release and sweep on each hold of the batch, all released at once: what each caller got."""

    def work(i: int) -> str:
        order_id, uow = batch[i // 3].order_id, inst.ctx.uow()
        if i % 3 == 0:
            settle_order(order_id, scope=None, uow=uow)
            return "settled"
        if i % 3 == 1:
            release_order(order_id, scope=None, uow=uow)
            return "released"
        sweep(uow=uow)
        return "swept"

    results = all_at_once(3 * len(batch), work)
    outcomes = {}
    for k, order in enumerate(batch):
        got = {}
        for r, name in zip(results[3 * k : 3 * k + 3], ("settle", "release", "sweep"), strict=True):
            if r.error is not None and not isinstance(r.error, HoldNotOpen):
                raise AssertionError(f"{order.order_id}: {name} failed with {r.error!r}")
            got[name] = "refused" if r.error is not None else r.value
        outcomes[order.order_id] = got
    return outcomes


def ending_problems(engine: Engine, orders: list[Order], outcomes: dict[str, dict[str, str]]) -> list[str]:
    """One ending event per hold, naming its final state; the callers' answers agree with it."""
    with engine.connect() as conn:
        status = dict(conn.execute(select(holds.c.order_id, holds.c.status)).all())
        endings = conn.execute(
            select(audit_events.c.order_id, audit_events.c.type).where(audit_events.c.type.in_(ENDINGS))
        ).all()
    per_order = Counter(order_id for order_id, _ in endings)
    problems = [f"{o}: {n} ending events" for o, n in per_order.items() if n != 1]
    problems += [f"{o.order_id}: no ending event" for o in orders if o.order_id not in per_order]
    problems += [f"{o}: ended by {t} but {status[o]}" for o, t in endings if ENDINGS[t] != status[o]]
    for order in orders:
        got, final = outcomes[order.order_id], status[order.order_id]
        winners = [n for n in ("settle", "release") if got[n] != "refused"]
        if winners != {"settled": ["settle"], "released": ["release"]}.get(final, []):
            problems.append(f"{order.order_id}: {final}, but the callers got {got}")
    return problems


def final_states(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(holds.c.order_id, holds.c.status)).all())


def test_settle_release_and_sweep_racing_on_each_hold_end_it_exactly_once(
    pg: Engine, tmp_path: Path, seed_value: int
) -> None:
    clock = FakeClock()  # the database's clock too: which holds are due is decided, not timed
    inst = start(
        pg, tmp_path, dict.fromkeys(ACCOUNTS, Decimal("100000.00")), clock=clock, database_clock=clock,
        hold_ttl_s=TTL_S,
    )  # fmt: skip
    orders = approve_holds(inst, clock, seed_value)
    outcomes: dict[str, dict[str, str]] = {}
    for first in range(0, HOLDS, BATCH):
        outcomes |= race(inst, orders[first : first + BATCH])

    problems = ending_problems(pg, orders, outcomes)
    assert not problems, f"{len(problems)} problem(s) (seed {seed_value}):\n" + "\n".join(problems[:30])
    status = final_states(pg)
    due = [o.order_id for o in orders[: HOLDS // 2]]
    assert {status[o] for o in due} == {"expired"}, "a hold past its expiry was settled or released"
    finals = Counter(status[o.order_id] for o in orders[HOLDS // 2 :])
    assert finals["settled"] and finals["released"], f"not every ending was reached: {finals}"
    for order in orders:  # the order systems act on what they were told: each ending once
        if status[order.order_id] == "settled":
            inst.upstream.debit(order.customer_code, order.sale_group_code, order.amount)
            inst.books.settle(order.order_id)
        else:
            inst.books.release_requested(order.order_id)
            inst.books.release_confirmed(order.order_id)
    assert_checkers(pg, inst.books, seed_value)
