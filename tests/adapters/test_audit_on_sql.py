"""The audit trail on SQLite and PostgreSQL: appended in the change's transaction, sealed in commit order,
UPDATE/DELETE/TRUNCATE refused by the database itself."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from adapters.sql.audit import SQLITE_NOW, SqlAuditLog
from adapters.sql.engine import make_engine
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


PAUSE_LOCK = 7_402_155  # an advisory lock id of these tests


def mark_of(uow: SqlUnitOfWork) -> int:
    return uow.audit.sealer_mark().seq


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

    def test_the_mark_moves_to_the_horizon_a_pass_stored_and_never_down(self, uow: SqlUnitOfWork) -> None:
        seal_audit(uow=uow)
        append(uow, 3)
        with uow:
            horizon = uow.audit.seal_horizon()
            assert uow.audit.horizon_settled(horizon)  # nothing in flight
        seal_audit(uow=uow)  # seals the three, stores its horizon
        assert seal_audit(uow=uow) == 0  # it had settled: the mark moves to it
        with uow:
            assert mark_of(uow) == horizon.seq
            assert uow.audit.unsealed(after_seq=mark_of(uow), limit=10) == []
            uow.audit.save_sealer_mark(horizon.seq - 2, horizon)  # never down...
            assert mark_of(uow) == horizon.seq
            uow.audit.save_sealer_mark(horizon.seq - 2, horizon, exact=True)  # ...unless exact
            assert mark_of(uow) == horizon.seq - 2
        append(uow, 1)
        assert seal_audit(uow=uow) == 1
        assert seal_audit(uow=uow) == 0
        with uow:
            assert mark_of(uow) == horizon.seq + 1

    def test_the_database_stamps_the_seq_whatever_a_writer_sends(
        self, uow: SqlUnitOfWork, engine: Engine
    ) -> None:
        """No writer puts an event below the sealer's mark by choosing its seq (PostgreSQL: the trigger
        overwrites it; SQLite: a seq already taken is refused, and none below the highest is free)."""
        append(uow, 2)
        seal_audit(uow=uow)
        seal_audit(uow=uow)
        with uow:
            mark = mark_of(uow)
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
            for _ in range(3):
                assert seal_audit(uow=uow) == 0
            with uow:
                mark = mark_of(uow)
                early = [link[1] for link in uow.audit.chain(after_position=uow.audit.head()[0] - 5, limit=5)]
            assert mark < min(early)  # the late writer's seq is below them, and the mark below it
            late.commit()
        assert seal_audit(uow=uow) == 1
        seal_audit(uow=uow)
        with uow:
            assert mark_of(uow) >= max(early)
        report = verify_audit(uow=uow)
        assert report.ok and report.unsealed == 0

    def test_a_writer_that_has_taken_its_seq_but_not_written_its_row_holds_the_horizon(
        self, postgres_engine: Engine
    ) -> None:
        """The sealer reads the highest seq, then the writers in flight. A writer between the two, its
        seq taken and its row not yet written, must be among them, or the mark would pass its event. A
        trigger after the stamp (triggers fire by name) makes the writer wait there for an advisory lock
        the test holds; the event is the writer's only write."""
        with postgres_engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE FUNCTION test_pause() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    f"BEGIN PERFORM pg_advisory_xact_lock({PAUSE_LOCK}); RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER audit_events_zz_pause BEFORE INSERT ON audit_events FOR EACH ROW "
                    "WHEN (NEW.type = 'test.paused') EXECUTE FUNCTION test_pause()"
                )
            )
        last_seq = text("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM audit_events_seq_seq")
        holder = postgres_engine.connect()
        try:
            holder.execute(text(f"SELECT pg_advisory_lock({PAUSE_LOCK})"))
            uow = SqlUnitOfWork(postgres_engine)
            seal_audit(uow=uow)
            with postgres_engine.connect() as conn:
                before = conn.execute(last_seq).scalar_one()
            writer = threading.Thread(target=append_one, args=(postgres_engine, "test.paused"))
            writer.start()
            try:
                deadline = time.monotonic() + 10
                with postgres_engine.connect() as conn:
                    while conn.execute(last_seq).scalar_one() == before:  # the writer took its seq...
                        assert time.monotonic() < deadline
                        time.sleep(0.01)
                        conn.rollback()
                with uow:  # ...and waits in the trigger, its row not written yet
                    horizon = uow.audit.seal_horizon()
                with uow:
                    assert horizon.seq == before + 1 and horizon.pending
                    assert not uow.audit.horizon_settled(horizon)
                    uow.audit.save_sealer_mark(None, horizon)
                    uow.commit()
                seal_audit(uow=uow)
                seal_audit(uow=uow)
                with uow:
                    assert mark_of(uow) < horizon.seq
            finally:
                holder.execute(text(f"SELECT pg_advisory_unlock({PAUSE_LOCK})"))
                writer.join()
            with uow:
                assert uow.audit.horizon_settled(horizon)
            assert seal_audit(uow=uow) == 1
            seal_audit(uow=uow)
            with uow:
                assert mark_of(uow) >= horizon.seq
        finally:
            holder.close()
            with postgres_engine.begin() as conn:
                conn.execute(text("DROP TRIGGER audit_events_zz_pause ON audit_events"))
                conn.execute(text("DROP FUNCTION test_pause()"))

    def test_a_horizon_settles_before_the_pass_reads_not_after(
        self, postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A writer the stored horizon names commits just after the pass read its page: had the pass
        checked the horizon after reading, it would find it settled and move the mark past an event it
        never saw."""
        uow, late = SqlUnitOfWork(postgres_engine), SqlUnitOfWork(postgres_engine)
        seal_audit(uow=uow)
        seal_audit(uow=uow)
        real_unsealed = SqlAuditLog.unsealed
        with late:
            late.audit.append("account.frozen", at=AT, actor=ALICE, subject={"customer_code": "late"})
            seal_audit(uow=uow)  # stores a horizon that names the late writer
            committed: list[bool] = []

            def unsealed_then_the_writer_commits(self: SqlAuditLog, *, after_seq: int, limit: int) -> Any:
                page = real_unsealed(self, after_seq=after_seq, limit=limit)
                if not committed:
                    late.commit()
                    committed.append(True)
                return page

            monkeypatch.setattr(SqlAuditLog, "unsealed", unsealed_then_the_writer_commits)
            seal_audit(uow=uow)
            monkeypatch.setattr(SqlAuditLog, "unsealed", real_unsealed)
        assert committed
        seal_audit(uow=uow)
        seal_audit(uow=uow)
        assert verify_audit(uow=uow).unsealed == 0  # the late event was sealed, not left below the mark

    def test_a_sequence_that_caches_seqs_never_settles_a_horizon(self, postgres_engine: Engine) -> None:
        """With CACHE 20 a session hands out seqs from its own block, below a value another session read."""
        with postgres_engine.begin() as conn:
            conn.execute(text("ALTER SEQUENCE audit_events_seq_seq CACHE 20"))
        try:
            with postgres_engine.connect() as conn:
                horizon = SqlAuditLog(conn).seal_horizon()
                assert horizon.pending is None
                assert not SqlAuditLog(conn).horizon_settled(horizon)
        finally:
            with postgres_engine.begin() as conn:
                conn.execute(text("ALTER SEQUENCE audit_events_seq_seq CACHE 1"))

    def test_a_writer_in_another_database_does_not_hold_the_mark(
        self, postgres_engine: Engine, postgres_url: str
    ) -> None:
        other = make_engine(postgres_url.rsplit("/", 1)[0] + "/postgres")
        try:
            with other.connect() as conn:  # a write transaction left open in another database
                conn.execute(text("CREATE TEMPORARY TABLE held (n int)"))
                conn.execute(text("INSERT INTO held VALUES (1)"))
                uow = SqlUnitOfWork(postgres_engine)
                append(uow, 1)
                seal_audit(uow=uow)
                with uow:
                    horizon = uow.audit.seal_horizon()
                    assert horizon.pending == ()
                seal_audit(uow=uow)
                with uow:
                    assert mark_of(uow) >= horizon.seq
                conn.rollback()
        finally:
            other.dispose()

    def test_the_mark_keeps_moving_under_a_steady_stream_of_writers(self, postgres_engine: Engine) -> None:
        """Writers always in flight: each horizon waits only for the writers it named, which end."""
        stop, errors = threading.Event(), []

        def writer() -> None:
            uow = SqlUnitOfWork(postgres_engine)
            try:
                while not stop.is_set():
                    with uow:
                        uow.audit.append("test.stream", at=AT, actor=ALICE, subject={})
                        time.sleep(0.02)  # a transaction that takes a while
                        uow.commit()
            except BaseException as exc:  # the test reports it
                errors.append(exc)

        uow = SqlUnitOfWork(postgres_engine)
        seal_audit(uow=uow)
        threads = [threading.Thread(target=writer) for _ in range(4)]
        for t in threads:
            t.start()
        marks = []
        try:
            for _ in range(20):
                time.sleep(0.05)
                seal_audit(uow=uow)
                with uow:
                    marks.append(mark_of(uow))
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors
        assert len(set(marks)) >= 4, marks  # it kept moving
        seal_audit(uow=uow)
        seal_audit(uow=uow)
        assert verify_audit(uow=uow).unsealed == 0

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
