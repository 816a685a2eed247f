"""SQL statements and round trips of one decision, in order, on PostgreSQL: what runs while the account
row is locked. A script, not a test.

    .venv/bin/python bench/count_statements.py [-n 50] [--show 1]

Builds a throwaway instance like bench/bench.py (10,000 accounts, fresh balance snapshots, the day's
credit profile computed, an orders key), creates the service in-process (adapters.bootstrap, the
production app) and drives POST /v1/decisions through Flask's test client, one at a time, on fresh order
ids and distinct accounts (the fresh-snapshot approve path). Every connection of the service's engine is
traced at the protocol level with libpq's PQtrace (psycopg's `pgconn.trace`), so what is counted is what
went over the socket: each message the client sent, and each ReadyForQuery the server answered (one per
round trip outside pipeline mode). Statements are named from their Parse (a prepared statement's later
Binds are mapped back to its text). SQLAlchemy's before_cursor_execute is counted beside it.

Prints, for one decision (--show), the statements in order with the span between the account's
`SELECT ... FOR UPDATE` and `COMMIT` (the row lock) marked and the time each round trip took; then the
counts per decision averaged over -n decisions.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench

# "2026-12-05 12:23:34.217396<TAB>F<TAB>10<TAB>Query<TAB> "BEGIN"": time, direction, length, message, fields
MSG = re.compile(r"^(?P<ts>[^\t]+)\t(?P<dir>[FB])\t(?P<len>\d+)\t(?P<kind>\w+)\t? ?(?P<rest>.*)$")


def parse_trace(text: str) -> list[dict[str, Any]]:
    """libpq trace lines -> round trips: each is the client's messages up to the server's ReadyForQuery."""
    trips: list[dict[str, Any]] = []
    cur: dict[str, Any] = {"sent": [], "recv": [], "start": None}
    names: dict[str, str] = {}
    lines: list[str] = []
    for raw in text.splitlines():  # a statement's newlines continue its message on the next lines
        if MSG.match(raw) or not lines:
            lines.append(raw)
        else:
            lines[-1] += " " + raw.strip()
    for line in lines:
        m = MSG.match(line)
        if not m:
            continue
        kind, rest, ts = m["kind"], m["rest"], m["ts"]
        if m["dir"] == "F":
            if cur["start"] is None:
                cur["start"] = ts
            if kind == "Parse":
                # Parse "name" "query" n ...
                q = re.match(r'^"(?P<name>[^"]*)" "(?P<q>(?:[^"\\]|\\.)*)"', rest)
                if q:
                    names[q["name"]] = q["q"]
                    cur["sent"].append(("Parse", q["q"], q["name"]))
                else:
                    cur["sent"].append(("Parse", rest, ""))
            elif kind == "Bind":
                b = re.match(r'^"(?P<portal>[^"]*)" "(?P<name>[^"]*)"', rest)
                cur["sent"].append(("Bind", names.get(b["name"], "?") if b else "?", b["name"] if b else ""))
            elif kind == "Query":
                q = re.match(r'^"(?P<q>(?:[^"\\]|\\.)*)"', rest)
                cur["sent"].append(("Query", q["q"] if q else rest, ""))
            else:
                cur["sent"].append((kind, "", ""))
        else:
            cur["recv"].append(kind)
            if kind == "ReadyForQuery":
                cur["end"] = ts
                cur["status"] = rest.strip()
                trips.append(cur)
                cur = {"sent": [], "recv": [], "start": None}
    return trips


def statements(trip: dict[str, Any]) -> list[str]:
    """The statements a round trip carried, in order (several when a pipeline batched them)."""
    return [t for k, t, _ in trip["sent"] if k in ("Query", "Bind")]


def _locks(trip: dict[str, Any]) -> bool:
    """The trip carries the SELECT ... FOR UPDATE (alone, or first in a pipeline)."""
    return any("FOR UPDATE" in t.upper() for t in statements(trip))


def ends_with_commit(trip: dict[str, Any]) -> bool:
    sent = statements(trip)
    return bool(sent) and sent[-1].rstrip().upper().endswith("COMMIT")


def describe(trip: dict[str, Any]) -> str:
    """One line for a round trip: the statement it ran and how (simple query, parse+bind, prepared);
    a pipelined trip lists the first words of each statement it carried."""
    sent = statements(trip)
    if len(sent) > 1:
        return f"{'pipeline (' + str(len(sent)) + ' stmts)':<24} " + " + ".join(
            " ".join(t.split()[:3]) for t in sent
        )
    kinds = [k for k, _, _ in trip["sent"]]
    text = next((t for k, t, _ in trip["sent"] if k in ("Parse", "Query")), None)
    if text is None:
        text = next((t for k, t, _ in trip["sent"] if k == "Bind"), "?")
        how = "prepared (Bind/Execute)"
    elif "Query" in kinds:
        how = "simple query"
    else:
        named = any(n for k, _, n in trip["sent"] if k == "Parse")
        how = "Parse (prepare)" if named and "Execute" not in kinds else "Parse/Bind/Execute"
    return f"{how:<24} {text}"


def _dt(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%d %H:%M:%S.%f")


def _ts(ts: str) -> float:
    """libpq's '2026-12-05 12:00:00.123456' -> seconds since midnight."""
    h, m, s = ts.split()[-1].split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def lock_span(trips: list[dict[str, Any]]) -> float:
    """ms from sending SELECT ... FOR UPDATE to the COMMIT's answer (0 if there is none)."""
    start = next((_ts(t["start"]) for t in trips if _locks(t)), None)
    end = next((_ts(t["end"]) for t in trips if ends_with_commit(t)), None)
    return 0.0 if start is None or end is None else (end - start) * 1000


