"""The audit trail against those who run it: times are the database's, an event held back or back-dated is
refused and reported, a rewrite sealed again is named by the anchors kept outside the database, and on
PostgreSQL the service's role can only INSERT and SELECT the audit tables (SQLite has no roles)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from adapters.anchor.file_anchor_sink import FileAnchorSink
from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade
from adapters.sql.roles import RoleSetupError, setup_app_role
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.audit import Actor, canonical_json, chain_hash, iso
from creditctl.domain.decision import Order
from creditctl.services.audit import seal_audit, seal_audit_outcome, verify_audit
from creditctl.services.audit_anchor import anchor_audit
from tests.api.test_audit_api import _readme_block as readme_block
from tests.api.test_cli import cli  # noqa: F401  (the fixture)
from tests.conftest import TEST_BALANCES, _postgres_or_skip, make_context, seed
from tests.reliability.checkers import assert_checkers, books_for, starting_money

pytestmark = pytest.mark.adapters

ALICE = Actor(name="alice", role="admin", request_id="req-op-1")
FIFTEEN_DAYS_AGO = datetime.now(UTC) - timedelta(days=15)


def append(uow: SqlUnitOfWork, n: int, *, start: int = 0) -> None:
    with uow:
        for i in range(start, start + n):
            uow.audit.append(
                "account.frozen",
                at=uow.now(),
                actor=ALICE,
                subject={"customer_code": "8800000001", "sale_group_code": "GB20", "order_id": f"PO-{i}"},
                after={"status": "frozen", "n": i},
            )
        uow.commit()


def forged_row(at: datetime) -> dict[str, object]:
    """An approval as the service would write it, dated `at` in its payload and its column."""
    payload = canonical_json(
        {
            "type": "decision.made",
            "at": at,
            "actor": {"name": "erp", "role": "orders"},
            "request_id": None,
            "subject": {"customer_code": "8800000001", "sale_group_code": "GB20", "order_id": "PO-FORGED"},
            "before": None,
            "after": {"outcome": "approve", "amount": "900000.00"},
        }
    )
    return {"at": at, "payload": payload}


FORGE = (
    "INSERT INTO audit_events (at, type, actor, customer_code, sale_group_code, order_id, payload) "
    "VALUES (:at, 'decision.made', 'erp', '8800000001', 'GB20', 'PO-FORGED', :payload)"
)


def _fresh_database(base: str) -> tuple[str, Engine]:
    name = f"creditctl_auditop_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    return url, admin


def _drop_database(url: str, admin: Engine, *roles: str) -> None:
    name = url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        for role in roles:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    admin.dispose()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A database of its own (migrated, as the owner): what a test tampers with stays there."""
    url, admin = _fresh_database(_postgres_or_skip())
    yield url
    _drop_database(url, admin)


@pytest.fixture(scope="module")
def roles_pg() -> Iterator[tuple[str, str]]:
    """(owner URL, app URL): a database of its own and a role made by `creditctl db roles`'s code."""
    owner_url, admin = _fresh_database(_postgres_or_skip())
    role = f"creditctl_app_{uuid.uuid4().hex[:8]}"
    app_url = make_url(owner_url).set(username=role, password=None).render_as_string(hide_password=False)
    assert setup_app_role(owner_url, app_url) == role
    yield owner_url, app_url
    _drop_database(owner_url, admin, role)


