"""What synchronous replication costs a decision: the same load on the same primary, its standby
asynchronous and synchronous in turn (interleaved rounds, one run: only the ratio is compared).

    .venv/bin/python bench/sync_replication_cost.py [--threads 8] [--seconds 10] [--rounds 3]

A private primary and a hot standby made from it with pg_basebackup -R (tests/private_postgres.py, PostgreSQL
15, fsync on, loopback ports: the standby's flush is a local round trip and a disk flush on the same disk, not
a network's round trip: on real hosts the cost is larger by the network's round trip). Each round sets
synchronous_standby_names ('' or '*') and reloads, waits until pg_stat_replication says async or sync, then
--threads threads decide orders through the service (in this process, SQL adapters, one account per thread:
no lock contention) for --seconds. Printed per round: mode, decisions/s, median and p90 ms per decision, the
load average before it; then the medians of each mode and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.bootstrap import Settings, bootstrap
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade
from creditctl.domain.decision import Order
from creditctl.ports.clock import SystemClock
from creditctl.services.customers import refresh_balances, register_customer
from creditctl.services.decide_order import decide_order
from tests.private_postgres import PrivatePostgres, private_postgres, streaming_replica


def balances(n: int) -> dict[str, list[dict[str, Any]]]:
    return {
        f"88{i:08d}": [
            {
                "saleGroupCode": "GA10", "saleGroupName": "Air", "payerAccountCode": f"P{i}",
                "payerAccountName": f"Payer {i}", "payerAccountBalance": "100000000.00",
            }
        ]
        for i in range(n)
    }  # fmt: skip


def set_mode(primary: PrivatePostgres, mode: str) -> None:
    primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{'*' if mode == 'sync' else ''}'")
    primary.sql("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 30
    while primary.sql("SELECT sync_state FROM pg_stat_replication") != mode:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the standby did not become {mode}")
        time.sleep(0.05)


def one_round(context: Any, customers: list[str], seconds: float, tag: str) -> tuple[int, list[float]]:
    latencies: list[list[float]] = [[] for _ in customers]
    stop = threading.Event()

    def decider(t: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            order = Order(f"{tag}-{t}-{i}", customers[t], "GA10", Decimal("1.00"))
            started = time.perf_counter()
            decide_order(order, scope=None, uow=context.uow(), balances=context.balances)
            latencies[t].append(time.perf_counter() - started)

    threads = [threading.Thread(target=decider, args=(t,)) for t in range(len(customers))]
    for th in threads:
        th.start()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    every = [x for per in latencies for x in per]
    return len(every), every


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = balances(args.threads)
    with (
        private_postgres(durable=True) as primary,
        streaming_replica(primary),
        tempfile.TemporaryDirectory() as folder,
    ):
        upgrade(primary.url)
        engine = make_engine(primary.url, threads=args.threads)
        clock = SystemClock()
        settings = Settings(instance_path=Path(folder) / "instance", database_url=primary.url)
        context = bootstrap(
            settings, balances=FakeBalanceProvider(data, clock=clock), clock=clock, engine=engine
        )
        for code in data:
            register_customer(code, uow=context.uow(), clock=clock)
            refresh_balances(code, scope=None, uow=context.uow(), balances=context.balances, clock=clock)
        customers = sorted(data)
        one_round(context, customers, 2.0, "warm-up")
        rates: dict[str, list[float]] = {"async": [], "sync": []}
        print("round  mode   dec/s   p50 ms  p90 ms  load avg (1 min, before)")
        for r in range(args.rounds):
            for mode in ("async", "sync") if r % 2 == 0 else ("sync", "async"):
                set_mode(primary, mode)
                load = os.getloadavg()[0]
                n, every = one_round(context, customers, args.seconds, f"{mode}{r}")
                every.sort()
                rate = n / args.seconds
                rates[mode].append(rate)
                p50, p90 = every[len(every) // 2] * 1000, every[int(len(every) * 0.9)] * 1000
                print(f"{r:5d}  {mode:5s}  {rate:6.0f}  {p50:7.2f}  {p90:6.2f}  {load:.2f}")
        a, s = statistics.median(rates["async"]), statistics.median(rates["sync"])
        print(f"median dec/s: async {a:.0f}, sync {s:.0f}; sync / async = {s / a:.2f}x "
              f"({args.threads} threads, {args.seconds:g} s rounds)")  # fmt: skip
        engine.dispose()


if __name__ == "__main__":
    main()
