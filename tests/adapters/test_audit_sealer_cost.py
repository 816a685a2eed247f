"""The sealer's quick pass reads what is recent, not the whole trail (PostgreSQL).

Every second the sealer asks for unsealed events after a recent seq. Without the bound on the seals' side
of the anti-join, PostgreSQL merged against every seal from the first: a query whose cost grew with the
trail (34 ms at 200,000 seals, against 4 ms bounded), twice a tick, for ever. The plan is read from
EXPLAIN ANALYZE of the statement the repository sends, over a trail of 20,000 sealed events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, Engine, event, text

from adapters.sql.audit import SqlAuditLog
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.audit import Actor
from creditctl.services.audit import seal_audit

pytestmark = pytest.mark.postgres

T = TypeVar("T")
SEALED = 20_000
RECENT = 100


def _rows_read_from(plan: dict[str, Any], relation: str) -> int:
    """Rows the plan's nodes on `relation` produced, over all their loops."""

    def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield node
        for child in node.get("Plans", []):
            yield from walk(child)

    nodes = [n for n in walk(plan) if n.get("Relation Name") == relation]
    return sum(int(n["Actual Rows"]) * int(n["Actual Loops"]) for n in nodes)


def _write_trail(conn: Connection, events: int, sealed: int) -> int:
    """`events` audit events, the first `sealed` of them sealed, and the statistics autovacuum would have
    taken; in the caller's transaction. Returns the first event's seq."""
    conn.execute(
        text(
            "INSERT INTO audit_events (type, actor, payload) "
            "SELECT 'test.sealer', 'test', '{}' FROM generate_series(1, :n)"
        ),
        {"n": events},
    )
    ours = text("SELECT min(seq) FROM audit_events WHERE type = 'test.sealer'")
    first = int(conn.execute(ours).scalar_one())
    conn.execute(
        text(
            "INSERT INTO audit_seals (position, seq, prev_hash, hash, sealed_at) "
            "SELECT coalesce((SELECT max(position) FROM audit_seals), 0) + g, :first + g - 1, "
            "repeat('0', 64), repeat('0', 64), now() FROM generate_series(1, :n) g"
        ),
        {"first": first, "n": sealed},
    )
    conn.execute(text("ANALYZE audit_events, audit_seals"))
    return first


def _run_and_explain(conn: Connection, call: Callable[[], T]) -> tuple[T, dict[str, Any]]:
    """What `call` returns, and the EXPLAIN ANALYZE plan of the last statement it sent."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        sent.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", capture)
    try:
        result = call()
    finally:
        event.remove(conn, "before_cursor_execute", capture)
    statement, parameters = sent[-1]
    plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar_one()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    return result, plan[0]["Plan"]


def test_the_quick_pass_reads_only_the_seals_after_its_cursor(postgres_engine: Engine) -> None:
    """All in one transaction, rolled back: the trail, its statistics and the plan leave nothing behind."""
    with postgres_engine.connect() as conn:
        first = _write_trail(conn, SEALED + RECENT, SEALED)
        after = first + SEALED - 1 - RECENT  # the last RECENT sealed, then RECENT unsealed
        found, plan = _run_and_explain(conn, lambda: SqlAuditLog(conn).unsealed(after_seq=after, limit=1000))
        assert [e.seq for e in found] == list(range(first + SEALED, first + SEALED + RECENT))
        conn.rollback()
    read = _rows_read_from(plan, "audit_seals")
    assert read <= 2 * RECENT, f"the quick pass read {read} seals of {SEALED} to find {RECENT} unsealed"


def test_the_newest_sealed_time_reads_one_event_per_seal_of_its_window(postgres_engine: Engine) -> None:
    """As a join, the window's seals were hashed and audit_events scanned whole (cheaper-looking while the
    table is small): a tick's cost grew with the trail until the planner changed its mind."""
    window = 100
    with postgres_engine.connect() as conn:
        _write_trail(conn, SEALED, SEALED)
        newest, plan = _run_and_explain(conn, lambda: SqlAuditLog(conn).newest_sealed_at(window=window))
        assert newest is not None
        conn.rollback()
    read = _rows_read_from(plan, "audit_events")
    assert read <= window, f"the newest sealed time read {read} events of {SEALED} for a window of {window}"


