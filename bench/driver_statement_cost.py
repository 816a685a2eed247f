"""CPU of one INSERT of a hold, three ways: SQLAlchemy Core's execute, exec_driver_sql, psycopg's cursor.

    .venv/bin/python bench/driver_statement_cost.py [-n 2000] [--url postgresql+psycopg://...]

Why the decision's statements run on the driver's cursor (adapters/sql/driver_statements.py): the
statement's own work (binding, the round trip's syscalls) is the driver's; the rest is SQLAlchemy's
per-execution machinery. Runs in a temporary table, in one transaction that is rolled back; prints CPU
microseconds per statement (process time, so the machine's other load counts less than in wall time).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, insert, text

from adapters.sql.engine import make_engine
from adapters.sql.tables import holds

COLUMNS = [c.name for c in holds.c]
TEMP_TABLE = (
    "CREATE TEMP TABLE bench_holds (id varchar PRIMARY KEY, account_id int, decision_id varchar, "
    "order_id varchar, amount_fen bigint, status varchar, counting bool, created_at timestamptz, "
    "expires_at timestamptz, ended_at timestamptz, settled_fen bigint)"
)
RAW_SQL = f"INSERT INTO bench_holds ({', '.join(COLUMNS)}) VALUES ({', '.join(f'%({c})s' for c in COLUMNS)})"


def _params() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": uuid.uuid4().hex, "account_id": 1, "decision_id": "d", "order_id": "o", "amount_fen": 100,
        "status": "open", "counting": True, "created_at": now, "expires_at": now, "ended_at": None,
        "settled_fen": 0,
    }  # fmt: skip


def _cpu_us(n: int, run: Callable[[dict[str, Any]], Any]) -> float:
    batch = [_params() for _ in range(n)]
    for p in batch[: n // 10]:  # warm-up: psycopg prepares a statement after 5 executions
        run(p)
    rest = batch[n // 10 :]
    start = time.process_time()
    for p in rest:
        run(p)
    return (time.process_time() - start) / len(rest) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    engine = make_engine(args.url)
    table = Table("bench_holds", MetaData(), *[Column(c.name, c.type) for c in holds.c])
    with engine.connect() as conn:
        conn.execute(text(TEMP_TABLE))
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        results = {
            "SQLAlchemy Core execute": _cpu_us(args.n, lambda p: Connection.execute(conn, insert(table), p)),
            "exec_driver_sql": _cpu_us(args.n, lambda p: conn.exec_driver_sql(RAW_SQL, p)),
            "psycopg cursor": _cpu_us(args.n, lambda p: cursor.execute(RAW_SQL, p)),
        }
        conn.rollback()
    engine.dispose()
    for name, us in results.items():
        print(f"{name:<24} {us:7.1f} us CPU per INSERT")


if __name__ == "__main__":
    main()
