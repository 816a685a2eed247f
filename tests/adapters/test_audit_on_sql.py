"""The audit trail on SQLite and PostgreSQL: appended in the change's transaction, sealed in commit order,
UPDATE/DELETE/TRUNCATE refused by the database itself."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from adapters.sql.audit import SQLITE_NOW, SqlAuditLog
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.audit import GENESIS, Actor, chain_hash, event_payload
from creditctl.services.audit import seal_audit, verify_audit

pytestmark = pytest.mark.adapters

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
ALICE = Actor(name="alice", role="admin", request_id="req-1")


@pytest.fixture
def uow(engine: Engine) -> SqlUnitOfWork:
    return SqlUnitOfWork(engine)


def append(uow: SqlUnitOfWork, n: int, *, customer: str = "8800000001", commit: bool = True) -> None:
    with uow:
        for i in range(n):
            uow.audit.append(
                "account.frozen",
                at=AT,
                actor=ALICE,
                subject={"customer_code": customer, "sale_group_code": "GB20", "order_id": f"PO-{i}"},
                before={"status": "active"},
                after={"status": "frozen", "n": i},
            )
        if commit:
            uow.commit()


def append_one(engine: Engine, type: str) -> None:
    """One event in its own transaction, its only write."""
    with engine.begin() as conn:
        SqlAuditLog(conn).append(type, at=AT, actor=ALICE, subject={"customer_code": "8800000001"})


def head_before(uow: SqlUnitOfWork) -> int:
    with uow:
        return uow.audit.head()[0]


class TestAppendAndSeal:
    def test_an_event_is_written_only_when_its_transaction_commits(self, uow: SqlUnitOfWork) -> None:
        with uow:
            before = uow.audit.count_unsealed()
        append(uow, 1, commit=False)
        with uow:
            assert uow.audit.count_unsealed() == before
        append(uow, 2)
        with uow:
            assert uow.audit.count_unsealed() == before + 2

    def test_seal_links_each_event_to_the_previous_hash_and_verify_accepts_it(
        self, uow: SqlUnitOfWork
    ) -> None:
        seal_audit(uow=uow)
        start = head_before(uow)
        append(uow, 3)
        assert seal_audit(uow=uow) == 3
        with uow:
            links = uow.audit.chain(after_position=start, limit=10)
        prev = GENESIS if start == 0 else links[0][3]
        for _position, _seq, payload, prev_hash, digest, _columns in links:
            assert prev_hash == prev
            assert digest == chain_hash(prev, payload)
            prev = digest
        assert [p for p, *_ in links] == [start + 1, start + 2, start + 3]
        report = verify_audit(uow=uow)
        assert report.ok, report.problem
        assert report.head_position == start + 3
        assert report.unsealed == 0

    def test_a_pass_moves_the_mark_to_the_last_seq_and_the_next_reads_above_it(
        self, uow: SqlUnitOfWork
    ) -> None:
        seal_audit(uow=uow)
        append(uow, 3)
        with uow:
            horizon = uow.audit.seal_horizon()
            assert uow.audit.sealed_through() < horizon.seq
            assert uow.audit.horizon_settled(horizon)  # nothing in flight
        assert seal_audit(uow=uow) == 3
        with uow:
            assert uow.audit.sealed_through() == horizon.seq
            assert uow.audit.unsealed(after_seq=uow.audit.sealed_through(), limit=10) == []
            uow.audit.raise_sealed_through(horizon.seq - 2)  # never down
            assert uow.audit.sealed_through() == horizon.seq
        append(uow, 1)
        assert seal_audit(uow=uow) == 1
        with uow:
            assert uow.audit.sealed_through() == horizon.seq + 1

    def test_the_database_stamps_the_seq_whatever_a_writer_sends(
        self, uow: SqlUnitOfWork, engine: Engine
    ) -> None:
        """No writer puts an event below the sealer's mark by choosing its seq (PostgreSQL: the trigger
        overwrites it; SQLite: a seq already taken is refused, and none below the highest is free)."""
        append(uow, 2)
        seal_audit(uow=uow)
        with uow:
            mark = uow.audit.sealed_through()
        at = "clock_timestamp()" if engine.dialect.name == "postgresql" else SQLITE_NOW
        chosen = text(
            "INSERT INTO audit_events (seq, at, type, actor, payload) "
            f"VALUES (:seq, {at}, :type, :actor, :payload)"
        )
        row = {"seq": mark, "type": "test.chosen", "actor": ALICE.name}
        row["payload"] = event_payload("test.chosen", at=AT, actor=ALICE, subject={}, before=None, after=None)
        try:
            with engine.begin() as conn:
                conn.execute(chosen, row)
        except DBAPIError:
            assert engine.dialect.name == "sqlite"
        with uow:
            unsealed = uow.audit.unsealed(after_seq=0, limit=10_000)
        assert all(e.seq > mark for e in unsealed)  # nothing left below the mark
        if engine.dialect.name == "postgresql":
            assert seal_audit(uow=uow) == 1  # the event took a new seq, above the mark

    def test_the_payload_is_canonical_json_with_the_database_time_actor_request_and_subject(
        self, uow: SqlUnitOfWork
    ) -> None:
        """The hashed `at` is the database's time of the INSERT, not the `at` the writer passed (AT)."""
        before = datetime.now(UTC) - timedelta(seconds=1)
        append(uow, 1, customer="8800000009")
        seal_audit(uow=uow)
        with uow:
            position, _ = uow.audit.head()
            (_, _, payload, *_rest) = uow.audit.chain(after_position=position - 1, limit=1)[0]
        at = json.loads(payload)["at"]
        assert before <= datetime.fromisoformat(at) <= datetime.now(UTC) + timedelta(seconds=1)
        assert payload == (
            '{"actor":{"name":"alice","role":"admin"},"after":{"n":0,"status":"frozen"},'
            f'"at":"{at}","before":{{"status":"active"}},"request_id":"req-1",'
            '"subject":{"customer_code":"8800000009","order_id":"PO-0","sale_group_code":"GB20"},'
            '"type":"account.frozen"}'
        )


