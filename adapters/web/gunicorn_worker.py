"""The gunicorn worker `creditctl serve` runs: gthread, with each request read before a thread serves it,
and gunicorn's own error answers in problem+json.

Why not plain gthread (gunicorn 27): its thread waits up to 5 s for a connection's first byte, then reads
the rest of the request line, the headers and the body with blocking reads and no timeout. A client that
sends part of a request and stops holds a thread until it hangs up; as many such clients as threads stop
the worker (tests/e2e/test_slow_clients.py shows both). Here the worker's main loop (the same selector
that waits on kept-alive connections) collects the request line, the headers and a Content-Length body of
up to 64 KiB without a thread; only a request that has fully arrived, or one the parser must refuse, is
handed to a thread. A connection that has not delivered its request within READ_TIMEOUT_S is closed.
Bodies that are not buffered (chunked, over 64 KiB, or after `Expect: 100-continue`) and answers to a
client that does not read are bounded by the kernel's per-call timeouts (SO_RCVTIMEO, SO_SNDTIMEO).

A trickle of one byte per few seconds still costs a connection slot (worker_connections) until
READ_TIMEOUT_S; in production a buffering reverse proxy (nginx) in front takes that (README, "Serving").
"""

from __future__ import annotations

import contextlib
import errno
import json
import selectors
import socket
import struct
import time
import uuid
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import TConn, ThreadWorker

READ_TIMEOUT_S = 10.0  # from accept (or a kept-alive connection's next byte) to a whole request
SOCKET_TIMEOUT_S = 10.0  # each blocking recv/send in a thread: an unbuffered body, a slow reader
BUFFERED_BODY_BYTES = 64 * 1024  # the API's largest body (adapters/web/request_context.py)
HEAD_BYTES = 64 * 1024  # past this without an end of headers, the parser decides (414/431)
PROBLEM_TYPE_BASE = "https://creditctl.dev/problems/"  # as adapters/web/problems.py
_SEPARATORS = (b"\r\n\r\n", b"\n\n")


def request_has_arrived(buffer: bytes) -> bool:
    """Whether `buffer` holds a whole request head and the body it announces, or enough for the HTTP
    parser to answer anyway (a head too long, headers it will refuse, a body it must not wait for)."""
    ends = [(i, len(sep)) for sep in _SEPARATORS if (i := buffer.find(sep)) >= 0]
    if not ends:
        return len(buffer) >= HEAD_BYTES
    end, size = min(ends)
    lengths: list[bytes] = []
    for line in buffer[:end].splitlines()[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in (b"transfer-encoding", b"expect"):
            return True  # chunked: read in the thread; 100-continue: the client waits for us
        if name == b"content-length":
            lengths.append(value.strip())
    if not lengths:
        return True
    if len(lengths) > 1 or not lengths[0].isdigit() or int(lengths[0]) > BUFFERED_BODY_BYTES:
        return True  # the parser refuses it (400) or the application does (413) without the body
    return len(buffer) >= end + size + int(lengths[0])


class CreditctlThreadWorker(ThreadWorker):
    """gthread whose main loop buffers each request, and whose error pages are problem+json."""

    def accept(self, listener: socket.socket) -> None:
        try:
            client, address = listener.accept()
        except OSError as exc:  # as gthread: another worker took it, or the client gave up
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        bound_blocking_io(client, SOCKET_TIMEOUT_S)
        self._read_request(TConn(self.cfg, client, address, listener.getsockname()))

    def on_client_socket_readable(self, conn: Any, client: socket.socket) -> None:
        """A kept-alive connection's next request: read it here too before a thread serves it."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_request(conn)

    def _read_request(self, conn: Any) -> None:
        conn.buffered = bytearray()
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + READ_TIMEOUT_S
        self.pending_conns.append(conn)  # gunicorn's murder_pending closes it when it times out
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_request_bytes, conn))

    def _on_request_bytes(self, conn: Any, client: socket.socket) -> None:
        try:
            data = client.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            conn.buffered += data
            if not request_has_arrived(bytes(conn.buffered)):
                return
        self.poller.unregister(client)
        self.pending_conns.remove(conn)
        if not data:  # the client hung up before its request was complete
            self.nr_conns -= 1
            conn.close()
            return
        conn.data_ready = True  # a thread must not wait for data again
        self.enqueue_req(conn)

    def murder_pending(self) -> None:
        """Close the connections whose request has not arrived in time (gunicorn's own loop); one that
        has sent part of a request is told so first, 408 in problem+json."""
        now = time.monotonic()
        for conn in self.pending_conns:  # in order of their deadlines
            if conn.timeout > now:
                break
            if getattr(conn, "buffered", None):
                with contextlib.suppress(OSError):  # a client gone or not reading is closed all the same
                    util.write_nonblock(conn.sock, problem_response(408, "Request Timeout", None))
        super().murder_pending()

    def handle(self, conn: Any) -> Any:
        buffered = getattr(conn, "buffered", None)
        if buffered:
            conn.buffered = None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(bytes(buffered))
        return super().handle(conn)

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """gunicorn decides the status, logs and writes the access line; the body is problem+json."""
        page = _CapturedPage()
        super().handle_error(req, page, addr, exc)
        status, reason = page.status()
        try:
            util.write_nonblock(client, problem_response(status, reason, exc))
        except Exception:
            self.log.debug("Failed to send error message.")


def bound_blocking_io(sock: socket.socket, seconds: float) -> None:
    """Make every blocking recv and send on `sock` give up after `seconds` (EAGAIN), whatever
    Python's own timeout (gunicorn sets the socket blocking, which clears that one)."""
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


_DETAILS = {
    400: "The request is not valid HTTP/1.1",
    403: "The request was refused before it reached the service",
    408: f"The whole request did not arrive within {READ_TIMEOUT_S:g} s",
    414: "The request line is too long",
    417: "The Expect header asks for something this server does not do",
    431: "The request's header fields are too many or too large",
    501: "The request uses a transfer coding this server does not implement",
}


def problem_response(status: int, reason: str, exc: BaseException | None) -> bytes:
    """A whole HTTP/1.1 answer, problem+json, for an error raised before the application saw the
    request; it closes the connection, as gunicorn's own page does."""
    request_id = uuid.uuid4().hex
    detail = _DETAILS.get(status, "Something went wrong on our side; the request id helps us find it")
    if exc is not None and 400 <= status < 500 and str(exc):
        detail = f"{detail}: {str(exc)[:200]}"  # what the HTTP parser refused, for the client's author
    body = json.dumps(
        {
            "type": f"{PROBLEM_TYPE_BASE}http/{status}",
            "title": reason,
            "status": status,
            "detail": detail,
            "errors": {},
            "request_id": request_id,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _CapturedPage:
    """A stand-in socket for gunicorn's handle_error: keeps the HTML page it writes, to read the status."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, _flag: bool) -> None:
        return None

    def sendall(self, data: bytes) -> None:
        self.data += data

    send = sendall

    def status(self) -> tuple[int, str]:
        line = self.data.split(b"\r\n", 1)[0].decode("latin-1")  # "HTTP/1.1 414 URI Too Long"
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1].isdigit():
            return int(parts[1]), parts[2]
        return 500, "Internal Server Error"
