"""Reliability 5: expiry follows the database's clock, not the application server's (PostgreSQL).

Holds that expire in a second stop counting as soon as the database's clock passes their expiry: on an
instance whose clock stopped a minute ago or runs a minute ahead, with the sweeper or without it (a
decision or a view sees them ended). A sweeper that dies half-way and is restarted, beside another on an
instance with another clock, ends each hold exactly once. A deferral runs out by the database's clock
whatever the sweeper's instance says. Both checkers after each.

No sleeping for a guessed time: the tests wait until the database's own clock has passed the expiry.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

import creditctl.services.expiry as expiry_module
from adapters.sql.tables import audit_events, decisions, holds
from creditctl.domain.decision import Order
from creditctl.services.account_view import view_account
from creditctl.services.decide_order import decide_order
from creditctl.services.expiry import sweep
from rules import Outcome
from tests.adapters.concurrency import all_at_once
from tests.clocks import FrozenClock, SkewedClock
from tests.e2e.served import wait_for
from tests.random_refs import random_order_id
from tests.reliability.checkers import assert_checkers
from tests.reliability.instance import Instance, start

pytestmark = [pytest.mark.adapters, pytest.mark.postgres]

THOUSAND = Decimal("1000.00")
ACCOUNTS = [("8800000001", "GA10"), ("8800000001", "GB20"), ("8800000002", "GA10")]
CLOCKS = {"stopped a minute ago": lambda: FrozenClock(-60), "a minute ahead": lambda: SkewedClock(+60)}


def decide(inst: Instance, customer: str, group: str, amount: Decimal) -> Any:
    order = Order(random_order_id("exp"), customer, group, amount)
    result = decide_order(order, scope=None, uow=inst.ctx.uow(), balances=inst.ctx.balances)
    inst.books.saw(result.decision)
    return result.decision


def wait_for_the_database_clock_to_pass_every_expiry(engine: Engine) -> None:
    def passed() -> bool:
        with engine.connect() as conn:
            latest = conn.execute(select(func.max(holds.c.expires_at))).scalar_one()
            return bool(conn.execute(select(func.clock_timestamp() > latest)).scalar_one())

    wait_for(passed, 30, "the database clock to pass the holds' expiry")


def told_expired(inst: Instance, order_ids: list[str]) -> None:
    """The order systems hear their holds expired (a webhook): they will not spend them."""
    for order_id in order_ids:
        inst.books.release_requested(order_id)
        inst.books.release_confirmed(order_id)


def expiry_events(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(audit_events.c.order_id).where(audit_events.c.type == "hold.expired"))
        return Counter(order_id for (order_id,) in rows)


@pytest.mark.parametrize("with_sweeper", [False, True], ids=["without the sweeper", "with the sweeper"])
@pytest.mark.parametrize("app_clock", list(CLOCKS), ids=list(CLOCKS))
def test_holds_expiring_in_a_second_stop_counting_at_once_whatever_the_app_clock_says(
    pg: Engine, tmp_path: Path, app_clock: str, with_sweeper: bool
) -> None:
    customer, group = ACCOUNTS[0]
    inst = start(pg, tmp_path, {(customer, group): THOUSAND}, clock=CLOCKS[app_clock](), hold_ttl_s=1)
    approved = [decide(inst, customer, group, Decimal("250.00")) for _ in range(4)]  # all the money
    assert {d.outcome for d in approved} == {Outcome.APPROVE}
    assert decide(inst, customer, group, Decimal("1.00")).outcome is not Outcome.APPROVE

    wait_for_the_database_clock_to_pass_every_expiry(pg)
    if with_sweeper:  # on an instance whose clock says otherwise again
        other = inst.another(
            SkewedClock(-60) if app_clock == "a minute ahead" else SkewedClock(+60), tmp_path
        )
        assert sweep(uow=other.ctx.uow()).holds_expired_on == 1
    shown = view_account(customer, group, scope=None, uow=inst.ctx.uow()).exposure
    assert shown == Decimal("0.00"), f"expired holds still count in the view: {shown}"
    told_expired(inst, [d.order_id for d in approved])
    again = decide(inst, customer, group, THOUSAND)
    assert again.outcome is Outcome.APPROVE, again.reasons
    with pg.connect() as conn:
        ended = dict(conn.execute(select(holds.c.order_id, holds.c.status)).all())
    assert [ended[d.order_id] for d in approved] == ["expired"] * 4
    assert expiry_events(pg) == Counter({d.order_id: 1 for d in approved})
    assert_checkers(pg, inst.books)


def test_a_sweeper_that_dies_half_way_and_is_restarted_ends_each_hold_once(
    pg: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = start(pg, tmp_path, dict.fromkeys(ACCOUNTS, THOUSAND), clock=FrozenClock(-60), hold_ttl_s=1)
    approved = [decide(inst, c, g, Decimal("100.00")) for c, g in ACCOUNTS for _ in range(5)]
    assert {d.outcome for d in approved} == {Outcome.APPROVE}
    wait_for_the_database_clock_to_pass_every_expiry(pg)

    real, calls = expiry_module.expire_due_holds, []

    def dies_on_the_second_account(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit("the sweeper's process died")
        return real(*args, **kwargs)

    monkeypatch.setattr(expiry_module, "expire_due_holds", dies_on_the_second_account)
    with pytest.raises(SystemExit):
        sweep(uow=inst.ctx.uow())
    monkeypatch.setattr(expiry_module, "expire_due_holds", real)
    assert sum(expiry_events(pg).values()) == 5, "the first account's holds were ended before it died"

    restarted = [inst.another(SkewedClock(s), tmp_path) for s in (-30, +60)]  # and another sweeper beside it
    swept = all_at_once(2, lambda i: sweep(uow=restarted[i].ctx.uow()))
    assert [r.error for r in swept] == [None, None]
    assert sum(r.value.holds_expired_on for r in swept) >= 2  # each of the two accounts left, by one of them
    assert expiry_events(pg) == Counter({d.order_id: 1 for d in approved})
    assert sweep(uow=restarted[0].ctx.uow()).holds_expired_on == 0  # a third pass finds nothing
    told_expired(inst, [d.order_id for d in approved])
    assert_checkers(pg, inst.books)


def test_a_deferral_runs_out_by_the_database_clock_whatever_the_sweeper_s_clock_says(
    pg: Engine, tmp_path: Path
) -> None:
    customer, group = ACCOUNTS[0]
    inst = start(
        pg, tmp_path, {(customer, group): THOUSAND}, clock=FrozenClock(-60),
        deferral_ttl_s=1, single_order_review_amount="100.00",
    )  # fmt: skip
    deferred = decide(inst, customer, group, Decimal("500.00"))
    assert deferred.outcome is Outcome.DEFER

    def due() -> bool:
        with pg.connect() as conn:
            expires = conn.execute(select(decisions.c.deferral_expires_at)).scalar_one()
            return bool(conn.execute(select(func.clock_timestamp() > expires)).scalar_one())

    wait_for(due, 30, "the database clock to pass the deferral's deadline")
    swept = sweep(uow=inst.ctx.uow())
    with pg.connect() as conn:
        state = conn.execute(select(decisions.c.state)).scalar_one()
    assert (swept.deferrals_expired, state) == (1, "expired")
    assert_checkers(pg, inst.books)
