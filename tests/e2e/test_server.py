"""End to end: the `creditctl` command sets up a fresh instance and serves it with gunicorn; a client
talks to it over a real socket."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.random_refs import random_order_id

pytestmark = pytest.mark.e2e

CREDITCTL = Path(sys.executable).with_name("creditctl")
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Server:
    url: str
    orders_key: str
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _creditctl(*args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(CREDITCTL), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"creditctl {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or a worker still booting
            pass
        time.sleep(0.2)
    pytest.fail(f"the server was not ready within {READY_TIMEOUT_S}s:\n{log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to gunicorn (serve execs it: it is our child's pid); SIGKILL to its group if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the server's own session: its workers, nothing else
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One fresh instance served for this module's tests; always stopped at the end."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITCTL_", "PROMETHEUS_"))}
    env |= {"CREDITCTL_INSTANCE_PATH": str(instance), "CREDITCTL_BALANCE_PROVIDER": "fake"}
    env |= {"CREDITCTL_WORKERS": "2", "CREDITCTL_LOG_LEVEL": "WARNING"}
    _creditctl("db", "upgrade", env=env, cwd=tmp_path)
    demo = _creditctl("demo", env=env, cwd=tmp_path)
    match = re.search(r"^orders key \(shown once\):\s+(\S+)$", demo, re.M)
    assert match, demo
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(CREDITCTL), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_ready(url, process, log)
        yield Server(url=url, orders_key=match.group(1), log=log)
    finally:
        _stop(process)


def test_a_served_instance_decides_an_order_and_replays_it(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.orders_key}", "X-Request-ID": "e2e-1"}
    body = {
        "order_id": random_order_id("e2e"),
        "customer_code": "8800633175",
        "sale_group_code": "GB20",
        "amount": "50000.00",
    }
    first = requests.post(f"{server.url}/v1/decisions", json=body, headers=headers, timeout=10)
    assert first.status_code == 201, first.text
    decision = first.json()
    assert decision["outcome"] == "approve"
    assert decision["hold"]["amount"] == "50000.00" and decision["hold"]["status"] == "open"
    assert first.headers["X-Request-ID"] == "e2e-1"

    again = requests.post(f"{server.url}/v1/decisions", json=body, headers=headers, timeout=10)
    assert again.status_code == 200, again.text
    assert again.json() == decision

    conflict = requests.post(
        f"{server.url}/v1/decisions", json=body | {"amount": "50000.01"}, headers=headers, timeout=10
    )
    assert conflict.status_code == 409
    assert conflict.headers["Content-Type"].startswith("application/problem+json")

    account = requests.get(f"{server.url}/v1/accounts/8800633175/GB20", headers=headers, timeout=10)
    assert account.status_code == 200 and account.json()["exposure"] == "50000.00"


def test_a_served_instance_refuses_oversized_bodies_also_when_chunked(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.orders_key}", "Content-Type": "application/json"}
    order_id = random_order_id("e2e-big")
    prefix = (
        f'{{"order_id": "{order_id}", "customer_code": "8800633175", "sale_group_code": "GB20", '
        '"amount": "1.00"'
    ).encode()
    body = prefix + b" " * (64 * 1024 - len(prefix) - 1) + b"}" + b" " * 1024  # a valid first 64 KiB

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    for data in (body, chunks()):
        r = requests.post(f"{server.url}/v1/decisions", data=data, headers=headers, timeout=10)
        assert r.status_code == 413, r.text
    r = requests.get(f"{server.url}/v1/decisions/{order_id}", headers=headers, timeout=10)
    assert r.status_code == 404


def test_a_served_instance_reports_metrics_from_its_workers(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.orders_key}"}
    body = {"order_id": random_order_id("e2e-m"), "customer_code": "8800633175", "sale_group_code": "GA10"}
    r = requests.post(
        f"{server.url}/v1/decisions", json=body | {"amount": "10.00"}, headers=headers, timeout=10
    )
    assert r.status_code == 201, r.text
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    assert re.search(r'^creditctl_decisions_total\{outcome="approve"\} [1-9]', text, re.M), text
    assert "creditctl_decision_seconds_count" in text
    docs = requests.get(f"{server.url}/docs", timeout=10)
    assert docs.status_code == 200 and "https://" not in docs.text