@pytest.mark.postgres
class TestReadingNewestFirst:
    def test_newest_first_pages_down_from_the_head_with_the_filters(self, uow: SqlUnitOfWork) -> None:
        from creditctl.domain.audit import AuditQuery
        from tests.random_refs import random_customer_code

        mine, theirs = (
            random_customer_code(),
            random_customer_code(),
        )  # the database may hold other tests' events
        append(uow, 3, customer=mine)
        append(uow, 2, customer=theirs)
        append(uow, 2, customer=mine)
        seal_audit(uow=uow)
        with uow:
            oldest_first = [e.position for e in uow.audit.query(AuditQuery(customer_code=mine, limit=100))]
            assert len(oldest_first) == 5
            first = uow.audit.query(AuditQuery(customer_code=mine, limit=3, newest_first=True))
            assert [e.position for e in first] == oldest_first[::-1][:3]
            rest = uow.audit.query(
                AuditQuery(customer_code=mine, limit=3, newest_first=True, before_position=first[-1].position)
            )
            assert [e.position for e in rest] == oldest_first[::-1][3:]
            scoped = uow.audit.query(AuditQuery(customers=frozenset({theirs}), newest_first=True))
            assert [e.data["subject"]["customer_code"] for e in scoped] == [theirs] * 2
            assert scoped[0].position > scoped[1].position


