"""The upstream's economy across instances: balance calls per customer per refresh window. Not a test.

    .venv/bin/python bench/upstream_economy.py [--instances 2] [--workers 2] [--clients 48] [--customers 5]
                                               [--refresh-after 5] [--windows 10] [--seed S]

Two (--instances) `creditctl serve` processes, each with its own instance folder, on one fresh PostgreSQL
database (127.0.0.1:5432, dropped afterwards), the recording Haier emulator (tests/e2e/recording_emulator.py)
as their upstream with --customers customers of one payer account each (100,000,000.00, so orders keep
approving). A rule set with refresh_after_s = --refresh-after is published; every snapshot and shared
report is then made an hour old, and --clients threads (spread evenly over the instances) order for random
customers for --windows refresh windows. It prints the decisions made (by instance and outcome), the
balance calls the emulator recorded and counted, each instance's own count (/metrics), and per customer
the calls in each of its refresh windows, their maximum (must be 1) and the shortest gap between two calls.
How windows are counted: tests/e2e/upstream_economy.py. Results: bench/results/<stamp>-upstream-economy.json.
The bounded form is tests/e2e/test_upstream_economy.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.upstream_economy import Settings, Stack, describe  # noqa: E402

PG_URL = os.environ.get("CREDITCTL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers per instance")
    p.add_argument("--clients", type=int, default=48)
    p.add_argument("--customers", type=int, default=5)
    p.add_argument("--refresh-after", type=int, default=5, help="the rule set's refresh_after_s")
    p.add_argument("--windows", type=int, default=10, help="refresh windows of load")
    p.add_argument("--seed", type=int, default=random.randrange(1_000_000))
    a = p.parse_args()
    settings = Settings(customers=a.customers, clients=a.clients, instances=a.instances, workers=a.workers,
                        refresh_after_s=a.refresh_after, windows=a.windows, seed=a.seed)  # fmt: skip
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    print(f"upstream economy {stamp}: load average {os.getloadavg()}, seed {a.seed}", flush=True)
    stack = Stack(settings, PG_URL)
    try:
        stack.start()
        result = stack.run()
    finally:
        stack.close()
    for line in describe(result):
        print(line)
    verdict = "HOLDS" if result.max_per_window <= 1 else "BROKEN"
    print(f"verdict: {verdict} (at most one balance call per customer per refresh window)")
    out = ROOT / "bench" / "results" / f"{stamp}-upstream-economy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(result) | {"max_per_window": result.max_per_window, "verdict": verdict, "argv": sys.argv}
    out.write_text(json.dumps(data, indent=2, default=str))
    print(f"results: {out.relative_to(ROOT)}")
    return 0 if verdict == "HOLDS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
