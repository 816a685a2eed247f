"""What one sealing pass costs as the audit trail grows (PostgreSQL): a pass above the sealer's mark
(every pass now) against a pass over the whole trail (what the worker ran every 5 minutes and
`creditctl expire` every minute before the mark; `audit seal --from-start` now).

    .venv/bin/python bench/seal_pass_cost.py [--sizes 100000,1000000] [--new 500] [--repeat 5]

For each size: a fresh database `bench_seal_<run>`, that many events already sealed (written with SQL,
as tests/adapters/test_audit_sealer_cost.py does, then ANALYZE), the mark at the last one. Then, per
repeat and interleaved: `--new` events committed through the service's own append (5 s of decisions at
100/s is 500), one pass from the mark timed; `--new` more, one pass from the start timed. Both seal the
same number of events; the figures are the medians, wall time of the pass (the database's work is most of
it). The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, create_engine, text

from adapters.sql.audit import SqlAuditLog
from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.audit import Actor
from creditctl.services.audit import seal_audit

BASE = "postgresql+psycopg://postgres@127.0.0.1:5432"
WRITER = Actor(name="bench", role="orders")


def _trail(engine: Engine, size: int) -> None:
    """`size` events, each sealed (placeholder hashes: the pass never reads a sealed event), the mark at
    the last one, and the statistics autovacuum would have taken."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (type, actor, payload) "
                "SELECT 'bench.old', 'bench', '{}' FROM generate_series(1, :n)"
            ),
            {"n": size},
        )
        conn.execute(
            text(
                "INSERT INTO audit_seals (position, seq, prev_hash, hash, sealed_at) "
                "SELECT row_number() OVER (ORDER BY seq), seq, repeat('0', 64), repeat('0', 64), now() "
                "FROM audit_events"
            )
        )
        last = conn.execute(text("SELECT max(seq) FROM audit_events")).scalar_one()
        log = SqlAuditLog(conn)
        log.save_sealer_mark(int(last), log.seal_horizon())
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE audit_events, audit_seals"))


def _write(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        log = SqlAuditLog(conn)
        for i in range(n):
            subject = {"customer_code": f"C{i % 10_000:05d}", "sale_group_code": "SG01", "order_id": f"o{i}"}
            log.append("decision.made", at=datetime.now(UTC), actor=WRITER, subject=subject)


def _timed_pass(engine: Engine, *, full: bool, expect: int) -> float:
    started = time.perf_counter()
    sealed = seal_audit(uow=SqlUnitOfWork(engine), full=full)
    elapsed = (time.perf_counter() - started) * 1000
    if sealed != expect:
        raise RuntimeError(f"a pass (full={full}) sealed {sealed} events, expected {expect}")
    return elapsed


def measure(size: int, new: int, repeat: int) -> dict[str, float]:
    name = f"bench_seal_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{BASE}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = None
    try:
        url = f"{BASE}/{name}"
        upgrade(url)
        engine = make_engine(url)
        started = time.perf_counter()
        _trail(engine, size)
        built = time.perf_counter() - started
        _write(engine, new)
        _timed_pass(engine, full=False, expect=new)  # warm: plans, caches
        mark, full = [], []
        for _ in range(repeat):
            _write(engine, new)
            mark.append(_timed_pass(engine, full=False, expect=new))
            _write(engine, new)
            full.append(_timed_pass(engine, full=True, expect=new))
        return {
            "size": size,
            "built_s": built,
            "mark_ms": statistics.median(mark),
            "full_ms": statistics.median(full),
            "mark_runs": mark,
            "full_runs": full,
        }
    finally:
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="trail sizes, comma-separated")
    ap.add_argument("--new", type=int, default=500, help="events committed before each timed pass")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"{'sealed events':>14} | {'pass above the mark':>20} | {'pass from the start':>20} | ratio")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        r = measure(size, args.new, args.repeat)
        rows.append(r)
        print(
            f"{size:>14,} | {r['mark_ms']:>17.1f} ms | {r['full_ms']:>17.1f} ms | "
            f"{r['full_ms'] / r['mark_ms']:.1f}x",
            flush=True,
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        grew_mark, grew_full = last["mark_ms"] / first["mark_ms"], last["full_ms"] / first["full_ms"]
        print(
            f"from {first['size']:,} to {last['size']:,} sealed events: a pass above the mark "
            f"{grew_mark:.2f}x, a pass from the start {grew_full:.2f}x"
        )
    print(f"({args.new} new events sealed by each pass; medians of {args.repeat}, interleaved)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
