"""Backtest throughput and memory: N stored decisions replayed under a tightened default rule set.

Run: .venv/bin/python bench/backtest_bench.py [--db sqlite|postgres|both] [--n 1000000 --n 100000]
     [--profile]

For each database and N: a throwaway database (a SQLite file in a temp folder, or a PostgreSQL
database `bench_backtest_<pid>` on 127.0.0.1:5432, dropped after) is migrated and N decisions are
written straight in SQL (executemany on SQLite, COPY on PostgreSQL) over 10,000 accounts and 30
days: realistic facts (balances, exposure, grades, ages, some stale balances, 1 % frozen accounts,
order amounts from 50.00 to 800,000.00), each with the outcome the default rule set gives it. Then a
fresh process (so its peak RSS is the backtest's alone) runs the backtest of the default rule set
with single_order_review_amount tightened from 500,000.00 to 100,000.00 through the service and the
SQL adapters, as `creditctl rules backtest` does, and prints decisions/s, wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from adapters.sql.backtests import SqlBacktestStore
from adapters.sql.decision_history import SqlDecisionHistory
from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade
from creditctl.domain.backtest import guard
from creditctl.services.backtest import RunBacktest, run_backtest
from rules import default_rule_set_document, parse_rule_set

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ACCOUNTS = 10_000
START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30
COLUMNS = [
    "id",
    "order_id",
    "account_id",
    "customer_code",
    "sale_group_code",
    "amount_fen",
    "fingerprint",
    "outcome",
    "state",
    "reasons",
    "actions",
    "facts",
    "balance_fen",
    "exposure_fen",
    "available_fen",
    "credit_limit_fen",
    "credit_grade",
    "rule_set_id",
    "rule_set_version",
    "decided_at",
    "rechecks",
]


def tightened() -> Any:
    document = default_rule_set_document()
    document["params"] = {**document.get("params", {}), "single_order_review_amount": "100000.00"}
    return parse_rule_set(document)


def _money(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}" if fen >= 0 else "-" + _money(-fen)


def _accounts(rng: random.Random) -> list[tuple[int, str, str, int, str, str]]:
    """(id, customer, group, balance_fen, grade, status) for every account."""
    grades = "AAABBCD"
    return [
        (
            i + 1,
            f"88{i // 2:08d}",
            ("GA10", "GB20")[i % 2],
            rng.choice((0, rng.randrange(1, 5_000_000_00)))
            if rng.random() < 0.02
            else rng.randrange(1, 5_000_000_00),
            rng.choice(grades),
            "frozen" if rng.random() < 0.01 else "active",
        )
        for i in range(ACCOUNTS)
    ]


def decisions(n: int, seed: int = 7) -> Any:
    """N decision rows (dicts of COLUMNS), with the outcome the default rule set gives their facts."""
    rng = random.Random(seed)
    accounts = _accounts(rng)
    default = parse_rule_set(default_rule_set_document())

    step = DAYS * 86400 / n
    for i in range(n):
        account_id, customer, group, balance, grade, status = accounts[rng.randrange(ACCOUNTS)]
        amount = int(rng.lognormvariate(9.0, 1.3)) * 100 + rng.randrange(100)
        amount = max(5000, min(amount, 80_000_000))
        exposure = rng.randrange(0, max(1, balance // 4)) if balance else 0
        age = rng.randrange(0, 2400) if rng.random() < 0.05 else rng.randrange(0, 300)
        stale = age > 1800
        facts: dict[str, Any] = {
            "order.amount": _money(amount),
            "order.sale_group": group,
            "order.channel": "erp",
            "balance.amount": None if stale else _money(balance),
            "balance.age_s": age,
            "exposure": _money(exposure),
            "available": None if stale else _money(balance - exposure),
            "credit.limit": "0.00",
            "credit.grade": grade,
            "payment.max_overdue_days": 0 if rng.random() < 0.98 else rng.randrange(1, 120),
            "payment.on_time_ratio": "1",
            "payment.overdue_amount": "0.00",
            "account.status": status,
            "account.age_days": rng.randrange(30, 2000),
            "now.hour": (i * 24 // n) % 24,
        }
        decoded = {k: (Decimal(v) if isinstance(v, str) and v[:1].isdigit() else v) for k, v in facts.items()}
        decoded["payment.on_time_ratio"] = Decimal(1)
        outcome, _ = guard(default.evaluate(decoded).outcome, decoded, decoded["order.amount"])
        decided = START + timedelta(seconds=i * step)
        yield {
            "id": str(uuid.UUID(int=rng.getrandbits(128))),
            "order_id": f"PO-{i:08d}",
            "account_id": account_id,
            "customer_code": customer,
            "sale_group_code": group,
            "amount_fen": amount,
            "fingerprint": "0" * 64,
            "outcome": outcome.value,
            "state": "deferred" if outcome.value == "defer" else "decided",
            "reasons": "[]",
            "actions": "[]",
            "facts": json.dumps(facts, separators=(",", ":"), sort_keys=True),
            "balance_fen": balance,
            "exposure_fen": exposure,
            "available_fen": None if stale else balance - exposure,
            "credit_limit_fen": 0,
            "credit_grade": grade,
            "rule_set_id": 1,
            "rule_set_version": 1,
            "decided_at": decided,
            "rechecks": 0,
        }


def load(url: str, n: int) -> float:
    """Migrate and fill the database; returns the seconds it took."""
    began = time.perf_counter()
    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(7)
    accounts = _accounts(rng)
    now = START
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO customers (code, name, created_at) VALUES (:c, '', :t)"),
            [{"c": c, "t": now} for c in sorted({a[1] for a in accounts})],
        )
        conn.execute(
            text(
                "INSERT INTO credit_accounts (id, customer_code, sale_group_code, sale_group_name, "
                "payer_account_code, payer_account_name, status, exposure_fen, created_at, updated_at) "
                "VALUES (:id, :c, :g, '', '', '', :s, 0, :t, :t)"
            ),
            [{"id": a[0], "c": a[1], "g": a[2], "s": a[5], "t": now} for a in accounts],
        )
    if engine.dialect.name == "sqlite":
        _load_sqlite(engine, n)
    else:
        _load_postgres(engine, n)
    engine.dispose()
    return time.perf_counter() - began


def _load_sqlite(engine: Any, n: int) -> None:
    raw = engine.raw_connection()
    cur = raw.cursor()
    cur.execute("BEGIN")
    sql = f"INSERT INTO decisions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    batch: list[tuple[Any, ...]] = []
    for row in decisions(n):
        row["decided_at"] = row["decided_at"].replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        batch.append(tuple(row[c] for c in COLUMNS))
        if len(batch) == 50_000:
            cur.executemany(sql, batch)
            batch.clear()
    cur.executemany(sql, batch)
    cur.execute("COMMIT")
    cur.execute("ANALYZE")
    raw.close()


def _load_postgres(engine: Any, n: int) -> None:
    raw = engine.raw_connection()
    cur = raw.cursor()
    with cur.copy(f"COPY decisions ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for row in decisions(n):
            copy.write_row(tuple(row[c] for c in COLUMNS))
    raw.commit()
    raw.driver_connection.autocommit = True
    raw.driver_connection.execute("VACUUM ANALYZE decisions")
    raw.close()


def replay(url: str, profile: bool) -> dict[str, Any]:
    """The measured part, in its own process: the backtest through the service and SQL adapters."""
    engine = make_engine(url)
    cmd = RunBacktest(
        rule_set=tightened(), start=START, end=START + timedelta(days=DAYS), requested_by="bench"
    )
    deps = {"history": SqlDecisionHistory(engine), "store": SqlBacktestStore(engine)}
    profiler = cProfile.Profile() if profile else None
    began = time.perf_counter()
    if profiler:
        profiler.enable()
    run = run_backtest(cmd, **deps)
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - began
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue(), file=sys.stderr)
    return {
        "decisions": run.decisions,
        "changed": run.changed,
        "wall_s": round(wall, 2),
        "decisions_per_s": round(run.decisions / wall),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "before": run.before.counts,
        "after": run.after.counts,
    }


def measure(db: str, n: int, profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        if db == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
            return _measure(url, db, n, profile)
        name = f"bench_backtest_{os.getpid()}"
        admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            conn.execute(text(f"CREATE DATABASE {name}"))
        try:
            return _measure(PG_ADMIN.rsplit("/", 1)[0] + "/" + name, db, n, profile)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            admin.dispose()


def _measure(url: str, db: str, n: int, profile: bool) -> dict[str, Any]:
    loaded = load(url, n)
    argv = [sys.executable, __file__, "--replay", url] + (["--profile"] if profile else [])
    child = subprocess.run(argv, check=True, capture_output=True, text=True)
    if profile:
        print(child.stderr, file=sys.stderr)
    return {"db": db, "n": n, "load_s": round(loaded, 1), **json.loads(child.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--n", type=int, action="append", help="decisions (repeatable); default 1e6 and 1e5")
    parser.add_argument("--profile", action="store_true", help="cProfile the replay (slower; not a figure)")
    parser.add_argument("--replay", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay:
        print(json.dumps(replay(args.replay, args.profile)))
        return
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        for n in args.n or [1_000_000, 100_000]:
            result = measure(db, n, args.profile)
            print(
                f"{db:8} N={n:>9,}  {result['decisions_per_s']:>8,} decisions/s  "
                f"wall {result['wall_s']:6.2f} s  peak RSS {result['peak_rss_mb']:6.1f} MB  "
                f"changed {result['changed']:,}  (load {result['load_s']} s)"
            )
            print(f"         before {result['before']}  after {result['after']}", flush=True)


if __name__ == "__main__":
    main()
