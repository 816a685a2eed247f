"""A real local webhook receiver for tests: verifies with the `verify` of docs/order-systems.md, processes
each event id once, and can fail at random or stall (to kill a worker mid-send)."""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "order-systems.md"  # its "Webhooks (for receivers)"
_SNIPPET = re.compile(r"<!-- webhook-verify -->\n```python\n(.*?)```", re.S)


def readme_snippet() -> str:
    match = _SNIPPET.search(GUIDE.read_text(encoding="utf-8"))
    assert match, f"{GUIDE} has no <!-- webhook-verify --> python block"
    return match.group(1)


def readme_verify() -> Callable[..., dict[str, Any]]:
    """The `verify` function exactly as the guide for order systems shows it."""
    namespace: dict[str, Any] = {}
    exec(compile(readme_snippet(), str(GUIDE), "exec"), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


class Receiver:
    def __init__(self, secret: str, *, fail_rate: float = 0.0, seed: int = 0, status: int = 200) -> None:
        self.secret = secret
        self.fail_rate = fail_rate
        self.status = status
        self.random = random.Random(seed)
        self.verify = readme_verify()
        self.lock = threading.Lock()
        self.processed: dict[str, dict[str, Any]] = {}
        self.duplicates: Counter[str] = Counter()
        self.requests = 0
        self.raw: list[tuple[str, bytes]] = []  # every request as sent: signature header, body
        self.failed_on_purpose = 0
        self.bad_signatures = 0
        self.stall = threading.Event()  # while set, requests hang (and are then answered 500)
        self.stalled = threading.Event()  # set when a request arrived while stalling
        self.url = ""

    def handle(self, header: str, body: bytes) -> int:
        with self.lock:
            self.requests += 1
            self.raw.append((header, body))
        if self.stall.is_set():
            self.stalled.set()
            while self.stall.is_set():
                threading.Event().wait(0.05)
            return 500
        try:
            event = self.verify(self.secret, header, body)
        except ValueError:
            with self.lock:
                self.bad_signatures += 1
            return 400
        with self.lock:
            if self.random.random() < self.fail_rate:
                self.failed_on_purpose += 1
                return 503
            if event["id"] in self.processed:
                self.duplicates[event["id"]] += 1
            else:
                self.processed[event["id"]] = event
        return self.status


@contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.handle(self.headers.get("Creditctl-Signature", ""), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.stall.clear()
        server.shutdown()
        server.server_close()
