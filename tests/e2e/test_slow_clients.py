"""The edge of HTTP under `creditctl serve`: clients that send part of a request and stop hold no worker
(the service still answers /healthz and decides orders), and the errors gunicorn itself answers, before
the application sees a request, are problem+json like every other error.

Plain gunicorn gthread does not survive this, which is why creditctl runs its own worker: the test
against it (a tiny WSGI app, nothing of creditctl) shows that its threads wait for a stalled request."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from adapters.web.gunicorn_worker import READ_TIMEOUT_S
from tests.e2e.served import Served, free_port, served_demo, stop
from tests.random_refs import random_order_id

pytestmark = pytest.mark.e2e

LIVENESS_S = 5.0  # a generous bound: "still answers", not a benchmark
STALLED = {
    "request line": b"POST /v1/deci",
    "headers": b"POST /v1/decisions HTTP/1.1\r\nHost: creditctl\r\nContent-Type: appl",
    "body": (
        b"POST /v1/decisions HTTP/1.1\r\nHost: creditctl\r\nContent-Type: application/json\r\n"
        b'Content-Length: 120\r\n\r\n{"order_id": "PO-'
    ),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The default two workers, with two threads each: fewer threads than the stalled connections."""
    with served_demo(tmp_path_factory.mktemp("slow"), workers=2, CREDITCTL_THREADS="2") as served:
        yield served


def stalled_connections(port: int, each: int) -> ExitStack:
    """`each` connections of every kind in STALLED, each having sent its part and then nothing; and
    `each` kept-alive connections whose first request was answered and whose second one stalls."""
    stack = ExitStack()
    for part in STALLED.values():
        for _ in range(each):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            sock.sendall(part)
    for _ in range(each):
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: creditctl\r\n\r\n")
        answer = b""
        while not answer.endswith(b"}\n") and not answer.endswith(b"}"):
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"keep-alive" in answer.lower(), answer
        sock.sendall(STALLED["headers"])
    return stack


def decide(served: Served, amount: str = "10.00") -> requests.Response:
    body = {
        "order_id": random_order_id("slow"),
        "customer_code": "8800633175",
        "sale_group_code": "GB20",
        "amount": amount,
    }
    headers = {"Authorization": f"Bearer {served.keys['orders']}"}
    return requests.post(f"{served.url}/v1/decisions", json=body, headers=headers, timeout=LIVENESS_S)


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as it is; the status, headers and body of the answer (the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=LIVENESS_S) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


class TestStalledClients:
    def test_the_service_answers_while_clients_stall_mid_request(self, served: Served) -> None:
        port = int(served.url.rsplit(":", 1)[1])
        with stalled_connections(port, each=3):  # 12 stalled, against 2 workers x 2 threads
            time.sleep(0.5)  # every stalled part has reached the server
            health = requests.get(f"{served.url}/healthz", timeout=LIVENESS_S)
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            decided = decide(served)
            assert decided.status_code == 201, decided.text
            assert decided.json()["outcome"] == "approve"

    def test_a_request_that_arrives_in_pieces_is_served_once_whole(self, served: Served) -> None:
        port = int(served.url.rsplit(":", 1)[1])
        body = json.dumps({"order_id": random_order_id("pieces"), "customer_code": "8800633175",
                           "sale_group_code": "GB20", "amount": "1.00"}).encode()  # fmt: skip
        request = (
            b"POST /v1/decisions HTTP/1.1\r\nHost: creditctl\r\nConnection: close\r\n"
            b"Authorization: Bearer " + served.keys["orders"].encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        ) + body
        with socket.create_connection(("127.0.0.1", port), timeout=LIVENESS_S) as sock:
            for i in range(0, len(request), 40):
                sock.sendall(request[i : i + 40])
                time.sleep(0.02)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]

    def test_a_stalled_request_is_answered_408_and_closed_after_the_timeout(self, served: Served) -> None:
        port = int(served.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_S + 20) as sock:
            sock.sendall(STALLED["body"])
            answer = b""
            while chunk := sock.recv(65536):  # a connection never closed fails by the socket's timeout
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ") and b"Content-Type: application/problem+json" in head
        assert json.loads(body)["status"] == 408

    def test_a_kept_alive_connection_serves_its_next_request(self, served: Served) -> None:
        with requests.Session() as session:
            for _ in range(3):
                r = session.get(f"{served.url}/healthz", timeout=LIVENESS_S)
                assert r.status_code == 200


MANY_HEADERS = b"".join(b"X-%d: 1\r\n" % i for i in range(120))
DUPLICATE_LENGTH = b"Content-Length: 2\r\nContent-Length: 2\r\n"
REFUSED_BY_THE_PARSER = [
    pytest.param(b"GET /v1/" + b"x" * 5000 + b" HTTP/1.1\r\nHost: c\r\n\r\n", 414, id="long-request-line"),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\nHost: c\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, id="big-header"
    ),
    pytest.param(b"GET /healthz HTTP/1.1\r\nHost: c\r\n" + MANY_HEADERS + b"\r\n", 431, id="many-headers"),
    pytest.param(b"GET /healthz HTTP/1.1\r\nHost: c\r\nX-\x01Bad: y\r\n\r\n", 400, id="bad-byte-in-name"),
    pytest.param(b"GET /healthz HTTP/1.1\r\nHost: c\r\nX-Ok: a\x00b\r\n\r\n", 400, id="nul-in-value"),
    pytest.param(
        b"POST /v1/decisions HTTP/1.1\r\nHost: c\r\n" + DUPLICATE_LENGTH + b"\r\n{}", 400, id="two-lengths"
    ),
    pytest.param(b"GET /healthz HTTP/9.9\r\nHost: c\r\n\r\n", 400, id="bad-http-version"),
]


class TestErrorsBeforeTheApplication:
    @pytest.mark.parametrize(("request_bytes", "status"), REFUSED_BY_THE_PARSER)
    def test_is_problem_json(self, served: Served, request_bytes: bytes, status: int) -> None:
        port = int(served.url.rsplit(":", 1)[1])
        got, headers, body = raw_exchange(port, request_bytes)
        assert got == status, body
        assert headers["content-type"] == "application/problem+json"
        assert int(headers["content-length"]) == len(body)
        problem = json.loads(body)
        assert problem["status"] == status and problem["type"].endswith(f"/http/{status}")
        assert problem["title"] and problem["detail"] and problem["errors"] == {}
        assert problem["request_id"] == headers["x-request-id"]
        assert "<html" not in body.decode()


WSGI_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_plain_gthread_gives_a_thread_to_a_stalled_request(tmp_path: Path) -> None:
    """Why creditctl has its own worker: gunicorn's gthread (the version installed) hands a connection
    to a thread at its first byte; two clients stalled in their headers stop a worker of two threads.
    If this starts failing, gunicorn buffers requests itself and the worker may be simplified."""
    (tmp_path / "tiny.py").write_text(textwrap.dedent(WSGI_APP))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--worker-class", "gthread", "--threads", "2", "--no-control-socket", "tiny:app"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert requests.get(f"http://127.0.0.1:{port}/", timeout=2).text == "ok"
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        with ExitStack() as stack:
            for _ in range(2):
                sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
                sock.sendall(STALLED["headers"])
            time.sleep(0.5)
            with pytest.raises(requests.Timeout):
                requests.get(f"http://127.0.0.1:{port}/", timeout=LIVENESS_S)
    finally:
        stop(process)
