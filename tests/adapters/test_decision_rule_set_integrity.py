"""A decision names an existing rule set, and a rule set a decision names stays (migration 0020): the rule
of the foreign key decisions.rule_set_id -> rule_sets.id, kept by triggers on SQLite and PostgreSQL, and
on PostgreSQL without locking the rule set's row (the key's FOR KEY SHARE made a MultiXact per decision
when decisions ran at once). A deletion racing a decision in flight waits for it, then refuses."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from adapters.sql.tables import credit_accounts, customers, decisions, rule_sets

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    found: Engine = request.getfixturevalue(f"{request.param}_engine")
    yield found


def _account(conn: Connection) -> int:
    code = f"RS{uuid.uuid4().hex[:8]}"
    conn.execute(insert(customers).values(code=code, name="", created_at=NOW))
    return int(
        conn.execute(
            insert(credit_accounts)
            .values(customer_code=code, sale_group_code="G1", exposure_fen=0, created_at=NOW, updated_at=NOW)
            .returning(credit_accounts.c.id)
        ).scalar_one()
    )


def _rule_set(conn: Connection) -> int:
    """A draft of its own (the tests' teardown deletes drafts)."""
    document = {"name": "t", "rules": []}
    values = dict(name="t", document=document, created_at=NOW, created_by="t", updated_at=NOW)
    return int(conn.execute(insert(rule_sets).values(**values).returning(rule_sets.c.id)).scalar_one())


def _decision(conn: Connection, account_id: int, rule_set_id: int) -> str:
    decision_id = str(uuid.uuid4())
    customer = conn.execute(
        select(credit_accounts.c.customer_code).where(credit_accounts.c.id == account_id)
    ).scalar_one()
    conn.execute(
        insert(decisions).values(
            id=decision_id, order_id=decision_id[:20], account_id=account_id, customer_code=customer,
            sale_group_code="G1", amount_fen=100, fingerprint="f", outcome="approve", state="decided",
            reasons=[], actions=[], facts={}, exposure_fen=0, credit_limit_fen=0, credit_grade="A",
            rule_set_id=rule_set_id, rule_set_version=1, decided_at=NOW, rechecks=0,
        )
    )  # fmt: skip
    return decision_id


class TestTheRuleOfTheKey:
    def test_a_decision_naming_no_rule_set_is_refused(self, engine: Engine) -> None:
        with engine.begin() as conn:
            account = _account(conn)
        with pytest.raises(IntegrityError, match="rule_set_id"), engine.begin() as conn:
            _decision(conn, account, rule_set_id=987654)
        with engine.connect() as conn:
            assert conn.execute(select(decisions.c.id).where(decisions.c.account_id == account)).all() == []

    def test_a_decision_cannot_be_moved_to_no_rule_set(self, engine: Engine) -> None:
        with engine.begin() as conn:
            decision_id = _decision(conn, _account(conn), _rule_set(conn))
        with pytest.raises(IntegrityError, match="rule_set_id"), engine.begin() as conn:
            conn.execute(update(decisions).where(decisions.c.id == decision_id).values(rule_set_id=987654))

    def test_a_rule_set_a_decision_names_cannot_be_deleted(self, engine: Engine) -> None:
        with engine.begin() as conn:
            rule_set_id = _rule_set(conn)
            _decision(conn, _account(conn), rule_set_id)
        with pytest.raises(IntegrityError, match="rule_set_id"), engine.begin() as conn:
            conn.execute(delete(rule_sets).where(rule_sets.c.id == rule_set_id))
        with engine.connect() as conn:
            assert conn.execute(select(rule_sets.c.id).where(rule_sets.c.id == rule_set_id)).all()

    def test_a_rule_set_a_decision_names_cannot_be_renumbered(self, engine: Engine) -> None:
        with engine.begin() as conn:
            rule_set_id = _rule_set(conn)
            _decision(conn, _account(conn), rule_set_id)
        with pytest.raises(IntegrityError, match="rule_set_id"), engine.begin() as conn:
            conn.execute(update(rule_sets).where(rule_sets.c.id == rule_set_id).values(id=rule_set_id + 1000))

    def test_a_rule_set_no_decision_names_can_be_deleted(self, engine: Engine) -> None:
        with engine.begin() as conn:
            rule_set_id = _rule_set(conn)
            conn.execute(delete(rule_sets).where(rule_sets.c.id == rule_set_id))
        with engine.connect() as conn:
            assert conn.execute(select(rule_sets.c.id).where(rule_sets.c.id == rule_set_id)).all() == []


@pytest.mark.postgres
class TestWithoutTheRowLock:
    def test_a_decision_leaves_its_rule_sets_row_unlocked(self, postgres_engine: Engine) -> None:
        """The key's check wrote this transaction's id into the row's xmax (FOR KEY SHARE)."""
        with postgres_engine.begin() as conn:
            rule_set_id = _rule_set(conn)
            account = _account(conn)
        with postgres_engine.begin() as conn:
            _decision(conn, account, rule_set_id)
            xmax = conn.execute(text("SELECT xmax::text FROM rule_sets WHERE id = :id"), {"id": rule_set_id})
            assert xmax.scalar_one() == "0"

    def test_a_deletion_waits_for_a_decision_in_flight_then_refuses(self, postgres_engine: Engine) -> None:
        with postgres_engine.begin() as conn:
            rule_set_id = _rule_set(conn)
            account = _account(conn)
        outcome: list[Any] = []

        def delete_it() -> None:
            try:
                with postgres_engine.begin() as conn:
                    conn.execute(delete(rule_sets).where(rule_sets.c.id == rule_set_id))
                outcome.append("deleted")
            except IntegrityError as exc:
                outcome.append(exc)

        with postgres_engine.connect() as writer:
            writer.begin()
            _decision(writer, account, rule_set_id)  # in flight: not committed
            deleter = threading.Thread(target=delete_it)
            deleter.start()
            time.sleep(0.5)
            assert deleter.is_alive(), f"the deletion did not wait for the decision in flight: {outcome}"
            writer.commit()
        deleter.join(timeout=30)
        assert len(outcome) == 1 and isinstance(outcome[0], IntegrityError), outcome

    def test_a_decision_after_a_deletion_in_flight_finds_its_rule_set_gone(
        self, postgres_engine: Engine
    ) -> None:
        with postgres_engine.begin() as conn:
            rule_set_id = _rule_set(conn)
            account = _account(conn)
        outcome: list[Any] = []

        def decide() -> None:
            try:
                with postgres_engine.begin() as conn:
                    _decision(conn, account, rule_set_id)
                outcome.append("decided")
            except IntegrityError as exc:
                outcome.append(exc)

        with postgres_engine.connect() as deleter:
            deleter.begin()
            deleter.execute(delete(rule_sets).where(rule_sets.c.id == rule_set_id))  # not committed
            writer = threading.Thread(target=decide)
            writer.start()
            time.sleep(0.5)
            assert writer.is_alive(), f"the decision did not wait for the deletion in flight: {outcome}"
            deleter.commit()
        writer.join(timeout=30)
        assert len(outcome) == 1 and isinstance(outcome[0], IntegrityError), outcome

    def test_a_deletion_at_repeatable_read_is_refused(self, postgres_engine: Engine) -> None:
        with postgres_engine.begin() as conn:
            rule_set_id = _rule_set(conn)
        repeatable = postgres_engine.execution_options(isolation_level="REPEATABLE READ")
        with pytest.raises(Exception, match="READ COMMITTED only"), repeatable.begin() as conn:
            conn.execute(delete(rule_sets).where(rule_sets.c.id == rule_set_id))
