"""Where a decision's CPU goes, in buckets: a py-spy recording (raw, collapsed stacks) of serving workers,
its on-CPU samples sorted into layers, scaled to a measured CPU time per decision. A script, not a test.

    .venv/bin/python bench/cpu_split.py RECORDING.txt --cpu-ms-per-decision 3.8 [--bucket-us 100]

RECORDING is `py-spy record --gil --format raw` of one or more gunicorn workers of `creditctl serve`
(--gil: only the thread holding the GIL is sampled, i.e. Python's CPU; without it py-spy also counts
threads waiting for the GIL, most of gthread's 8 per worker). Samples whose leaf is a thread blocked
on a socket or waiting for work (psycopg waiting for PostgreSQL, the selector of the worker's main
loop, a thread waiting on its queue) are left out: the rest is CPU. Each CPU sample goes to one bucket:

  logging      a frame of logging/ or pythonjsonlogger anywhere on the stack (the access line, its JSON)
  metrics      a frame of prometheus_client anywhere on the stack
  otherwise the innermost frame that belongs to one of these decides:
  rules        rules/ (evaluation, trace, messages)
  auth         adapters/web/auth.py (the key's hash, the cache, the role check)
  audit        the audit trail's payload building (adapters/sql/audit.py, creditctl/services/audit.py,
               creditctl/domain/audit*.py), and JSON encoding called from it (the INSERT is SQL)
  psycopg      psycopg/ (encoding parameters, reading results, the protocol)
  SQLAlchemy   sqlalchemy/ (compile cache, parameter processing, type decorators, rows, pool, ORM)
  JSON         json/ (request and answer bodies, JSON columns)
  web          flask/, werkzeug/, flask_smorest/, webargs/, marshmallow/ (routing, parsing, schemas)
  gunicorn     gunicorn/ and adapters/web/gunicorn_*.py (HTTP parsing, the main loop, writing)
  web (ours)   the rest of adapters/web/ (request hooks, views, the decision's wire form; counted in
               "service" before 2026-12-05's web-cpu branch)
  wire         adapters/sql/pipeline.py and driver_statements.py: the statements' parameters dumped,
               libpq's calls that queue, send and read them (C calls holding the GIL are counted to the
               Python frame that made them); counted in "service" before 2026-12-06
  SQL mapping  the rest of adapters/sql/ (rows to domain objects and back, the unit of work, the queue)
  service      creditctl/ and the rest of adapters/ (decision, assessment, hold, money, outcome)
  other        everything else (stdlib: uuid, decimal, datetime, threading ...)

The shares are printed, and each share times --cpu-ms-per-decision (the workers' CPU per decision,
measured from /proc by bench.py in the same run) gives µs per decision, rounded to --bucket-us.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

# A leaf in one of these is a thread that waits (on PostgreSQL, a client, or for work), not CPU.
WAIT_LEAVES = (
    "wait (psycopg/",
    "wait_c (psycopg",
    "_send_query_prepared (psycopg/",
    "_execute_send (psycopg/",
    "_exec_command (psycopg/",
    "select (selectors.py",
    "poll (selectors.py",
    "wait (threading.py",
    "_wait_for_tstate_lock (threading.py",
    "get (queue.py",
    "_worker (concurrent/futures/thread.py",
    "recv (",
    "accept (",
    "sleep (",
)
LAYERS = [
    ("psycopg", ("psycopg/", "psycopg_binary/", "psycopg_c/")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("JSON", ("json/",)),  # py-spy writes the standard library's frames as "json/encoder.py"
    ("web", ("flask/", "werkzeug/", "flask_smorest/", "webargs/", "marshmallow/")),
    ("gunicorn", ("gunicorn/",)),
]
AUDIT = ("adapters/sql/audit.py", "creditctl/services/audit.py", "creditctl/domain/audit")  # audit*.py too


def _path(frame: str) -> str:
    m = re.match(r"^.*\((.*?)(?::\d+)?\)$", frame)
    return m.group(1) if m else frame


def _ours(path: str) -> str | None:
    """Which of our buckets a frame of our own code belongs to, or None for library code."""
    if "/rules/" in path or path.startswith("rules/"):
        return "rules"
    if "adapters/web/auth.py" in path:
        return "auth"
    if any(a in path for a in AUDIT):
        return "audit"
    if "adapters/web/gunicorn_" in path:  # gunicorn_worker.py, gunicorn_logger.py
        return "gunicorn"
    if "adapters/web/" in path:
        return "web (ours)"
    if "adapters/sql/pipeline.py" in path or "adapters/sql/driver_statements.py" in path:
        return "wire"
    if "adapters/sql/" in path:
        return "SQL mapping"
    if "/creditctl/" in path or "/adapters/" in path or path.startswith(("creditctl/", "adapters/")):
        return "service"
    return None


def classify(frames: list[str]) -> str:
    """frames root first, leaf last. Logging and metrics claim every sample under them; otherwise the
    innermost frame that belongs to a layer decides, except that JSON work counts as audit when the
    nearest frame of our own code above it is the audit trail's (its canonical payload)."""
    paths = [_path(f) for f in frames]
    if any(p.startswith("logging/") or "/logging/" in p or "pythonjsonlogger/" in p for p in paths):
        return "logging"
    if any("prometheus_client/" in p for p in paths):
        return "metrics"
    for i in range(len(paths) - 1, -1, -1):
        ours = _ours(paths[i])
        if ours is not None:
            return ours
        layer = next((name for name, parts in LAYERS if any(p in paths[i] for p in parts)), None)
        if layer == "JSON":
            owner = next((o for p in reversed(paths[:i]) if (o := _ours(p)) is not None), None)
            return "audit" if owner == "audit" else "JSON"
        if layer is not None:
            return layer
    return "other"


def split(raw: Path) -> tuple[collections.Counter[str], int, int]:
    counts: collections.Counter[str] = collections.Counter()
    total = waiting = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        total += int(n)
        if frames[-1].startswith(WAIT_LEAVES) or any(w in frames[-1] for w in WAIT_LEAVES):
            waiting += int(n)
            continue
        counts[classify(frames)] += int(n)
    return counts, total, waiting


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recording", type=Path)
    ap.add_argument("--cpu-ms-per-decision", type=float, required=True)
    ap.add_argument("--bucket-us", type=int, default=100)
    args = ap.parse_args()
    counts, total, waiting = split(args.recording)
    busy = sum(counts.values())
    if not busy:
        print("no CPU samples")
        return 1
    per = args.cpu_ms_per_decision * 1000
    print(
        f"{args.recording}: {total} samples, {waiting} waiting (left out), {busy} on CPU; "
        f"scaled to {args.cpu_ms_per_decision:.2f} ms of worker CPU per decision"
    )
    print(f"  {'bucket':<11} {'share':>6} {'µs/decision':>12} {'~' + str(args.bucket_us) + ' µs':>8}")
    for name in sorted(counts, key=lambda k: -counts[k]):
        us = per * counts[name] / busy
        rounded = args.bucket_us * round(us / args.bucket_us)
        print(f"  {name:<11} {100 * counts[name] / busy:5.1f}% {us:12.0f} {rounded:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