class TestCommitOrderOnPostgres:
    def test_an_event_that_commits_after_a_later_seq_was_sealed_is_sealed_after_it(
        self, postgres_engine: Engine
    ) -> None:
        """Seqs are handed out at insert, so seq 7 may commit after seq 8 was sealed: the chain follows
        the order the sealer sees commits in, so the late one is sealed next, never skipped."""
        uow, late = SqlUnitOfWork(postgres_engine), SqlUnitOfWork(postgres_engine)
        seal_audit(uow=uow)
        with late:
            late.audit.append("account.frozen", at=AT, actor=ALICE, subject={"customer_code": "late"})
            append(uow, 1, customer="early")  # a higher seq, committed first
            assert seal_audit(uow=uow) == 1
            late.commit()
        assert seal_audit(uow=uow) == 1
        with uow:
            position, _ = uow.audit.head()
            links = uow.audit.chain(after_position=position - 2, limit=2)
        early_seq, late_seq = links[0][1], links[1][1]
        assert late_seq < early_seq  # sealed after it, though its seq is lower
        assert verify_audit(uow=uow).ok

    def test_the_mark_stays_below_an_open_writer_and_the_next_pass_seals_it_however_far_below(
        self, postgres_engine: Engine
    ) -> None:
        """A pass reads above the sealer's mark only, so the mark must never pass a seq a transaction
        still holds: the writer's event would be left below it for good."""
        uow, late = SqlUnitOfWork(postgres_engine), SqlUnitOfWork(postgres_engine)
        seal_audit(uow=uow)
        with late:
            late.audit.append("account.frozen", at=AT, actor=ALICE, subject={"customer_code": "late"})
            append(uow, 5, customer="early")  # five higher seqs, committed first
            assert seal_audit(uow=uow) == 5
            with uow:
                mark = uow.audit.sealed_through()
                early = [link[1] for link in uow.audit.chain(after_position=uow.audit.head()[0] - 5, limit=5)]
            assert mark < min(early)  # the late writer's seq is below them, and the mark below it
            late.commit()
        assert seal_audit(uow=uow) == 1
        with uow:
            assert uow.audit.sealed_through() >= max(early)
        report = verify_audit(uow=uow)
        assert report.ok and report.unsealed == 0

    def test_a_writer_holds_its_transaction_id_before_its_seq_so_the_horizon_waits_for_it(
        self, postgres_engine: Engine
    ) -> None:
        """The sealer reads the highest seq, then the transactions in flight. A writer that took its seq
        before it had a transaction id would be in neither: the mark would pass its event. A trigger
        that sleeps after the seq is taken (triggers fire by name: after the stamp) holds a writer there
        while the sealer reads its horizon; the event is the writer's first write."""
        with postgres_engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE FUNCTION test_pause() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN PERFORM pg_sleep(1.5); RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER audit_events_zz_pause BEFORE INSERT ON audit_events FOR EACH ROW "
                    "WHEN (NEW.type = 'test.paused') EXECUTE FUNCTION test_pause()"
                )
            )
        last_seq = text("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM audit_events_seq_seq")
        try:
            uow = SqlUnitOfWork(postgres_engine)
            seal_audit(uow=uow)
            with postgres_engine.connect() as conn:
                before = conn.execute(last_seq).scalar_one()
            writer = threading.Thread(target=append_one, args=(postgres_engine, "test.paused"))
            writer.start()
            try:
                deadline = time.monotonic() + 5
                with postgres_engine.connect() as conn:
                    while conn.execute(last_seq).scalar_one() == before:  # the writer took its seq...
                        assert time.monotonic() < deadline
                        time.sleep(0.01)
                        conn.rollback()
                with uow:  # ...and sleeps in the trigger, its row not written yet
                    horizon = uow.audit.seal_horizon()
                with uow:
                    assert horizon.seq == before + 1
                    assert not uow.audit.horizon_settled(horizon)
                seal_audit(uow=uow)
                with uow:
                    assert uow.audit.sealed_through() < horizon.seq
            finally:
                writer.join()
            with uow:
                assert uow.audit.horizon_settled(horizon)
            assert seal_audit(uow=uow) == 1
            with uow:
                assert uow.audit.sealed_through() >= horizon.seq
        finally:
            with postgres_engine.begin() as conn:
                conn.execute(text("DROP TRIGGER audit_events_zz_pause ON audit_events"))
                conn.execute(text("DROP FUNCTION test_pause()"))

    def test_a_horizon_read_outside_read_committed_never_settles(self, postgres_engine: Engine) -> None:
        """In REPEATABLE READ the snapshot predates the seq read: it cannot bound the writers."""
        with postgres_engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            horizon = SqlAuditLog(conn).seal_horizon()
            conn.rollback()
        assert horizon.pending is None
        with postgres_engine.connect() as conn:
            assert not SqlAuditLog(conn).horizon_settled(horizon)

    def test_concurrent_sealers_never_fork_the_chain(self, postgres_engine: Engine) -> None:
        uow = SqlUnitOfWork(postgres_engine)
        start = head_before(uow)
        append(uow, 300)
        errors: list[BaseException] = []

        def sealer() -> None:
            try:
                for _ in range(5):
                    seal_audit(uow=SqlUnitOfWork(postgres_engine), batch=20)
            except BaseException as exc:  # the test reports it
                errors.append(exc)

        threads = [threading.Thread(target=sealer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seal_audit(uow=uow)
        assert not errors or all("another sealer" in str(e) for e in errors)
        report = verify_audit(uow=uow)
        assert report.ok, report.problem
        assert report.head_position >= start + 300
        assert report.unsealed == 0

    def test_an_open_audit_insert_does_not_make_another_account_wait(self, postgres_engine: Engine) -> None:
        """No global lock: one transaction holding an uncommitted event does not block another's."""
        holder, other = SqlUnitOfWork(postgres_engine), SqlUnitOfWork(postgres_engine)
        with holder:
            holder.audit.append("account.frozen", at=AT, actor=ALICE, subject={"customer_code": "A"})
            started = time.perf_counter()
            append(other, 1, customer="B")
            assert time.perf_counter() - started < 1.0

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE audit_events SET type = 'x' WHERE seq = (SELECT max(seq) FROM audit_events)",
            "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)",
            "TRUNCATE audit_events CASCADE",
            "UPDATE audit_seals SET hash = prev_hash WHERE position = (SELECT max(position) FROM audit_seals)",  # noqa: E501
            "DELETE FROM audit_seals WHERE position = (SELECT max(position) FROM audit_seals)",
            "TRUNCATE audit_seals",
        ],
    )
    def test_the_database_refuses_to_change_or_remove_audit_rows(
        self, postgres_engine: Engine, statement: str
    ) -> None:
        uow = SqlUnitOfWork(postgres_engine)
        append(uow, 1)
        seal_audit(uow=uow)
        with pytest.raises(DBAPIError, match="append-only"), postgres_engine.begin() as conn:
            conn.execute(text(statement))


