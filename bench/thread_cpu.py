"""Where a decision's CPU goes, exactly: per-thread CPU time around each layer, not samples.

    .venv/bin/python bench/thread_cpu.py [-n 4000] [--code DIR] [--wrap module:attr.path ...]

Why: py-spy at 32 clients samples 8 threads per worker, most of them waiting for the GIL, and counts a
thread as on CPU in places where it waits (a select that released the GIL, reacquiring it); --gil read
the holder unreliably (0 samples in one run of 20 s). time.thread_time() is the calling thread's own
CPU (user + system), so wrapping a function in two readings gives its CPU, whatever the other threads do.

What it runs: a throwaway instance like bench/bench.py (PostgreSQL, 10,000 accounts, an orders key),
the WSGI application exactly as `creditctl serve` builds it (CREDITCTL_LOG_LEVEL=INFO, the access line
written to a file), called in this process with a ready WSGI environ for N fresh orders in turn (one
client, no HTTP server: gunicorn's share is not in it; bench.py's figures are). It prints the thread's
CPU per decision and, nested, that of each wrapped layer (inclusive: a layer's figure includes the
layers it calls). Each wrapper adds two clock readings (about 1 µs): a layer called 16 times a decision
shows some 16 µs more than it costs.

--code DIR measures another checkout of this project (e.g. `git worktree add /tmp/base main`) in the
same way; run it twice, once per checkout, alternately, to compare.

--toggle NAME compares a switch in one process instead (runs of this machine differ by 15 % and more, a
change of 5 % is lost between two of them): the decisions go in blocks of --block decisions, the switch
off and on in turn, and it prints the CPU a decision of each (median of the blocks) and the median of
the paired differences. NAME: `kept` (adapters.sql.kept_connections: off, each unit checks a connection
out of the pool and in again).
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import io
import json
import logging
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent

# (module, attribute path, label): the decision's layers, outermost first.
LAYERS = [
    ("adapters.web.fast_lane", "DecisionLane.__call__", "WSGI lane (the whole request)"),
    ("adapters.web.fast_lane", "DecisionLane._decide", "  after the key and the body are read"),
    ("adapters.web.decisions", "_decided", "    the decision (web._decided)"),
    ("adapters.web.decisions", "decide_order", "      decide_order"),
    (
        "adapters.sql.unit_of_work",
        "SqlUnitOfWork.__enter__",
        "        unit: open (pool, batch)",
    ),
    ("adapters.sql.unit_of_work", "SqlUnitOfWork.__exit__", "        unit: close"),
    ("adapters.sql.accounts", "SqlAccountRepository.lock", "        the account's lock and read (1st trip)"),
    ("creditctl.services.decide_order", "_decide_locked", "        in the lock: evaluate, write, commit"),
    ("adapters.sql.decisions", "SqlDecisionRepository.add_new", "          decision row queued"),
    ("adapters.sql.holds", "SqlHoldRepository.add", "          hold row queued"),
    ("adapters.sql.accounts", "SqlAccountRepository.save", "          account row queued"),
    ("adapters.sql.audit", "SqlAuditLog.append", "          audit event queued"),
    ("adapters.sql.unit_of_work", "SqlUnitOfWork.commit", "          commit (2nd trip)"),
    ("adapters.sql.pipeline", "Batch._send", "  libpq: both round trips (send, wait, read)"),
    ("adapters.sql.pipeline", "Batch._dump", "  parameters made into text (5 statements)"),
    ("adapters.web.request_context", "access_line", "  the access line"),
]


class Meter:
    """CPU seconds of the calling thread, per wrapped function."""

    def __init__(self) -> None:
        self.cpu: collections.Counter[str] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()

    def wrap(self, module: str, path: str, label: str) -> None:
        owner: Any = importlib.import_module(module)
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        inner: Callable[..., Any] = getattr(owner, name)
        cpu, calls, clock = self.cpu, self.calls, time.thread_time

        @functools.wraps(inner)
        def measured(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return inner(*args, **kwargs)
            finally:
                cpu[label] += clock() - started
                calls[label] += 1

        setattr(owner, name, measured)

    def clear(self) -> None:
        self.cpu.clear()
        self.calls.clear()


def _environ(body: bytes, key: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/v1/decisions", "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_HOST": "127.0.0.1:8000", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
    }  # fmt: skip


def _kept_switch() -> Callable[[bool], None]:
    """On: the code as it is. Off: KeptConnections hands out and takes back pooled connections only."""
    from adapters.sql.kept_connections import KeptConnections

    take, give_back = KeptConnections.take, KeptConnections.give_back

    def switch(on: bool) -> None:
        if on:
            KeptConnections.take, KeptConnections.give_back = take, give_back  # type: ignore[method-assign]
        else:
            KeptConnections.take = lambda self: self._connect()  # type: ignore[method-assign]
            KeptConnections.give_back = lambda self, conn: conn.close()  # type: ignore[method-assign]

    return switch


TOGGLES: dict[str, Callable[[], Callable[[bool], None]]] = {"kept": _kept_switch}


def _compare(
    switch: Callable[[bool], None], decide: Callable[[int], None], first: int, n: int, block: int
) -> None:
    """Blocks of `block` decisions, the switch off and on in turn (which goes first alternates too)."""
    per: dict[bool, list[float]] = {False: [], True: []}
    i, pair = first, 0
    while i < first + n:
        for on in (False, True) if pair % 2 == 0 else (True, False):
            switch(on)
            for j in range(3):  # a few unmeasured, so the block starts in the switched state
                decide(i + j)
            i += 3
            started = time.thread_time()
            for j in range(block):
                decide(i + j)
            per[on].append(1e6 * (time.thread_time() - started) / block)
            i += block
        pair += 1
    switch(True)
    diffs = [b - a for a, b in zip(per[False], per[True], strict=True)]
    print(f"{len(per[True])} pairs of {block} decisions, PostgreSQL, one client in-process")
    print(f"  off: {statistics.median(per[False]):7.1f} µs a decision (median of blocks)")
    print(f"  on:  {statistics.median(per[True]):7.1f} µs a decision")
    print(f"  on - off, paired: median {statistics.median(diffs):+.1f} µs, "
          f"{sum(d < 0 for d in diffs)} of {len(diffs)} pairs lower on")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=4000, help="decisions measured (after 300 unmeasured)")
    ap.add_argument("--code", type=Path, default=BENCH.parent, help="the checkout to measure")
    ap.add_argument("--wrap", action="append", default=[], help="module:attr.path, measured too")
    ap.add_argument("--toggle", choices=sorted(TOGGLES), help="a switch compared off/on in one process")
    ap.add_argument("--block", type=int, default=200, help="with --toggle: decisions a block")
    args = ap.parse_args()
    code = args.code.resolve()
    sys.path.insert(0, str(code))
    sys.path.insert(1, str(BENCH))
    os.chdir(code)
    import bench  # after sys.path names the checkout

    run = uuid.uuid4().hex[:8]
    inst = bench.Instance("postgres", f"tcpu{run}", 1)
    try:
        inst.prepare()
        os.environ.update({k: v for k, v in inst.env.items() if k.startswith("CREDITCTL_")})
        os.environ["CREDITCTL_LOG_LEVEL"] = "INFO"
        import adapters.bootstrap as composition

        app = composition.create_wsgi_app()
        access_log = (inst.tmp / "access.log").open("w")
        for handler in logging.getLogger().handlers:  # the access lines to a file, as under bench.py
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(access_log)
        meter = Meter()
        for module, path, label in LAYERS:
            meter.wrap(module, path, label)
        for extra in args.wrap:
            module, _, path = extra.partition(":")
            meter.wrap(module, path, f"  {extra}")

        def decide(i: int) -> None:
            customer = bench.Instance.code(1 + (i * 7919) % bench.TOTAL_ACCOUNTS)
            body = json.dumps({
                "order_id": f"{run}-{i}", "customer_code": customer,
                "sale_group_code": bench.SALE_GROUP, "amount": f"{1 + i % 99}.{i % 100:02d}",
            }).encode()  # fmt: skip
            status: list[str] = []
            answer = b"".join(app(_environ(body, inst.key), lambda s, _h, _e=None: status.append(s)))
            if not status[0].startswith("201"):
                raise RuntimeError(f"decision {i}: {status[0]} {answer[:300]!r}")

        for i in range(300):  # statements prepared, caches warm
            decide(i)
        if args.toggle:
            _compare(TOGGLES[args.toggle](), decide, 300, args.n, args.block)
            return 0
        meter.clear()
        started = time.thread_time()
        for i in range(300, 300 + args.n):
            decide(i)
        total = time.thread_time() - started
        print(f"{code}: {args.n} decisions, PostgreSQL, one client in-process, INFO access line")
        print(f"  thread CPU per decision: {1e6 * total / args.n:7.1f} µs")
        for label in [lbl for _m, _p, lbl in LAYERS] + [f"  {e}" for e in args.wrap]:
            calls = meter.calls[label] / args.n
            print(f"  {label:<58} {1e6 * meter.cpu[label] / args.n:7.1f} µs  ({calls:.2f} calls)")
        access_log.close()
    finally:
        inst.close()
        bench.CLEANUP.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
