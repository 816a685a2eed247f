"""End to end: the `creditctl` command sets up a fresh instance and serves it with gunicorn; a client
talks to it over a real socket."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.e2e.served import served_demo
from tests.random_refs import random_order_id

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Server:
    url: str
    orders_key: str
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One fresh instance served for this module's tests; always stopped at the end."""
    with served_demo(tmp_path_factory.mktemp("e2e"), workers=2) as served:
        yield Server(url=served.url, orders_key=served.keys["orders"], log=served.log)


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
