"""CPU per request of the web layer alone, around POST /v1/decisions and GET /v1/decisions/<id>.

    .venv/bin/python bench/web_layer_bench.py [--code DIR ...] [-n 3000] [--rounds 7] [--profile]

What it measures: the WSGI application exactly as `creditctl serve` builds it (INFO access log to a
file, Prometheus in multiprocess mode), called in-process with a ready WSGI environ, with the decision
service replaced by one stored answer (`decide_order` and `get_decision` patched in
adapters/web/decisions.py). So every microsecond counted is the web layer's: routing, authentication
(the key cache), request hooks, body parsing and validation, the view, the answer's serialisation, the
access log line and the metrics. Neither gunicorn nor the database is in it (bench.py measures those).

Each --code DIR (default: this checkout) runs in its own process against one throwaway SQLite instance;
their rounds are interleaved (A, B, A, B, ...) so that the machine's load falls on all alike, and the
median CPU µs per request (user + system, `time.process_time`) of each is printed with the ratio to the first.
Compare a branch with its base in one run:

    git -C /work/main archive main | tar -x -C /tmp/base     # any tree of this project
    .venv/bin/python bench/web_layer_bench.py --code /tmp/base --code .

--profile prints a cProfile of one extra round of the first --code (not measured).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def child(n: int, profile: bool) -> None:
    """Runs inside --code's tree: build the app, make one real decision, then answer "round" lines."""
    sys.path.insert(0, os.getcwd())
    from werkzeug.test import EnvironBuilder

    import adapters.bootstrap as composition
    import adapters.web.decisions as views
    from creditctl.domain.decision import Order

    app = composition.create_wsgi_app()
    key = os.environ["BENCH_KEY"]
    headers = {"Authorization": f"Bearer {key}", "User-Agent": "wrk", "Accept": "*/*"}
    body = {"order_id": "W-0", "customer_code": "C00001", "sale_group_code": "SG01", "amount": "12.34"}
    first = app.test_client().post("/v1/decisions", json=body, headers=headers)
    if first.status_code not in (200, 201):  # 200: another --code made it first
        raise SystemExit(f"probe decision: {first.status_code} {first.get_data(as_text=True)[:300]}")
    with app.app_context():
        ctx = app.extensions["creditctl"]
        real_decide = views.decide_order
        stored = real_decide(
            Order(**{**body, "order_id": "W-stored", "amount": Decimal("12.34")}),
            scope=None,
            uow=ctx.uow(),
            balances=ctx.balances,
            deadline_s=ctx.decision_deadline_s,
        )
    views.decide_order = lambda order, **_kw: type(stored)(decision=stored.decision, created=True)
    views.get_decision = lambda order_id, **_kw: stored.decision

    def environ(method: str, path: str, payload: bytes | None) -> dict[str, Any]:
        builder = EnvironBuilder(
            path=path,
            method=method,
            headers=headers,
            data=payload,
            content_type="application/json" if payload is not None else None,
            environ_base={"REMOTE_ADDR": "127.0.0.1", "SERVER_SOFTWARE": "gunicorn/23.0.0"},
        )
        return builder.get_environ()

    def start_response(status: str, _headers: Any, _exc: Any = None) -> Any:
        if status[:3] not in ("200", "201"):
            raise RuntimeError(status)
        return None

    def one_round(kind: str, count: int) -> float:
        posts = [
            json.dumps(
                {**body, "order_id": f"W-{uuid.uuid4().hex[:12]}", "amount": f"{1 + i % 99}.{i % 100:02d}"}
            ).encode()
            for i in range(count)
        ]
        base_post = environ("POST", "/v1/decisions", posts[0])
        base_get = environ("GET", "/v1/decisions/W-0", None)
        t0 = time.process_time()
        for i in range(count):
            if kind == "post":
                env = dict(base_post)
                env["wsgi.input"] = io.BytesIO(posts[i])
                env["CONTENT_LENGTH"] = str(len(posts[i]))
            else:
                env = dict(base_get)
                env["wsgi.input"] = io.BytesIO(b"")
            out = app(env, start_response)
            b"".join(out)
            getattr(out, "close", lambda: None)()
        return 1e6 * (time.process_time() - t0) / count

    one_round("post", 300)  # warm up: caches, compiled patterns, the key cache
    one_round("get", 300)
    if profile:
        import cProfile
        import pstats

        for kind in ("post", "get"):
            prof = cProfile.Profile(time.process_time)
            prof.enable()
            one_round(kind, n)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(45)
            print(f"== cProfile {kind} ({n} requests), by own time ==\n{out.getvalue()}", file=sys.stderr)
        print(json.dumps({"done": True}), flush=True)
        return
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "round":
            break
        print(json.dumps({"post": one_round("post", n), "get": one_round("get", n)}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--code", action="append", help="a checkout of this project (repeatable; default: this one)"
    )
    ap.add_argument("-n", type=int, default=3000, help="requests of each kind per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--profile", action="store_true", help="cProfile one round of the first --code instead")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.n, args.profile)
        return 0

    sys.path.insert(0, str(HERE))
    import bench

    codes = [Path(c).resolve() for c in (args.code or [HERE.parent])]
    inst = bench.Instance("sqlite", f"web{uuid.uuid4().hex[:8]}", 1)
    procs: list[subprocess.Popen[str]] = []
    logs: list[Path] = []
    try:
        inst.prepare()
        load_before = os.getloadavg()
        for i, code in enumerate(codes[:1] if args.profile else codes):
            prom = Path(tempfile.mkdtemp(prefix="creditctl-web-prom-", dir=inst.tmp))
            log = inst.tmp / f"access-{i}.log"
            logs.append(log)
            env = {
                **inst.env,
                "CREDITCTL_LOG_LEVEL": "INFO",
                "PROMETHEUS_MULTIPROC_DIR": str(prom),
                "BENCH_KEY": inst.key,
                "PYTHONPATH": str(code),
            }
            argv = [sys.executable, str(HERE / "web_layer_bench.py"), "--child", "-n", str(args.n)]
            proc = subprocess.Popen(
                argv + (["--profile"] if args.profile else []),
                cwd=code, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if args.profile else log.open("w"), text=True,
                start_new_session=True,  # bench.CLEANUP stops process groups
            )  # fmt: skip
            procs.append(proc)
            bench.CLEANUP.procs.append(proc)
        if args.profile:
            _out, err = procs[0].communicate()
            print("\n".join(line for line in err.splitlines() if not line.startswith("{")))
            return procs[0].returncode
        for proc, log in zip(procs, logs, strict=True):
            if not json.loads(proc.stdout.readline() or "{}").get("ready"):
                raise SystemExit(f"{proc.args} did not start:\n{log.read_text()[-3000:]}")
        results: list[dict[str, list[float]]] = [{"post": [], "get": []} for _ in procs]
        for _ in range(args.rounds):
            for proc, res in zip(procs, results, strict=True):
                proc.stdin.write("round\n")
                proc.stdin.flush()
                got = json.loads(proc.stdout.readline())
                res["post"].append(got["post"])
                res["get"].append(got["get"])
        load_after = os.getloadavg()
        print(
            f"web layer CPU per request (µs, median of {args.rounds} interleaved rounds of {args.n}; "
            f"user+system; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after)"
        )
        base = {k: statistics.median(results[0][k]) for k in ("post", "get")}
        for code, res, log in zip(codes, results, logs, strict=True):
            med = {k: statistics.median(res[k]) for k in ("post", "get")}
            spread = {k: f"{min(res[k]):.0f}-{max(res[k]):.0f}" for k in ("post", "get")}
            lines = sum(1 for _ in log.open()) if log.exists() else 0
            print(
                f"  {code}: POST /v1/decisions {med['post']:6.0f} µs ({spread['post']}, "
                f"{med['post'] / base['post']:.2f}x)  GET /v1/decisions/<id> {med['get']:6.0f} µs "
                f"({spread['get']}, {med['get'] / base['get']:.2f}x)  access log lines {lines}"
            )
        return 0
    finally:
        for proc in procs:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()  # the child's loop ends
        bench.CLEANUP.run()


if __name__ == "__main__":
    sys.exit(main())