@pytest.mark.postgres
class TestTheServiceRoleOnPostgres:
    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE audit_events SET type = 'x'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
            "UPDATE audit_seals SET hash = prev_hash",
            "DELETE FROM audit_seals",
            "TRUNCATE audit_seals",
            "ALTER TABLE audit_events DISABLE TRIGGER USER",
            "ALTER TABLE audit_seals DISABLE TRIGGER audit_seals_append_only",
            "DROP TRIGGER audit_events_database_stamp ON audit_events",
            "DELETE FROM audit_seal_mark",
            "INSERT INTO audit_seal_mark (id, seq) VALUES (2, 0)",
        ],
    )
    def test_the_app_role_may_not_change_remove_or_unguard_audit_rows(
        self, roles_pg: tuple[str, str], statement: str
    ) -> None:
        """Refused by the privileges themselves (not the triggers, which an owner could disable)."""
        engine = make_engine(roles_pg[1])
        try:
            with pytest.raises(DBAPIError, match=r"permission denied|must be owner"), engine.begin() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def test_the_app_role_owns_nothing_and_holds_insert_and_select_only_on_the_audit_tables(
        self, roles_pg: tuple[str, str]
    ) -> None:
        role = make_url(roles_pg[1]).username
        engine = make_engine(roles_pg[0])
        try:
            with engine.connect() as conn:
                grants = conn.execute(
                    text(
                        "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
                        "FROM information_schema.role_table_grants WHERE grantee = :r "
                        "AND table_name IN ('audit_events', 'audit_seals') GROUP BY table_name"
                    ),
                    {"r": role},
                ).all()
                owned = conn.execute(
                    text("SELECT count(*) FROM pg_tables WHERE tableowner = :r"), {"r": role}
                )
                assert owned.scalar() == 0
        finally:
            engine.dispose()
        assert sorted(grants) == [("audit_events", "INSERT,SELECT"), ("audit_seals", "INSERT,SELECT")]

    def test_the_service_decides_seals_and_verifies_as_the_app_role(
        self, roles_pg: tuple[str, str], balances, clock, tmp_path: Path
    ) -> None:
        from creditctl.services.decide_order import decide_order

        engine = make_engine(roles_pg[1])
        try:
            ctx = make_context(engine, balances, clock, tmp_path)
            seed(ctx)
            result = decide_order(
                Order(f"PO-role-{uuid.uuid4().hex[:6]}", "8800000001", "GB20", Decimal("100.00")),
                scope=None,
                uow=ctx.uow(),
                balances=ctx.balances,
            )
            assert result.decision.outcome.value == "approve"
            assert seal_audit(uow=ctx.uow()) >= 1
            report = verify_audit(uow=ctx.uow())
            assert report.ok and report.unsealed == 0 and not report.refused, report.problem
            books = books_for(starting_money(TEST_BALANCES))
            assert books.saw(result.decision)
            assert_checkers(engine, books)  # both checkers, read as the service's role
        finally:
            engine.dispose()

    def test_a_forged_back_dated_insert_gets_the_database_time_not_its_own(
        self, roles_pg: tuple[str, str]
    ) -> None:
        """INSERT rights are all a forger with the service's role has: the trigger overwrites the time,
        and the hashed payload carries the database's time, not the 15 days ago it claimed."""
        engine = make_engine(roles_pg[1])
        try:
            before = datetime.now(UTC) - timedelta(seconds=5)
            with engine.begin() as conn:
                conn.execute(text(FORGE), forged_row(FIFTEEN_DAYS_AGO))
            uow = SqlUnitOfWork(engine)
            seal_audit(uow=uow)
            with uow:
                position, _ = uow.audit.head()
                link = uow.audit.chain(after_position=position - 1, limit=1)[0]
            assert link[5]["order_id"] == "PO-FORGED"
            at = datetime.fromisoformat(json.loads(link[2])["at"])
            assert at >= before  # not 15 days ago
            assert link[5]["at"] == iso(at)  # the column is the database's time too
            assert verify_audit(uow=uow).ok
        finally:
            engine.dispose()

    def test_setup_refuses_the_owner_or_a_role_with_powers_as_the_service_role(
        self, roles_pg: tuple[str, str]
    ) -> None:
        owner_url = roles_pg[0]
        with pytest.raises(RoleSetupError, match="migrations' role"):
            setup_app_role(owner_url, owner_url)
        mighty = f"creditctl_mighty_{uuid.uuid4().hex[:8]}"
        admin = create_engine(owner_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE ROLE "{mighty}" LOGIN CREATEDB'))
            url = make_url(owner_url).set(username=mighty).render_as_string(hide_password=False)
            with pytest.raises(RoleSetupError, match="superuser or may create roles or databases"):
                setup_app_role(owner_url, url)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP ROLE IF EXISTS "{mighty}"'))
            admin.dispose()


@pytest.mark.postgres
class TestHeldBackAndRewrittenOnPostgres:
    def test_an_event_held_back_in_an_open_transaction_is_refused_and_reported(
        self, fresh_pg: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With the database's time, an old event can come only from a transaction kept open: it reaches
        the sealer after newer events were sealed, and more than the tolerance older is refused."""
        engine = make_engine(fresh_pg)
        try:
            uow = SqlUnitOfWork(engine)
            with engine.connect() as forger:
                forger.execute(text(FORGE), forged_row(FIFTEEN_DAYS_AGO))  # open, not committed
                time.sleep(1.2)
                append(uow, 3)
                assert seal_audit(uow=uow, tolerance_s=1.0) == 3
                forger.commit()
            with caplog.at_level(logging.ERROR, logger="creditctl.audit"):
                outcome = seal_audit_outcome(uow=uow, tolerance_s=1.0)
            assert outcome.sealed == 0
            (refused,) = outcome.refused
            assert (
                refused.type == "decision.made" and "held back before commit, or back-dated" in refused.reason
            )
            assert f"event seq {refused.seq} (decision.made) refused, not sealed" in caplog.text
            report = verify_audit(uow=uow, tolerance_s=1.0)
            assert report.ok and report.unsealed == 1
            assert [(seq, type_) for seq, type_, _ in report.refused] == [(refused.seq, "decision.made")]
        finally:
            engine.dispose()

    def test_a_rewrite_by_the_owner_sealed_again_is_named_against_the_anchors(
        self, fresh_pg: str, tmp_path: Path
    ) -> None:
        engine = make_engine(fresh_pg)
        try:
            uow, sink = SqlUnitOfWork(engine), FileAnchorSink(tmp_path / "anchors.jsonl")
            append(uow, 6)
            seal_audit(uow=uow)
            anchor_audit(uow=uow, sink=sink)
            append(uow, 6, start=6)
            seal_audit(uow=uow)
            anchor_audit(uow=uow, sink=sink)
            with engine.begin() as owner:  # the tables' owner: the triggers are its to switch off
                seq = owner.execute(text("SELECT seq FROM audit_seals WHERE position = 8")).scalar_one()
                owner.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
                owner.execute(text("ALTER TABLE audit_seals DISABLE TRIGGER USER"))
                owner.exec_driver_sql(
                    "UPDATE audit_events SET payload = replace(payload, '\"n\":7', '\"n\":70') "
                    "WHERE seq = %s",
                    (seq,),
                )
                owner.execute(text("DELETE FROM audit_seals WHERE position >= 8"))
                owner.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
                owner.execute(text("ALTER TABLE audit_seals ENABLE TRIGGER USER"))
            assert seal_audit(uow=uow) == 5  # sealed again: the chain holds together
            assert verify_audit(uow=uow).ok
            report = verify_audit(uow=uow, anchors=sink.read_back() or [])
            assert (report.broken_position, report.broken_seq, report.broken_type) == (
                8,
                seq,
                "account.frozen",
            )
            assert "first event that differs" in (report.problem or "")
        finally:
            engine.dispose()


class TestOnSqlite:
    def test_sqlite_refuses_an_event_whose_time_is_not_the_databases(self, sqlite_engine: Engine) -> None:
        with pytest.raises(DBAPIError, match="takes its times from the database"), sqlite_engine.begin() as c:
            c.execute(text(FORGE), forged_row(FIFTEEN_DAYS_AGO))

    def test_an_event_back_dated_past_the_trigger_is_refused_by_seal_and_verify(
        self,
        sqlite_engine: Engine,
        cli,  # noqa: F811
        context,
    ) -> None:
        """SQLite has no roles: whoever writes the file can drop the trigger; the sealer still refuses an
        event older than the chain, and `audit seal` and `audit verify` name it (exit 1)."""
        uow = SqlUnitOfWork(sqlite_engine)
        append(uow, 2)
        seal_audit(uow=uow)
        with sqlite_engine.begin() as conn:
            conn.execute(text("DROP TRIGGER audit_events_database_time"))
            conn.execute(text(FORGE), forged_row(FIFTEEN_DAYS_AGO))
            seq = conn.execute(text("SELECT max(seq) FROM audit_events")).scalar_one()
        append(uow, 1, start=2)
        sealed = cli("audit", "seal", ok=False)
        assert sealed.exit_code == 1
        assert f"REFUSED event seq {seq} (decision.made)" in sealed.output
        assert "held back before commit, or back-dated" in sealed.output
        verified = cli("audit", "verify", ok=False)
        assert verified.exit_code == 1 and f"REFUSED event seq {seq} (decision.made)" in verified.output
        with uow:
            assert [e.seq for e in uow.audit.unsealed(after_seq=0, limit=10)] == [seq]  # not sealed

    def test_a_seal_inserted_by_hand_for_a_back_dated_event_breaks_verify(
        self, sqlite_engine: Engine
    ) -> None:
        """Someone with INSERT on the seals can link an event past the sealer; verify applies its rule."""
        uow = SqlUnitOfWork(sqlite_engine)
        append(uow, 2)
        seal_audit(uow=uow)
        with sqlite_engine.begin() as conn:
            conn.execute(text("DROP TRIGGER audit_events_database_time"))
            conn.execute(text(FORGE), forged_row(FIFTEEN_DAYS_AGO))
        with uow:
            position, prev = uow.audit.head()
            (event,) = uow.audit.unsealed(after_seq=0, limit=1)
            uow.audit.add_seals(
                [(position + 1, event.seq, prev, chain_hash(prev, event.payload))], at=uow.now()
            )
            uow.commit()
        report = verify_audit(uow=uow)
        assert (report.broken_position, report.broken_seq) == (position + 1, event.seq)
        assert "back-dated" in (report.problem or "")

    def test_a_rewrite_sealed_again_is_named_by_verify_against_the_anchor_file(
        self,
        sqlite_engine: Engine,
        cli,  # noqa: F811
        tmp_path: Path,
    ) -> None:
        uow, sink = SqlUnitOfWork(sqlite_engine), FileAnchorSink(tmp_path / "anchors.jsonl")
        append(uow, 10)
        seal_audit(uow=uow)
        first = anchor_audit(uow=uow, sink=sink)
        append(uow, 5, start=10)
        seal_audit(uow=uow)
        last = anchor_audit(uow=uow, sink=sink)
        assert first is not None and last is not None
        with uow:  # the event with n 6 (the seeded customers wrote some before)
            links = uow.audit.chain(after_position=0, limit=100)
        position, seq = next((p, q) for p, q, payload, *_ in links if '"n":6' in payload)
        with sqlite_engine.begin() as conn:  # the file's owner: drops the triggers, edits, seals again
            for name in ("audit_events_no_update", "audit_seals_no_delete"):
                conn.execute(text(f"DROP TRIGGER {name}"))
            conn.exec_driver_sql(
                "UPDATE audit_events SET payload = replace(payload, '\"n\":6', '\"n\":60') WHERE seq = ?",
                (seq,),
            )
            conn.exec_driver_sql("DELETE FROM audit_seals WHERE position >= ?", (position,))
        resealed = cli("audit", "seal", "--from-start")  # some lie below the sealer's mark: the whole trail
        assert f"sealed {last.position - position + 1} events" in resealed.output
        assert verify_audit(uow=uow).ok  # the chain holds together...
        out = cli("audit", "verify", "--anchor", str(sink.path), ok=False)  # ...but not with the anchors
        assert out.exit_code == 1
        assert f"BROKEN at position {position} (event seq {seq}, account.frozen)" in out.output
        assert "first event that differs" in out.output
        # One head kept by hand says only that the change is at or before it.
        single = cli("audit", "verify", "--anchor", f"{first.position}:{first.hash}", ok=False)
        assert f"BROKEN at position {first.position}" in single.output
        assert f"positions 1 to {first.position - 1}" in single.output
        # An auditor with an export and the anchor file finds it too, with docs/auditors.md's lines alone.
        export = tmp_path / "audit.jsonl"
        cli("audit", "export", "--from", "2000-01-01", "--out", str(export))
        checker = tmp_path / "check_anchors.py"
        checker.write_text(readme_block("python", after="Against the anchor file"), encoding="utf-8")
        found = subprocess.run(
            [sys.executable, str(checker), str(export), str(sink.path)], capture_output=True, text=True
        )
        assert found.returncode == 1
        assert (
            f"position {position} (seq {seq}, account.frozen) differs from what was anchored" in found.stderr
        )

    def test_anchors_list_every_hash_since_the_last_one_in_the_file(
        self, sqlite_engine: Engine, tmp_path: Path
    ) -> None:
        uow, sink = SqlUnitOfWork(sqlite_engine), FileAnchorSink(tmp_path / "anchors.jsonl")
        append(uow, 3)
        seal_audit(uow=uow)
        first = anchor_audit(uow=uow, sink=sink)
        assert anchor_audit(uow=uow, sink=sink) is None  # nothing new: nothing written
        append(uow, 2, start=3)
        seal_audit(uow=uow)
        second = anchor_audit(uow=uow, sink=sink)
        assert first is not None and second is not None
        assert (first.since, first.position, second.since, second.position) == (0, 3, 3, 5)
        with uow:
            stored = [link[4] for link in uow.audit.chain(after_position=0, limit=10)]
        assert [*first.hashes, *second.hashes] == stored
        assert [a.position for a in sink.read_back() or []] == [3, 5] and sink.last_position() == 5
        assert verify_audit(uow=uow, anchors=sink.read_back() or []).ok
