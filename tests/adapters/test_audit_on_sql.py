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

from adapters.sql.audit import SQLITE_NOW
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.audit import GENESIS, Actor, chain_hash
from creditctl.services import audit as audit_service
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

    def test_a_quick_pass_reads_recent_seqs_only_and_a_full_pass_finds_a_straggler(
        self, postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Quick passes (every second in the worker, before every read) stay an index range however long
        the trail grows; an event whose transaction stayed open past the window waits for a full pass."""
        monkeypatch.setattr(audit_service, "RECENT_SEQS", 3)
        uow, late = SqlUnitOfWork(postgres_engine), SqlUnitOfWork(postgres_engine)
        seal_audit(uow=uow)
        with late:
            late.audit.append("account.frozen", at=AT, actor=ALICE, subject={"customer_code": "late"})
            append(uow, 5, customer="early")  # five higher seqs, committed first
            assert seal_audit(uow=uow, full=False) == 5
            late.commit()
        assert seal_audit(uow=uow, full=False) == 0  # 5 seqs below the highest sealed: out of the window
        with uow:
            assert uow.audit.count_unsealed() == 1
        assert seal_audit(uow=uow) == 1  # a full pass
        assert verify_audit(uow=uow).ok and verify_audit(uow=uow).unsealed == 0

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
