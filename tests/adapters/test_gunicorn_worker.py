"""The serving worker's pieces that need no server: when a buffered request has arrived, the
problem+json it answers with for gunicorn's own errors, and the database pool that covers the threads."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from adapters.bootstrap import load_settings
from adapters.sql.engine import make_engine
from adapters.web.gunicorn_worker import bound_blocking_io, problem_response, request_has_arrived

pytestmark = pytest.mark.adapters

HEAD = b"POST /v1/decisions HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("buffer", "arrived"),
    [
        (b"", False),
        (b"POST /v1/deci", False),
        (HEAD, False),
        (b"GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n", True),
        (b"GET /healthz HTTP/1.1\nHost: c\n\n", True),  # bare LF: the parser decides
        (HEAD + b"Content-Length: 10\r\n\r\n", False),
        (HEAD + b"Content-Length: 10\r\n\r\n0123456", False),
        (HEAD + b"Content-Length: 10\r\n\r\n0123456789", True),
        (HEAD + b"content-length:  10 \r\n\r\n0123456789GET / HTTP/1.1\r\n", True),  # pipelined
        (HEAD + b"Content-Length: 0\r\n\r\n", True),
        (HEAD + b"Content-Length: 65537\r\n\r\n{", True),  # over 64 KiB: the application says 413
        (HEAD + b"Content-Length: 65536\r\n\r\n{", False),
        (HEAD + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n", True),  # the parser says 400
        (HEAD + b"Content-Length: -1\r\n\r\n", True),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\n", True),  # read in the thread, bounded
        (HEAD + b"Expect: 100-continue\r\nContent-Length: 10\r\n\r\n", True),  # the client waits
        (b"GET /" + b"a" * (64 * 1024), True),  # no end of head in 64 KiB: the parser says 414
    ],
)
def test_a_request_has_arrived_when_its_head_and_announced_body_have(buffer: bytes, arrived: bool) -> None:
    assert request_has_arrived(buffer) is arrived


def test_a_parser_error_is_a_whole_problem_json_answer() -> None:
    answer = problem_response(431, "Request Header Fields Too Large", ValueError("limit request headers"))
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Content-Type"] == "application/problem+json"
    assert headers["Connection"] == "close" and int(headers["Content-Length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == 431 and problem["request_id"] == headers["X-Request-ID"]
    assert problem["detail"].endswith(": limit request headers")


def test_blocking_reads_and_sends_on_a_connection_give_up() -> None:
    a, b = socket.socketpair()
    with a, b:
        bound_blocking_io(a, 0.2)
        a.setblocking(True)  # as gunicorn does in a thread: clears Python's timeout, not the kernel's
        seconds, micros = struct.unpack("ll", a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
        assert (seconds, micros) == (0, 200000)
        with pytest.raises(BlockingIOError):
            a.recv(1)  # nothing sent: without the bound this would wait for ever


@pytest.mark.parametrize("url", ["postgresql+psycopg://u@127.0.0.1/x", "sqlite:////tmp/creditctl-pool.db"])
def test_each_process_pool_holds_a_connection_for_every_thread(url: str) -> None:
    threads = load_settings({"CREDITCTL_THREADS": "24"}).threads
    engine = make_engine(url, threads=threads)  # no connection is opened
    try:
        assert engine.pool.size() >= threads  # type: ignore[attr-defined]
        assert engine.pool.size() + engine.pool._max_overflow >= 2 * threads  # type: ignore[attr-defined]
    finally:
        engine.dispose()
    assert load_settings({}).threads == 8
