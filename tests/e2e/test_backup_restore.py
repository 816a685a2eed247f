"""End to end: a backup restored into a new PostgreSQL cluster is the same ledger — the audit chain
verifies there, against the anchors written before the backup (kept outside the database), and the
service goes on writing to it (sequences, seals and the chain continue). Both documented ways: pg_dump -Fc
and pg_restore into a fresh cluster, and a pg_basebackup started as a server of its own. Private servers
only (tests/private_postgres.py), never the shared one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.bootstrap import bootstrap, engine_for, load_settings
from adapters.sql.tables import decisions
from creditctl.domain.decision import Order
from creditctl.services.decide_order import decide_order
from tests.e2e.served import clean_env, run, run_ok
from tests.private_postgres import PrivatePostgres, private_postgres, restored_base_backup

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CUSTOMER, GROUP = "8800633175", "GA10"  # a demo account
ORDERS = 20
HEAD = re.compile(r"head (\d+):([0-9a-f]{64})")


def env_for(server: PrivatePostgres, folder: Path) -> dict[str, str]:
    return clean_env(
        CREDITCTL_DATABASE_URL=server.url,
        CREDITCTL_INSTANCE_PATH=str(folder / "instance"),
        CREDITCTL_AUDIT_ANCHOR=f"file:{folder / 'anchors.jsonl'}",
        CREDITCTL_LOG_LEVEL="WARNING",
    )


def decide_some(env: dict[str, str], tag: str, n: int) -> None:
    context = bootstrap(load_settings(env))
    for i in range(n):
        order = Order(f"{tag}-{i}", CUSTOMER, GROUP, Decimal("10.00") * (i + 1))
        decide_order(order, scope=None, uow=context.uow(), balances=context.balances)
    engine_for(env["CREDITCTL_DATABASE_URL"]).dispose()


def decisions_in(server: PrivatePostgres) -> int:
    with engine_for(server.url).connect() as conn:
        count = int(conn.execute(select(func.count()).select_from(decisions)).scalar_one())
    engine_for(server.url).dispose()
    return count


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[PrivatePostgres, dict[str, str], str]]:
    """A primary with the demo, ORDERS decisions, every event sealed and the head anchored to a file:
    the server, its environment and `audit verify`'s head (position:hash) before the backup."""
    with private_postgres() as primary:
        env = env_for(primary, tmp_path)
        run_ok("db", "upgrade", cwd=tmp_path, env=env)
        run_ok("demo", cwd=tmp_path, env=env)
        decide_some(env, "before-backup", ORDERS)
        run_ok("audit", "seal", cwd=tmp_path, env=env)
        assert "anchored" in run_ok("audit", "anchor", cwd=tmp_path, env=env)
        head = HEAD.search(run_ok("audit", "verify", cwd=tmp_path, env=env))
        assert head is not None
        yield primary, env, f"{head[1]}:{head[2]}"


def check_restored(
    restored: PrivatePostgres, primary: PrivatePostgres, env: dict[str, str], head: str
) -> None:
    """The restored copy verifies against the anchors with the same head, holds the same decisions, takes
    new ones whose events extend the chain; and a changed event there is found (the check can fail)."""
    folder = Path(env["CREDITCTL_INSTANCE_PATH"]).parent
    restored_env = {**env, "CREDITCTL_DATABASE_URL": restored.url}
    anchors = str(folder / "anchors.jsonl")
    verified = run_ok("audit", "verify", "--anchor", anchors, cwd=folder, env=restored_env)
    found = HEAD.search(verified)
    assert found is not None and f"{found[1]}:{found[2]}" == head, verified
    assert "checked against" in verified and "0 not sealed yet" in verified, verified
    assert decisions_in(restored) == decisions_in(primary) == ORDERS

    decide_some(restored_env, "after-restore", 3)
    run_ok("audit", "seal", cwd=folder, env=restored_env)
    after = run_ok("audit", "verify", "--anchor", anchors, cwd=folder, env=restored_env)
    position = HEAD.search(after)
    assert position is not None and int(position[1]) > int(head.split(":")[0]), after
    print(f"restored: {verified.strip()}\nafter 3 more decisions: {after.strip()}")

    restored.sql("ALTER TABLE audit_events DISABLE TRIGGER USER")  # as the superuser: past insert-only
    # a changed fact, not a changed spacing: events are hashed as their canonical JSON
    restored.sql(
        "UPDATE audit_events SET payload = jsonb_set(payload::jsonb, '{edited}', 'true')::text "
        "WHERE seq = (SELECT min(seq) + 5 FROM audit_events)"
    )
    tampered = run("audit", "verify", "--anchor", anchors, cwd=folder, env=restored_env)
    assert tampered.returncode != 0, tampered.stdout + tampered.stderr


def test_a_pg_dump_restored_into_a_new_cluster_verifies_against_the_anchors(
    ledger: tuple[PrivatePostgres, dict[str, str], str],
) -> None:
    primary, env, head = ledger
    dump = primary.folder / "creditctl.dump"  # a folder the server's user may write
    primary.tool("pg_dump", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-Fc",
                 "-f", str(dump), "creditctl")  # fmt: skip
    with private_postgres() as restored:
        restored.tool("pg_restore", "-h", "127.0.0.1", "-p", str(restored.port), "-U", "postgres",
                      "-d", "creditctl", "--exit-on-error", str(dump))  # fmt: skip
        check_restored(restored, primary, env, head)


def test_a_base_backup_started_as_a_new_cluster_verifies_against_the_anchors(
    ledger: tuple[PrivatePostgres, dict[str, str], str],
) -> None:
    primary, env, head = ledger
    with restored_base_backup(primary) as restored:
        assert restored.sql("SELECT pg_is_in_recovery()") is False
        check_restored(restored, primary, env, head)
        assert restored.sql("SELECT count(*) FROM decisions") == ORDERS + 3