def test_a_seal_round_ends_when_it_has_caught_up_however_fast_events_keep_coming(
    postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events committed while a round seals are the next round's. A round that chased a steady stream
    page by page sealed a few events a round trip, 170 round trips a second at one client."""
    writer = Actor(name="test", role="admin")
    seal_audit(uow=SqlUnitOfWork(postgres_engine))  # whatever earlier tests left
    with postgres_engine.begin() as conn:
        for n in range(3):
            SqlAuditLog(conn).append("test.stream", at=datetime.now(UTC), actor=writer, subject={"n": n})
    pages: list[int] = []
    real_unsealed = SqlAuditLog.unsealed

    def unsealed_while_one_more_commits(self: SqlAuditLog, *, after_seq: int, limit: int) -> Any:
        page = real_unsealed(self, after_seq=after_seq, limit=limit)
        pages.append(len(page))
        if len(pages) < 50:  # another request commits an event meanwhile, every time
            with postgres_engine.begin() as other:
                SqlAuditLog(other).append("test.stream", at=datetime.now(UTC), actor=writer, subject={})
        return page

    monkeypatch.setattr(SqlAuditLog, "unsealed", unsealed_while_one_more_commits)
    assert seal_audit(uow=SqlUnitOfWork(postgres_engine)) == 3
    assert pages == [3], pages  # one page, shorter than a batch: caught up, the round ends
    monkeypatch.setattr(SqlAuditLog, "unsealed", real_unsealed)
    assert seal_audit(uow=SqlUnitOfWork(postgres_engine)) == 1  # the next round: what came meanwhile


def test_a_quick_pass_over_a_fully_sealed_window_reads_only_the_events_above_the_highest_seal(
    postgres_engine: Engine,
) -> None:
    """Every seq of the window has a seal (the count on the seals' index says so): the events are read
    from the highest seal up. The anti-join alone visited all 20,000 sealed events of the window (their
    heap pages, ~2,000 shared buffers a pass at 10,000 seqs) to return the 100 new ones."""
    with postgres_engine.connect() as conn:
        first = _write_trail(conn, SEALED + RECENT, SEALED)
        after = first - 1  # the whole trail is the window: every seq of it sealed but the RECENT newest
        found, plan = _run_and_explain(conn, lambda: SqlAuditLog(conn).unsealed(after_seq=after, limit=1000))
        assert [e.seq for e in found] == list(range(first + SEALED, first + SEALED + RECENT))
        conn.rollback()
    read = _rows_read_from(plan, "audit_events")
    assert read <= 2 * RECENT, f"the quick pass read {read} events of {SEALED + RECENT} to find {RECENT}"


def test_a_quick_pass_still_finds_an_event_left_unsealed_inside_its_window(postgres_engine: Engine) -> None:
    """A late commit (or a refused event) below the highest seal: the count falls short, the statement
    looks through the whole window, and the event comes back in seq order before the new ones."""
    with postgres_engine.connect() as conn:
        first = _write_trail(conn, SEALED + RECENT, 0)
        straggler = first + SEALED // 2
        conn.execute(
            text(
                "INSERT INTO audit_seals (position, seq, prev_hash, hash, sealed_at) "
                "SELECT coalesce((SELECT max(position) FROM audit_seals), 0) "
                "+ row_number() OVER (ORDER BY g), g, repeat('0', 64), repeat('0', 64), now() "
                "FROM generate_series(:first, :last) g WHERE g <> :straggler"
            ),
            {"first": first, "last": first + SEALED - 1, "straggler": straggler},
        )
        found = SqlAuditLog(conn).unsealed(after_seq=first - 1, limit=1000)
        conn.rollback()
    assert [e.seq for e in found] == [straggler, *range(first + SEALED, first + SEALED + RECENT)]


def test_a_seq_rolled_back_inside_the_window_hides_no_event_after_it(postgres_engine: Engine) -> None:
    """A rolled-back insert leaves a seq with no event and no seal: the window's count can never match
    while it is in the window, and the events after it are still all found."""
    with postgres_engine.connect() as conn:
        before = int(conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_events")).scalar_one())
        conn.commit()
    with postgres_engine.connect() as rolled_back:
        _write_trail(rolled_back, 1, 0)
        rolled_back.rollback()
    with postgres_engine.connect() as conn:
        first = _write_trail(conn, 10 + RECENT, 10)
        assert first > before + 1  # the rolled-back seq lies between the cursor and the trail
        found = SqlAuditLog(conn).unsealed(after_seq=before, limit=1000)
        conn.rollback()
    assert [e.seq for e in found] == list(range(first + 10, first + 10 + RECENT))
