"""PostgreSQL's CPU per decision, statement by statement, for two trees of the code in the same run.

    .venv/bin/python bench/pg_statement_cost.py --base /tmp/creditctl-main [-n 2000] [--rounds 3]

Starts a private PostgreSQL (tests/private_postgres.py: fsync off, autovacuum off as on the shared test
server) with pg_stat_statements loaded (track = all, track_planning = on). Each tree (`--base`, and this
one) gets a database of its own, migrated by its own code and filled like bench/bench.py (10,000 accounts,
fresh snapshots, the day's profile computed, an orders key). Then rounds alternate between the trees: a
fresh process of that tree's code decides -n orders in-process (Flask's test client, fresh order ids,
accounts spread over the 10,000) after 200 unmeasured ones, and every --worker-every decisions runs what
one tick of `creditctl worker` runs (a quick seal pass, a delivery round, a backtest poll): about what
the worker does per second at 400 decisions/s. VACUUM (ANALYZE) before each round, as bench.py does.

Reported per tree, per decision, summed over its rounds: the CPU of the PostgreSQL client backends
(/proc/<pid>/stat, the decisions' and the worker ticks' apart), WAL bytes, and each statement's calls,
execution and planning time (pg_stat_statements), the decision's and the worker's. A script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
ACCOUNTS, SALE_GROUP, BALANCE = 10_000, "SG01", "100000000.00"
# bench.Instance._seed_history in SQL: 20,000 approved decisions of yesterday, their holds released.
HISTORY_SQL = """
WITH rs AS (SELECT id, version FROM rule_sets WHERE version IS NOT NULL ORDER BY version DESC LIMIT 1),
made AS (
  INSERT INTO decisions (id, order_id, account_id, customer_code, sale_group_code, amount_fen, fingerprint,
    outcome, state, reasons, actions, facts, balance_fen, exposure_fen, credit_limit_fen, credit_grade,
    rule_set_id, rule_set_version, decided_at, rechecks, reason_codes)
  SELECT md5('d' || i), 'history-' || i, a.id, a.customer_code, a.sale_group_code, 10000, md5('f' || i),
    'approve', 'decided', '[]', '[]', '{}', a.balance_fen, 0, 0, 'A', rs.id, rs.version, :at, 0, ','
  FROM generate_series(0, 19999) AS i
  JOIN credit_accounts AS a ON a.id = (SELECT min(id) FROM credit_accounts) + i % 10000, rs
  RETURNING id, order_id, account_id)
INSERT INTO holds (id, account_id, decision_id, order_id, amount_fen, status, counting, created_at,
  expires_at, ended_at, settled_fen)
SELECT md5('h' || id), account_id, id, order_id, 10000, 'released', false, :at, :at + interval '1 day', :at, 0
FROM made
"""


# --- in a tree's own process: fill a database, drive decisions -------------------------------------


def _env(url: str, folder: Path) -> None:
    os.environ.update(
        CREDITCTL_DATABASE_URL=url,
        CREDITCTL_INSTANCE_PATH=str(folder / "instance"),
        CREDITCTL_BALANCE_PROVIDER="fake",
        CREDITCTL_FAKE_BALANCES=str(folder / "balances.json"),
        CREDITCTL_LOG_LEVEL="WARNING",
        CREDITCTL_RATE_LIMIT_PER_KEY="off",
    )


def prepare(url: str, folder: Path) -> None:
    """Migrate with this tree's code, write 10,000 accounts as bench.py does, print an orders key."""
    from sqlalchemy import create_engine, insert, text

    from adapters.sql.migrate import upgrade
    from adapters.sql.tables import credit_accounts, customers

    codes = [f"C{i:05d}" for i in range(1, ACCOUNTS + 1)]
    balances = {c: [{"saleGroupCode": SALE_GROUP, "saleGroupName": "Bench sales group",
                     "payerAccountCode": "P" + c[1:], "payerAccountName": f"Bench payer {c}",
                     "payerAccountBalance": BALANCE}] for c in codes}  # fmt: skip
    (folder / "balances.json").write_text(json.dumps(balances))
    _env(url, folder)
    upgrade(url)
    now = datetime.now(UTC)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(customers), [{"code": c, "name": f"Bench {c}", "created_at": now} for c in codes])
        conn.execute(insert(credit_accounts), [
            {"customer_code": c, "sale_group_code": SALE_GROUP, "sale_group_name": "Bench sales group",
             "payer_account_code": "P" + c[1:], "payer_account_name": f"Bench payer {c}", "status": "active",
             "exposure_fen": 0, "balance_fen": int(BALANCE.replace(".", "")), "balance_fetched_at": now,
             "balance_source": "fake", "params": None, "profile_valid_until": now + timedelta(days=2),
             "created_at": now, "updated_at": now} for c in codes])  # fmt: skip
        # A day of history, as bench.Instance._seed_history (why: there): plans not made on empty tables.
        conn.execute(text(HISTORY_SQL), {"at": now - timedelta(days=1)})
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    engine.dispose()
    from adapters.bootstrap import bootstrap
    from creditctl.domain.audit import cli_actor
    from creditctl.services.api_keys import create_api_key

    ctx = bootstrap()
    new = create_api_key(
        name="bench", role="orders", customers=None, uow=ctx.uow(), clock=ctx.clock, actor=cli_actor("bench")
    )
    print(new.secret)


