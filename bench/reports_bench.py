"""Report timings over N stored decisions on PostgreSQL.

Run: .venv/bin/python bench/reports_bench.py [--n 1000000]

A throwaway database (PostgreSQL `bench_reports_<pid>` on 127.0.0.1:5432, dropped after) is migrated,
then filled in SQL: 10,000 accounts, N decisions over 30 days (one INSERT ... SELECT FROM
generate_series) with outcomes about
70/15/12/3 % approve/defer/block/freeze, their reasons as stored JSON, a hold per approval, 5 % of
deferrals still open, and 50,000 upstream calls. Then each report runs through the service and the
SQL adapter, as `GET /v1/reports/...` does, over the whole 30 days (Asia/Shanghai days), and the
wall time of each and its headline figures are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from adapters.fake.clock import FakeClock
from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade
from adapters.sql.reports import SqlReportQueries
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.services.reports_decisions import ReportRequest, decisions_report
from creditctl.services.reports_exposure import exposure_report
from creditctl.services.reports_upstream import upstream_report

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ACCOUNTS = 10_000
START = datetime(2026, 10, 1, tzinfo=UTC)
NOW = datetime(2026, 10, 31, tzinfo=UTC)

# Shared by both dialects: an outcome and its reasons from a number r in [0, 1000).
OUTCOME = (
    "CASE WHEN r < 700 THEN 'approve' WHEN r < 850 THEN 'defer' WHEN r < 970 THEN 'block' ELSE 'freeze' END"
)
REASONS = (
    "CASE WHEN r < 650 THEN '[]' "
    'WHEN r < 700 THEN \'[{"message":"m","reason":"BALANCE_LOW","rule":"low"}]\' '
    'WHEN r < 800 THEN \'[{"message":"m","reason":"INSUFFICIENT_BALANCE","rule":"short"}]\' '
    'WHEN r < 850 THEN \'[{"message":"m","reason":"MANUAL_REVIEW","rule":"large"}]\' '
    'WHEN r < 950 THEN \'[{"message":"m","reason":"CREDIT_LIMIT_EXCEEDED","rule":"over_limit"}]\' '
    'WHEN r < 970 THEN \'[{"message":"m","reason":"ACCOUNT_FROZEN","rule":"frozen"}]\' '
    'ELSE \'[{"message":"m","reason":"BALANCE_DEPLETED","rule":"depleted"}]\' END'
)


def load_postgres(url: str, n: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (code, name, created_at) "
                "SELECT '88' || lpad(i::text, 8, '0'), '', :t FROM generate_series(0, :a / 2 - 1) i"
            ),
            {"t": START, "a": ACCOUNTS},
        )
        conn.execute(
            text(
                "INSERT INTO credit_accounts (id, customer_code, sale_group_code, sale_group_name, "
                "payer_account_code, payer_account_name, status, exposure_fen, balance_fen, "
                "balance_fetched_at, balance_source, created_at, updated_at) "
                "SELECT i + 1, '88' || lpad((i / 2)::text, 8, '0'),"
                " CASE WHEN i % 2 = 0 THEN 'GA10' ELSE 'GB20' END,"
                " '', '', '', 'active', 0, 100000000 + (i * 7919) % 400000000, :now, 'fake', :t, :t "
                "FROM generate_series(0, :a - 1) i"
            ),
            {"t": START, "now": NOW, "a": ACCOUNTS},
        )
        conn.execute(
            text(
                "INSERT INTO decisions (id, order_id, account_id, customer_code, sale_group_code, amount_fen,"
                " fingerprint, outcome, state, reasons, actions, facts, exposure_fen, credit_limit_fen,"
                " credit_grade, rule_set_id, rule_set_version, decided_at, deferral_expires_at, rechecks) "
                "SELECT md5(i::text), 'PO-' || i, a + 1, '88' || lpad((a / 2)::text, 8, '0'),"
                " CASE WHEN a % 2 = 0 THEN 'GA10' ELSE 'GB20' END, 5000 + (i * 104729) % 80000000,"
                f" repeat('0', 64), {OUTCOME},"
                " CASE WHEN r >= 700 AND r < 850 AND i % 20 = 0 THEN 'deferred' ELSE 'decided' END,"
                f" {REASONS}, '[]', '{{}}', 0, 0, 'A', 1, 1, t,"
                " CASE WHEN r >= 700 AND r < 850 AND i % 20 = 0 THEN t + interval '3 days' END, 0 "
                "FROM (SELECT i, (i * 7) % :a AS a, (i * 7919) % 1000 AS r,"
                " :start + (i * (30 * 86400.0 / :n)) * interval '1 second' AS t"
                " FROM generate_series(0::bigint, :n - 1) i) s"
            ),
            {"a": ACCOUNTS, "n": n, "start": START},
        )
        conn.execute(
            text(
                "INSERT INTO holds (id, account_id, decision_id, order_id, amount_fen, status, counting,"
                " created_at, expires_at) "
                "SELECT substr(id, 1, 32), account_id, id, order_id, amount_fen,"
                " CASE WHEN decided_at > :now - interval '7 days' THEN 'open' ELSE 'settled' END,"
                " decided_at > :now - interval '8 days', decided_at, decided_at + interval '7 days' "
                "FROM decisions WHERE outcome = 'approve'"
            ),
            {"now": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO upstream_calls (called_at, operation, config, customer_code, status, latency_ms,"
                " attempt, error_code) "
                "SELECT :start + (i * 51.84) * interval '1 second', CASE WHEN i % 50 = 0 THEN 'token' ELSE"
                " 'balance' END, 'main', '88' || lpad((i % 5000)::text, 8, '0'),"
                " CASE WHEN i % 40 = 0 THEN 503 ELSE 200 END, 20 + (i * 37) % 400, 1 + (i % 30 = 0)::int,"
                " CASE WHEN i % 40 = 0 THEN 'SERVICE_UNAVAILABLE' END"
                " FROM generate_series(0::bigint, 49999) i"
            ),
            {"start": START},
        )
        conn.execute(text("ANALYZE"))
    engine.dispose()


def run_reports(url: str) -> None:
    engine = make_engine(url)
    reports = SqlReportQueries(engine)
    clock = FakeClock(NOW)
    req = ReportRequest(date(2026, 10, 1), date(2026, 10, 31), "Asia/Shanghai")
    began = time.perf_counter()
    d = decisions_report(req, reports=reports, clock=clock)
    took = time.perf_counter() - began
    print(
        f"  decisions report: {took:6.2f} s  decisions={d.total.decisions:,}"
        f" approval_rate={d.total.approval_rate}"
        f" approved={d.money['approved']} days={len(d.by_day)} accounts={len(d.by_account)}"
        f" top block={d.top_reasons['block'][:1]}"
    )
    began = time.perf_counter()
    uow = SqlUnitOfWork(engine, database_clock=clock)
    e = exposure_report(None, within_hours=24, reports=reports, uow=uow)
    took = time.perf_counter() - began
    print(
        f"  exposure report:  {took:6.2f} s  accounts={len(e.accounts):,} exposure={e.total_exposure}"
        f" expiring={e.expiring_count:,} deferred={[b.count for b in e.deferred_by_age]}"
    )
    began = time.perf_counter()
    u = upstream_report(req, reports=reports, clock=clock)
    took = time.perf_counter() - began
    print(
        f"  upstream report:  {took:6.2f} s  calls={u.total.calls:,} success_rate={u.total.success_rate}"
        f" p95={u.total.p95_latency_ms} ms retry_rate={u.total.retry_rate} errors={u.total.errors}"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    args = parser.parse_args()
    name = f"bench_reports_{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url)
        began = time.perf_counter()
        load_postgres(url, args.n)
        print(f"PostgreSQL, {args.n:,} decisions (loaded in {time.perf_counter() - began:.1f} s):")
        run_reports(url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
