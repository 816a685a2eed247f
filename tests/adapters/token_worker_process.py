"""One process of the cross-process token test (run as `python -m tests.adapters.token_worker_process ARGS`).

It wires a HaierBalanceProvider over a SqlTokenStore on the shared database, prints "ready", waits for
a go file, then releases its threads together; each asks the emulator for one customer's balances.
After each round (one per go file) it prints one JSON line: what each thread got, and a digest of the
token it ended up sharing."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any


def main() -> None:
    args = json.loads(sys.argv[1])
    from adapters.haier.balance_provider import HaierBalanceProvider
    from adapters.haier.config import HaierConfig
    from adapters.sql.engine import make_engine
    from adapters.sql.secret_box import FernetSecretBox
    from adapters.sql.token_store import SqlTokenStore

    engine = make_engine(args["database_url"], pool_size=2, max_overflow=2, pool_timeout=60)
    store = SqlTokenStore(engine, FernetSecretBox(args["keys"]))
    config = HaierConfig.from_dict(args["config"], allow_loopback=True)
    provider = HaierBalanceProvider(config, token_store=store, config_name=args["name"], allow_loopback=True)
    customers: list[str] = args["customers"]
    n = int(args["threads"])

    def one_round() -> list[Any]:
        results: list[Any] = [None] * n
        barrier = threading.Barrier(n)

        def run(i: int) -> None:
            barrier.wait(timeout=60)
            try:
                report = provider.fetch(customers[i % len(customers)], timeout_s=20)
                results[i] = {"ok": True, "accounts": len(report.accounts)}
            except Exception as exc:
                results[i] = {"ok": False, "error": f"{type(exc).__name__} {getattr(exc, 'code', '')}: {exc}"}

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results

    print("ready", flush=True)
    for go in args["go"]:  # one round per go file, released together across the processes
        give_up = time.monotonic() + 60
        while not Path(go).exists() and time.monotonic() < give_up:
            time.sleep(0.002)
        results = one_round()
        token = store.current(args["name"])
        digest = hashlib.sha256(token.value.encode()).hexdigest() if token else None
        print(json.dumps({"results": results, "token_sha256": digest}), flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