def _backend_ticks(conn: Any) -> int:
    pids = [r[0] for r in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")]  # fmt: skip
    ticks = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(f[11]) + int(f[12])
        except (OSError, IndexError):
            pass
    return ticks


def drive(url: str, folder: Path, key: str, n: int, start: int, worker_every: int) -> None:
    """Decide 200 + n orders in this process; print CPU ticks of the backends for decisions and worker."""
    import psycopg

    _env(url, folder)
    from adapters.bootstrap import bootstrap, create_wsgi_app
    from adapters.cli.audit import seal_once
    from creditctl.services.backtest_jobs import work_next_backtest
    from creditctl.services.webhook_delivery import deliver_round

    app = create_wsgi_app()
    client = app.test_client()
    ctx = bootstrap()
    tools = ctx.webhooks
    assert tools is not None and ctx.backtests is not None and ctx.decision_history is not None
    headers = {"Authorization": f"Bearer {key}"}

    def decide(i: int) -> None:
        body = {"order_id": f"o{i}", "customer_code": f"C{1 + (i * 7919) % ACCOUNTS:05d}",
                "sale_group_code": SALE_GROUP, "amount": f"{1 + i % 99}.{i % 100:02d}"}  # fmt: skip
        r = client.post("/v1/decisions", json=body, headers=headers)
        if r.status_code != 201:
            raise RuntimeError(f"{r.status_code} {r.get_data(as_text=True)[:300]}")

    def worker_tick() -> None:
        seal_once(ctx)
        deliver_round(store=tools.store, notifier=tools.notifier, box=tools.box, policy=tools.policy)
        work_next_backtest(store=ctx.backtests, history=ctx.decision_history, holder="bench",
                           policy=ctx.backtest_policy)  # fmt: skip

    for i in range(200):
        decide(start + i)
    worker_tick()  # the first (full) seal pass, unmeasured
    monitor = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)
    decide_ticks = worker_ticks = 0
    t0, c0 = time.perf_counter(), _backend_ticks(monitor)
    for i in range(n):
        decide(start + 200 + i)
        if (i + 1) % worker_every == 0:
            c1 = _backend_ticks(monitor)
            decide_ticks += c1 - c0
            worker_tick()
            c0 = _backend_ticks(monitor)
            worker_ticks += c0 - c1
    decide_ticks += _backend_ticks(monitor) - c0
    print(json.dumps({"decide_ticks": decide_ticks, "worker_ticks": worker_ticks,
                      "wall_s": time.perf_counter() - t0, "hz": os.sysconf("SC_CLK_TCK")}))  # fmt: skip


# --- the harness: a private server, both trees, interleaved rounds --------------------------------


