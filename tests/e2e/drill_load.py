"""The production drill's load generator, a process of its own: order systems sending decisions through
the proxy, each keeping its own log of every answer it got (the client's record, which the drill then holds
against the database and the audit chain).

    python tests/e2e/drill_load.py --url URL --key KEY --accounts FILE --log FILE [--threads N] [--seed S]

Each thread sends decisions one after another (a new order id each, an account and amount drawn from a
seeded generator), and sends an order again with the same id, as an order system must, until it is
answered 2xx (after Retry-After, at most 1 s, or 0.2 s when no answer came at all), at most RETRIES
times. One JSON line per attempt: order id, account, amount, attempt, when it was sent and answered (Unix
time), HTTP status (0: no answer), outcome and reason codes of a decision, problem type and Retry-After of
a refusal, the error of a failed connection. Stops at SIGTERM, after each thread's answer in flight."""

from __future__ import annotations

import argparse
import json
import random
import signal
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

RETRIES = 60
TIMEOUT_S = 20.0


def client(
    n: int,
    args: argparse.Namespace,
    accounts: list[list[Any]],
    out: Any,
    guard: threading.Lock,
    stopping: threading.Event,
) -> None:
    rng = random.Random(f"{args.seed}-{n}")
    session = requests.Session()
    headers = {"Authorization": f"Bearer {args.key}"}
    i = 0
    while not stopping.is_set():
        i += 1
        customer, group, low_fen, high_fen = rng.choice(accounts)
        amount = str(Decimal(rng.randint(low_fen, high_fen)) / 100)
        body = {
            "order_id": f"drill-{args.seed}-{n}-{i}",
            "customer_code": customer,
            "sale_group_code": group,
            "amount": amount,
        }
        for attempt in range(1, RETRIES + 1):
            line, wait = _send(session, args.url, headers, body, attempt)
            with guard:
                out.write(json.dumps(line) + "\n")
                out.flush()
            if 200 <= line["status"] < 300 or line["status"] in (400, 409, 422):
                break
            if stopping.wait(wait):
                return
        time.sleep(args.pause)


def _send(
    session: requests.Session, url: str, headers: dict[str, str], body: dict[str, str], attempt: int
) -> tuple[dict[str, Any], float]:
    line: dict[str, Any] = {**body, "attempt": attempt, "sent": time.time()}
    try:
        r = session.post(f"{url}/v1/decisions", json=body, headers=headers, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        session.close()  # a broken kept-alive connection is not reused
        return line | {"answered": time.time(), "status": 0, "error": type(exc).__name__}, 0.2
    line |= {
        "answered": time.time(),
        "status": r.status_code,
        "content_type": r.headers.get("Content-Type", ""),
        "retry_after": r.headers.get("Retry-After"),
    }
    try:
        parsed = r.json()
    except ValueError:
        parsed = None
    if 200 <= r.status_code < 300 and isinstance(parsed, dict):
        line |= {
            "outcome": parsed.get("outcome"),
            "reasons": [x.get("reason") for x in parsed.get("reasons", [])],
            "decision_id": parsed.get("decision_id"),
        }
    elif isinstance(parsed, dict):
        line |= {"type": parsed.get("type"), "code": parsed.get("code")}
    retry = line.get("retry_after")
    return line, min(1.0, float(retry)) if retry and retry.isdigit() else 0.2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--accounts", required=True, help="JSON: [[customer, sale group, min fen, max fen], ...]")
    ap.add_argument("--log", required=True)
    ap.add_argument("--threads", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pause", type=float, default=0.02, help="seconds between two orders of a thread")
    args = ap.parse_args()
    accounts = json.loads(Path(args.accounts).read_text())
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    guard = threading.Lock()
    with Path(args.log).open("a", encoding="utf-8") as out:
        threads = [
            threading.Thread(target=client, args=(n, args, accounts, out, guard, stopping), daemon=True)
            for n in range(args.threads)
        ]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)


if __name__ == "__main__":
    main()
