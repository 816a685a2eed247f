"""The two checkers can fail: each catches the violation it exists for (no check that cannot fail).

Inside: an audit event edited after it was sealed, an event the sealer cannot seal, and a hold counting
more than the balance. Outside: an approval beyond the ledger's money, found when it is recorded, and the
ledger debited below zero. (Test 1 shows both catch a real double spend, without the row lock.)
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text, update

from adapters.sql.tables import credit_accounts
from creditctl.domain.decision import Order
from creditctl.services.decide_order import decide_order
from rules import Outcome
from tests.ledger_upstream import LedgerUpstream
from tests.outside_checker import OutsideBooks
from tests.random_refs import random_order_id
from tests.reliability.checkers import check_audit_chain, check_inside, check_outside
from tests.reliability.instance import Instance, start

pytestmark = [pytest.mark.adapters, pytest.mark.postgres]

CUSTOMER, GROUP = "8800000001", "GA10"


@pytest.fixture
def decided(pg: Engine, tmp_path: Path) -> Instance:
    inst = start(pg, tmp_path, {(CUSTOMER, GROUP): Decimal("1000.00")})
    for _ in range(3):
        order = Order(random_order_id("chk"), CUSTOMER, GROUP, Decimal("100.00"))
        result = decide_order(order, scope=None, uow=inst.ctx.uow(), balances=inst.ctx.balances)
        assert result.decision.outcome is Outcome.APPROVE
        inst.books.saw(result.decision)
    assert check_inside(pg) == [] and check_outside(inst.books) == []  # sound so far, and now sealed
    return inst


def as_owner_without_the_audit_guard(engine: Engine, sql: str) -> None:
    """What only someone bypassing the append-only triggers could do (this test's own database)."""
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text(sql))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


def test_inside_catches_a_sealed_audit_event_edited_afterwards(decided: Instance, pg: Engine) -> None:
    as_owner_without_the_audit_guard(
        pg, "UPDATE audit_events SET payload = replace(payload, '100.00', '1.00') "
        "WHERE seq = (SELECT min(seq) FROM audit_events WHERE type = 'decision.made')",
    )  # fmt: skip
    problems = check_inside(pg)
    assert any(p.startswith("audit: chain broken") for p in problems), problems


def test_inside_catches_an_event_the_sealer_refuses(decided: Instance, pg: Engine) -> None:
    """An event back-dated beyond the sealer's tolerance stays unsealed: the chain does not vouch for it."""
    with pg.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (at, type, actor, payload) "
                "VALUES (now() - interval '1 hour', 'test.backdated', 'test', "
                "'{\"at\": \"' || to_char((now() - interval '1 hour') AT TIME ZONE 'UTC', "
                '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\') || \'"}\')'
            )
        )
    assert any(p.startswith("audit:") for p in check_audit_chain(pg)), check_audit_chain(pg)


def test_inside_catches_holds_counting_more_than_the_balance(decided: Instance, pg: Engine) -> None:
    with pg.begin() as conn:
        conn.execute(update(credit_accounts).values(balance_fen=10000))  # 100.00 under 300.00 held
    assert any("exceed balance" in p for p in check_inside(pg)), check_inside(pg)


def test_outside_catches_an_approval_beyond_the_ledger_when_it_is_recorded() -> None:
    upstream = LedgerUpstream()
    upstream.open_account(CUSTOMER, GROUP, Decimal("100.00"))
    books = OutsideBooks(upstream)
    books.approval("o1", (CUSTOMER, GROUP), Decimal("80.00"))
    assert check_outside(books) == []
    books.approval("o2", (CUSTOMER, GROUP), Decimal("30.00"))
    books.pay((CUSTOMER, GROUP), Decimal("50.00"))  # a payment afterwards does not hide the overspend
    problems = check_outside(books)
    assert any("approving o2" in p for p in problems), problems


def test_outside_catches_a_ledger_debited_below_zero() -> None:
    upstream = LedgerUpstream()
    upstream.open_account(CUSTOMER, GROUP, Decimal("100.00"))
    books = OutsideBooks(upstream)
    books.approval("o1", (CUSTOMER, GROUP), Decimal("100.00"))
    upstream.debit(CUSTOMER, GROUP, Decimal("100.00"))
    books.settle("o1")
    upstream.debit(CUSTOMER, GROUP, Decimal("0.01"))
    assert any("went down to" in p for p in check_outside(books)), check_outside(books)