class TestSqliteTriggers:
    def test_sqlite_refuses_update_and_delete_too(self, sqlite_engine: Engine) -> None:
        uow = SqlUnitOfWork(sqlite_engine)
        append(uow, 1)
        seal_audit(uow=uow)
        for statement in (
            "UPDATE audit_events SET type = 'x'",
            "DELETE FROM audit_events",
            "UPDATE audit_seals SET hash = 'x'",
            "DELETE FROM audit_seals",
        ):
            with pytest.raises(DBAPIError, match="append-only"), sqlite_engine.begin() as conn:
                conn.execute(text(statement))

    def test_sqlite_refuses_a_replace_over_an_unsealed_event_or_a_seal(self, sqlite_engine: Engine) -> None:
        """INSERT OR REPLACE deletes the row it collides with without firing DELETE triggers."""
        uow = SqlUnitOfWork(sqlite_engine)
        append(uow, 2)
        with uow:
            first = uow.audit.unsealed(after_seq=0, limit=1)[0].seq
        replace = (  # the database's time, as the service inserts it: only the replace is refused
            "INSERT OR REPLACE INTO audit_events (seq, at, type, actor, payload) "
            f"VALUES ({first}, {SQLITE_NOW}, 'decision.made', 'x', '{{}}')"
        )
        with pytest.raises(DBAPIError, match="append-only"), sqlite_engine.begin() as conn:
            conn.execute(text(replace))
        seal_audit(uow=uow)
        with pytest.raises(DBAPIError, match="append-only"), sqlite_engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT OR REPLACE INTO audit_seals (position, seq, prev_hash, hash, sealed_at) "
                    f"VALUES (1, {first}, 'x', 'y', '2026-01-01 00:00:00')"
                )
            )
        assert verify_audit(uow=uow).ok


# Tampering caught by verify, on SQLite and PostgreSQL:
# tests/reliability/test_audit_chain_under_load_and_tampering.py
