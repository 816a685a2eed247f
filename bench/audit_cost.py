"""The audit trail's cost per decision, measured in one run: the same process, the same database, rounds
with the audit insert on and off interleaved (off = SqlAuditLog.append patched to do nothing here only;
the service has no switch to turn the audit off).

    .venv/bin/python bench/audit_cost.py [--db postgres|sqlite] [-n 1000] [--rounds 3] [--threads 32]

Builds a throwaway instance like bench/bench.py (10,000 accounts, orders key). Per round and mode: one
client, n sequential decisions (wall mean, p50, CPU of this process and of PostgreSQL per decision, SQL
statements per decision); then --threads clients at once on distinct accounts (decisions/s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from profile_decide import _drive, _measure

import bench


def _throughput(app: Any, key: str, threads: int, per_thread: int, run: str) -> float:
    def worker(t: int) -> None:
        client = app.test_client()
        _drive_offset(client, key, per_thread, f"{run}-{t}", t)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for p in pool:
        p.start()
    for p in pool:
        p.join()
    return threads * per_thread / (time.perf_counter() - started)


def _drive_offset(client: Any, key: str, n: int, run: str, t: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    for i in range(n):
        body = {
            "order_id": f"{run}-{i}",
            "customer_code": bench.Instance.code(1 + (t * 300 + i) % bench.TOTAL_ACCOUNTS),
            "sale_group_code": bench.SALE_GROUP,
            "amount": "1.00",
        }
        r = client.post("/v1/decisions", json=body, headers=headers)
        if r.status_code != 201:
            raise RuntimeError(f"{r.status_code} {r.get_data(as_text=True)[:200]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=32)
    args = ap.parse_args()
    run = uuid.uuid4().hex[:8]
    inst = bench.Instance(args.db, f"audit{run}", 1)
    try:
        inst.prepare()
        os.environ.update({k: v for k, v in inst.env.items() if k.startswith("CREDITCTL_")})
        from sqlalchemy import event

        import adapters.bootstrap as composition
        from adapters.sql.audit import SqlAuditLog

        app = composition.create_wsgi_app()
        engine = composition._ENGINES[inst.url]
        sql = [0]
        event.listen(engine, "before_cursor_execute", lambda *a, **k: sql.__setitem__(0, sql[0] + 1))
        real_append = SqlAuditLog.append
        client = app.test_client()
        _drive(client, inst.key, 200, f"{run}w")
        pg_db = getattr(inst, "pg_name", "")
        results: dict[str, dict[str, list[float]]] = {m: {} for m in ("on", "off")}
        for r in range(args.rounds):
            for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
                SqlAuditLog.append = real_append if mode == "on" else (lambda *a, **k: None)  # type: ignore[method-assign]
                sql[0] = 0
                times, cpu, pg = _measure(client, inst.key, args.n, f"{run}{mode}{r}", pg_db)
                res = results[mode]
                res.setdefault("wall_ms", []).append(1000 * statistics.fmean(times))
                res.setdefault("p50_ms", []).append(1000 * statistics.median(times))
                res.setdefault("cpu_ms", []).append(cpu)
                res.setdefault("pg_ms", []).append(pg)
                res.setdefault("sql", []).append(sql[0] / args.n)
                res.setdefault("tput", []).append(
                    _throughput(
                        app, inst.key, args.threads, max(20, args.n // args.threads), f"{run}{mode}t{r}"
                    )
                )
        SqlAuditLog.append = real_append  # type: ignore[method-assign]
        print(f"{args.db}, 10,000 accounts, {args.rounds} interleaved rounds, medians:")
        for mode in ("on", "off"):
            m = {k: statistics.median(v) for k, v in results[mode].items()}
            print(
                f"  audit {mode:<3}: one client wall {m['wall_ms']:.2f} ms (p50 {m['p50_ms']:.2f}), "
                f"CPU/decision this process {m['cpu_ms']:.2f} ms + PostgreSQL {m['pg_ms']:.2f} ms, "
                f"SQL/decision {m['sql']:.1f} | {args.threads} threads: {m['tput']:.0f} decisions/s"
            )
        on, off = ({k: statistics.median(v) for k, v in results[m].items()} for m in ("on", "off"))
        print(
            f"  audit on / off: wall {on['wall_ms'] / off['wall_ms']:.3f}x, "
            f"{args.threads}-thread throughput {on['tput'] / off['tput']:.3f}x"
        )
        return 0
    finally:
        bench.CLEANUP.run()


if __name__ == "__main__":
    raise SystemExit(main())
