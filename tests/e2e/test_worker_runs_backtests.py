"""End to end: two `creditctl worker` processes run the queued backtests (SQLite and PostgreSQL), each run
once, by one of them, to the end."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.bootstrap import bootstrap, load_settings
from creditctl.domain.decision import Order
from creditctl.services.backtest import backtest_of, enqueue_backtest, get_backtest
from creditctl.services.customers import refresh_balances, register_customer
from creditctl.services.decide_order import decide_order
from rules import default_rule_set_document
from tests.e2e.served import wait_for
from tests.e2e.test_worker_seals_audit import env, workers  # noqa: F401  (fixture)
from tests.random_refs import random_order_id

pytestmark = pytest.mark.e2e

EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
WAIT_S = 120.0  # how long to wait for the workers before calling them stuck (not a speed requirement)


def test_two_workers_run_every_queued_backtest_once(env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    context = bootstrap(load_settings(env))
    customer = next(iter(context.balances.customers()))
    register_customer(customer, uow=context.uow(), clock=context.clock)
    report = refresh_balances(
        customer, scope=None, uow=context.uow(), balances=context.balances, clock=context.clock
    )
    account = max(report.accounts, key=lambda a: a.amount)  # room for the three orders
    for amount in ("10.00", "20.00", "30.00"):
        order = Order(random_order_id("e2e"), customer, account.sale_group_code, Decimal(amount))
        decide_order(order, scope=None, uow=context.uow(), balances=context.balances)
    document = default_rule_set_document()
    document["params"] = {**document.get("params", {}), "single_order_review_amount": "15.00"}
    store = context.backtests
    assert store is not None
    ids = [enqueue_backtest(backtest_of(document, *EVER, "e2e"), store=store).id for _ in range(4)]

    with workers(env, 2):
        wait_for(
            lambda: all(get_backtest(i, store=store).ended for i in ids),
            WAIT_S,
            "the queued backtests to end",
        )

    runs = [get_backtest(i, store=store) for i in ids]
    assert {r.status for r in runs} == {"succeeded"}, [r.error for r in runs]
    assert {(r.decisions, r.changed) for r in runs} == {(3, 2)}
    holders = {r.lease_holder for r in runs}
    assert holders and all(h and h.count(":") == 2 for h in holders)  # host:pid:random, one per worker