def _in_tree(tree: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, str(HERE), *args], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tree} {args[0]}: {done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


STATS = """SELECT d.datname, s.query, s.calls, s.total_exec_time, s.total_plan_time, s.wal_bytes::float8
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"""


def _stats(server: Any) -> dict[tuple[str, str], tuple[float, ...]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        rows = conn.execute(text(STATS)).all()
    engine.dispose()
    out: dict[tuple[str, str], tuple[float, ...]] = {}
    for db, q, *v in rows:  # the same text may appear per user/toplevel: summed
        prev = out.get((db, q), (0, 0.0, 0.0, 0.0))
        out[(db, q)] = tuple(a + b for a, b in zip(prev, v, strict=True))
    return out


def _delta(before: dict[Any, Any], after: dict[Any, Any], db: str) -> dict[str, tuple[float, ...]]:
    """Per statement of database `db`: calls, exec ms, plan ms, WAL bytes between two snapshots."""
    out = {}
    for (d, q), v in after.items():
        b = before.get((d, q), (0, 0.0, 0.0, 0.0))
        if d == db and v[0] - b[0] and not q.lstrip().upper().startswith(("VACUUM", "SELECT PG_CURRENT")):
            out[q] = tuple(x - y for x, y in zip(v, b, strict=True))
    return out


def _report(label: str, n: int, stats: dict[str, list[float]]) -> None:
    rows = sorted(
        ((e + p, c, e, p, w, " ".join(q.split())) for q, (c, e, p, w) in stats.items()), reverse=True
    )
    total = sum(r[0] for r in rows)
    print(f"\n{label}: pg_stat_statements over {n} decisions (warm-ups included), "
          f"{total * 1000 / n:.1f} µs/decision in all")  # fmt: skip
    print("   µs/dec  calls/dec  exec µs/call  plan µs/call  WAL B/call  statement")
    for t, calls, exec_ms, plan_ms, wal, q in rows[:40]:
        print(f"  {t * 1000 / n:7.1f}  {calls / n:9.3f}  {exec_ms * 1000 / calls:12.1f}  "
              f"{plan_ms * 1000 / calls:12.1f}  {wal / calls:10.0f}  {q[:150]}")  # fmt: skip


def harness(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import create_engine, text

    from tests.private_postgres import private_postgres

    trees = {"base": Path(args.base).resolve(), "this": ROOT}
    with private_postgres() as server:
        server.sql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        server.sql("ALTER SYSTEM SET autovacuum = off")
        server.stop()
        server.start()  # the module's settings exist once it is loaded
        for setting in ("track = 'all'", "track_planning = on", "max = 10000"):
            server.sql(f"ALTER SYSTEM SET pg_stat_statements.{setting}")
        server.stop()
        server.start()
        admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:  # read from the database postgres (the trees' are their own)
            conn.execute(text("CREATE EXTENSION pg_stat_statements"))
        setup: dict[str, tuple[str, Path, str]] = {}
        for label, tree in trees.items():
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {label}"))
            url = server.url.rsplit("/", 1)[0] + f"/{label}"
            folder = Path(tempfile.mkdtemp(prefix=f"creditctl-pgcost-{label}-"))
            setup[label] = (url, folder, _in_tree(tree, "prepare", url, str(folder)))
        totals: dict[str, dict[str, Any]] = {
            label: {"n": 0, "stmt_n": 0, "decide": 0.0, "worker": 0.0, "wal": 0, "stats": {}}
            for label in trees
        }
        for r in range(args.rounds):
            for label in trees if r % 2 == 0 else reversed(list(trees)):
                url, folder, key = setup[label]
                own = create_engine(url, isolation_level="AUTOCOMMIT")
                with own.connect() as conn:
                    conn.execute(text("VACUUM (ANALYZE) credit_accounts, decisions, holds, outbox, "
                                      "audit_events, audit_seals"))  # fmt: skip
                own.dispose()
                before = _stats(server)
                lsn0 = server.sql("SELECT pg_current_wal_lsn()::text")
                out = json.loads(_in_tree(trees[label], "drive", url, str(folder), key, str(args.n),
                                          str(r * (args.n + 200)), str(args.worker_every)))  # fmt: skip
                lsn1 = server.sql("SELECT pg_current_wal_lsn()::text")
                wal = int(server.sql(f"SELECT '{lsn1}'::pg_lsn - '{lsn0}'::pg_lsn"))
                after = _stats(server)
                t = totals[label]
                t["n"] += args.n
                t["decide"] += out["decide_ticks"] / out["hz"]
                t["worker"] += out["worker_ticks"] / out["hz"]
                t["wal"] += wal
                t["stmt_n"] += args.n + 200
                for q, v in _delta(before, after, label).items():
                    t["stats"][q] = [a + b for a, b in zip(t["stats"].get(q, (0,) * 4), v, strict=True)]
                ms = {k: 1e3 * out[f"{k}_ticks"] / out["hz"] / args.n for k in ("decide", "worker")}
                print(f"round {r + 1} {label}: backends {ms['decide']:.3f} ms/decision + worker "
                      f"{ms['worker']:.3f} ms/decision, "
                      f"WAL {wal / args.n:.0f} B/decision, wall {out['wall_s']:.1f} s, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        for label, t in totals.items():
            n = t["n"]
            print(f"\n== {label} ({trees[label]}): {n} decisions: PostgreSQL backends "
                  f"{1e3 * t['decide'] / n:.3f} ms/decision (decisions) + {1e3 * t['worker'] / n:.3f} "
                  f"(worker ticks), WAL {t['wal'] / n:.0f} B/decision")  # fmt: skip
            _report(label, t["stmt_n"], t["stats"])
        admin.dispose()
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "prepare":
        prepare(sys.argv[2], Path(sys.argv[3]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "drive":
        url, folder, key, n, start, every = sys.argv[2:8]
        drive(url, Path(folder), key, int(n), int(start), int(every))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the tree compared with (`git archive main` unpacked)")
    ap.add_argument("-n", type=int, default=2000, help="measured decisions per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per tree, interleaved")
    ap.add_argument("--worker-every", type=int, default=400, help="decisions per worker tick")
    return harness(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
