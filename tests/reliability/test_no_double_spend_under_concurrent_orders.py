"""Reliability 1: no double spend, Jepsen-bank style, on PostgreSQL with a thread and a connection per worker.

Default run (bounded): 16 workers x 100 decisions on 5 accounts. `CREDITCTL_RELIABILITY_LONG=1`: the
document's 64 x 1,000 (needs about 70 free PostgreSQL connections). The ledgers carry about 30 % of what
is asked, a fifth of the requests reuse an order id. Both checkers must pass, something must be approved
and something refused, and every answer is a decision, a replay or a clean conflict. The same run with
the account's row lock taken away must fail the checkers: they are not blind to a double spend.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from adapters.sql.accounts import SqlAccountRepository
from adapters.sql.tables import decisions
from rules import Outcome
from tests.reliability.bank import answer_problems, open_bank, outcome_counts, plan_requests, run_bank
from tests.reliability.checkers import assert_checkers, check_inside, check_outside
from tests.reliability.conftest import LONG

pytestmark = [pytest.mark.adapters, pytest.mark.postgres]

WORKERS, PER_WORKER = (64, 1000) if LONG else (16, 100)
TIMEOUT_S = 3600 if LONG else 120


def test_concurrent_orders_never_spend_money_twice_and_every_answer_is_clean(
    pg: Engine, seed_value: int, tmp_path: Path
) -> None:
    plan = plan_requests(seed_value, WORKERS, PER_WORKER)
    ctx, books = open_bank(pg, plan, tmp_path)
    by_order = run_bank(ctx, books, plan, TIMEOUT_S)
    replay = f"(replay with CREDITCTL_TEST_SEED={seed_value})"
    assert answer_problems(by_order) == [], replay
    counts = outcome_counts(by_order)
    assert counts[Outcome.APPROVE] > 0, f"vacuous: nothing approved {replay}"
    assert counts[Outcome.BLOCK] > 0, f"the ledgers were never exhausted, so nothing contended {replay}"
    with pg.connect() as conn:
        assert conn.execute(select(func.count()).select_from(decisions)).scalar_one() == len(by_order)
    assert_checkers(pg, books, seed_value)


def test_without_the_row_lock_the_same_run_fails_the_checkers(
    pg: Engine, seed_value: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deliberately broken variant: `lock` reads the account like `get`, no SELECT ... FOR UPDATE.
    A third of the bounded run is enough to over-approve (the workers all read before the first commit)."""
    monkeypatch.setattr(SqlAccountRepository, "lock", SqlAccountRepository.get)
    plan = plan_requests(seed_value, WORKERS, max(20, PER_WORKER // 3))
    ctx, books = open_bank(pg, plan, tmp_path)
    run_bank(ctx, books, plan, TIMEOUT_S)
    outside = check_outside(books)
    assert outside != [], f"seed {seed_value}: the outside checker passed a run without the row lock"
    assert check_inside(pg) != [], f"seed {seed_value}: the inside checker passed a run without the row lock"