def report(per_decision: list[list[dict[str, Any]]], sa_counts: list[int], show: int, full: bool) -> None:
    for d, trips in enumerate(per_decision[:show]):
        print(f"decision {d + 1}: {len(trips)} round trips (SQLAlchemy executes: {sa_counts[d]})")
        locked, prev_end, lock_start = False, None, None
        print("     L  before   trip  statement (before: this process's time since the last answer)")
        for j, t in enumerate(trips, 1):
            line = " ".join(describe(t).split())
            if _locks(t):
                locked, lock_start = True, _ts(t["start"])
            ms = (_ts(t["end"]) - _ts(t["start"] or t["end"])) * 1000
            gap = "" if prev_end is None else f"{(_ts(t['start']) - prev_end) * 1000:6.2f}"
            mark = "L" if locked else " "
            print(f"  {j:>2} {mark} {gap:>6} {ms:6.2f} ms  {line[:200]}")
            if locked and ends_with_commit(t):
                locked = False
                held = (_ts(t["end"]) - lock_start) * 1000
                print(f"     row lock held {held:.2f} ms (FOR UPDATE sent -> COMMIT answered)")
            prev_end = _ts(t["end"])
        print("  (L = while the account row is locked: from SELECT ... FOR UPDATE to COMMIT)")
        if full:
            for t in trips:
                print("    " + " ".join(describe(t).split()))
    n = len(per_decision)
    trips_total = sum(len(t) for t in per_decision)
    statements = sum(
        sum(1 for k, _, _ in (m for t in trips for m in t["sent"]) if k in ("Execute", "Query"))
        for trips in per_decision
    )
    spans = sorted(lock_span(trips) for trips in per_decision)
    commits = sorted(
        (_ts(t["end"]) - _ts(t["start"])) * 1000
        for trips in per_decision
        for t in trips
        if ends_with_commit(t)
    )
    if spans and commits:
        print(
            f"\nrow lock held (FOR UPDATE sent -> COMMIT answered), {n} decisions: median "
            f"{spans[len(spans) // 2]:.2f} ms, p90 {spans[int(len(spans) * 0.9)]:.2f} ms; of which the "
            f"COMMIT round trip median {commits[len(commits) // 2]:.2f} ms (synchronous_commit: WAL flush)"
        )
    print(
        f"\nover {n} decisions: {trips_total / n:.2f} round trips, {statements / n:.2f} statements "
        f"(Execute or simple Query messages), {sum(sa_counts) / n:.2f} SQLAlchemy cursor executes "
        "per decision"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=50, help="decisions counted (after 200 warm-up decisions)")
    ap.add_argument("--show", type=int, default=1, help="decisions listed statement by statement")
    ap.add_argument("--full", action="store_true", help="print the listed decisions' statements in full")
    args = ap.parse_args()
    run = uuid.uuid4().hex[:8]
    inst = bench.Instance("postgres", f"count{run}", 1)
    trace_dir = Path(tempfile.mkdtemp(prefix="creditctl-pqtrace-"))
    bench.CLEANUP.dirs.append(trace_dir)
    try:
        inst.prepare()
        os.environ.update({k: v for k, v in inst.env.items() if k.startswith("CREDITCTL_")})
        from sqlalchemy import event

        import adapters.bootstrap as composition

        settings = composition.load_settings()
        engine = composition.engine_for(settings.database_url, settings.threads)
        files: list[Any] = []

        @event.listens_for(engine, "connect")
        def _trace(dbapi_conn: Any, _record: Any) -> None:
            fh = open(trace_dir / f"conn-{len(files)}.trace", "w")  # noqa: SIM115 (open while traced)
            files.append(fh)
            dbapi_conn.pgconn.trace(fh.fileno())

        sa_statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *a, **k: sa_statements.append(a[2]))
        app = composition.create_wsgi_app(refresh_rule_sets=False)  # the decisions' statements only
        client = app.test_client()
        headers = {"Authorization": f"Bearer {inst.key}"}

        def decide(i: int, tag: str) -> None:
            body = {"order_id": f"{run}{tag}-{i}", "customer_code": inst.code(1 + (i * 7919) % 10_000),
                    "sale_group_code": bench.SALE_GROUP, "amount": f"{1 + i % 99}.{i % 100:02d}"}  # fmt: skip
            r = client.post("/v1/decisions", json=body, headers=headers)
            if r.status_code != 201:
                raise RuntimeError(f"{r.status_code} {r.get_data(as_text=True)[:300]}")

        for i in range(200):  # warm-up: psycopg prepares a statement after 5 executions
            decide(i, "w")

        # libpq buffers its trace (the server's answers reach the file at the next send), so the files are
        # read whole at the end and round trips are given to decisions by time: the trace's timestamps
        # are this machine's local clock, as datetime.now() is.
        windows: list[tuple[datetime, datetime]] = []
        sa_counts: list[int] = []
        for i in range(args.n):
            sa_before, t0 = len(sa_statements), datetime.now()
            decide(10_000 + i, "m")
            windows.append((t0, datetime.now()))
            sa_counts.append(len(sa_statements) - sa_before)
        for fh in files:
            fh.flush()
        engine.dispose()  # closes the connections: libpq flushes what it buffered
        trips = [t for fh in files for t in parse_trace(Path(fh.name).read_text())]
        per_decision = [
            sorted((t for t in trips if t["start"] and t0 <= _dt(t["start"]) <= t1), key=lambda t: t["start"])
            for t0, t1 in windows
        ]
        report(per_decision, sa_counts, args.show, args.full)
        for fh in files:
            fh.close()
    finally:
        inst.close()
        bench.CLEANUP.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
