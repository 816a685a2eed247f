"""Anchor sinks: a JSON-lines file appended to (and read back), a webhook POSTed to under the outbound URL
policy and signed when given a secret; and the settings that choose one."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adapters.anchor.file_anchor_sink import FileAnchorSink
from adapters.anchor.http_anchor_sink import SIGNATURE_HEADER, HttpAnchorSink
from adapters.bootstrap import anchor_sink, load_settings
from adapters.outbound.url_policy import UrlRefused
from creditctl.domain.audit_anchor import Anchor, parse_anchor
from creditctl.ports.audit_anchor import AnchorSinkFailed

pytestmark = pytest.mark.adapters

H = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(5)]


def anchor(position: int, since: int) -> Anchor:
    return Anchor(position, H[position - 1], "2026-12-05T10:00:00.000000Z", since, tuple(H[since:position]))


class TestFileSink:
    def test_each_anchor_is_one_line_and_the_file_reads_back_in_order(self, tmp_path: Path) -> None:
        sink = FileAnchorSink(tmp_path / "deep" / "anchors.jsonl")
        assert sink.last_position() is None and sink.read_back() == []
        sink.write(anchor(2, 0))
        sink.write(anchor(5, 2))
        assert sink.path.read_text().count("\n") == 2
        assert sink.read_back() == [anchor(2, 0), anchor(5, 2)]
        assert sink.last_position() == 5

    def test_the_last_position_is_found_behind_a_line_longer_than_one_read(self, tmp_path: Path) -> None:
        sink = FileAnchorSink(tmp_path / "anchors.jsonl")
        many = tuple(hashlib.sha256(str(i).encode()).hexdigest() for i in range(3000))  # ~200 kB
        sink.write(Anchor(3000, many[-1], None, 0, many))
        sink.write(Anchor(3001, H[0], None, 3000, (H[0],)))
        assert sink.last_position() == 3001

    def test_a_last_line_cut_short_by_a_crash_is_no_position(self, tmp_path: Path) -> None:
        sink = FileAnchorSink(tmp_path / "anchors.jsonl")
        sink.write(anchor(2, 0))
        with sink.path.open("a") as f:
            f.write('{"position":9,"ha')
        assert sink.last_position() is None  # the next anchor lists hashes from its own start

    def test_a_file_that_cannot_be_written_is_a_sink_failure(self, tmp_path: Path) -> None:
        (tmp_path / "dir").mkdir()
        with pytest.raises(AnchorSinkFailed, match="file:"):
            FileAnchorSink(tmp_path / "dir").write(anchor(2, 0))


class TestAnchorLines:
    def test_a_line_round_trips_and_lists_every_hash(self) -> None:
        a = anchor(5, 2)
        assert parse_anchor(a.line()) == a
        assert list(a.listed()) == [(3, H[2]), (4, H[3]), (5, H[4])]

    @pytest.mark.parametrize(
        ("line", "problem"),
        [
            ('{"position":0,"hash":"' + H[0] + '"}', "position"),
            ('{"position":2,"hash":"xyz"}', "hash is not 64 hex"),
            ('{"position":5,"hash":"' + H[4] + '","since":1,"hashes":["' + H[4] + '"]}', "since"),
            ('{"position":1,"hash":"' + H[1] + '","since":0,"hashes":["' + H[0] + '"]}', "last of hashes"),
            ("[1]", "not a JSON object"),
        ],
    )
    def test_a_malformed_line_is_refused_naming_what_is_wrong(self, line: str, problem: str) -> None:
        with pytest.raises(ValueError, match=problem):
            parse_anchor(line)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        server.received.append((dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *args: object) -> None: ...


@contextmanager
def receiver(status: int = 204) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.received = []  # type: ignore[attr-defined]
    server.status = status  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class TestWebhookSink:
    def test_the_anchor_is_posted_as_its_line_and_signed_with_the_secret(self) -> None:
        with receiver() as server:
            url = f"http://127.0.0.1:{server.server_port}/anchors"
            HttpAnchorSink(url, secret="s3cret", allow_loopback=True).write(anchor(5, 2))
        ((headers, body),) = server.received  # type: ignore[attr-defined]
        assert body == anchor(5, 2).line().encode()
        assert headers["Content-Type"] == "application/json"
        expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER] == f"sha256={expected}"

    def test_an_answer_other_than_2xx_is_a_failure_to_try_again(self) -> None:
        with receiver(status=302) as server:
            sink = HttpAnchorSink(f"http://127.0.0.1:{server.server_port}/", allow_loopback=True)
            with pytest.raises(AnchorSinkFailed, match="answered 302"):
                sink.write(anchor(2, 0))

    def test_a_url_the_outbound_policy_refuses_is_refused_when_the_sink_is_made(self) -> None:
        with pytest.raises(UrlRefused):
            HttpAnchorSink("http://127.0.0.1:9/anchors")  # loopback over http: not without the setting
        assert HttpAnchorSink("http://127.0.0.1:9/", allow_loopback=True).read_back() is None


class TestAnchorSettings:
    def test_the_default_is_a_file_in_the_instance_folder(self, tmp_path: Path) -> None:
        settings = load_settings({"CREDITCTL_INSTANCE_PATH": str(tmp_path)})
        sink = anchor_sink(settings)
        assert isinstance(sink, FileAnchorSink) and sink.path == tmp_path / "audit-anchors.jsonl"
        assert settings.audit_anchor_every_s == 60.0

    def test_off_anchors_nowhere_and_a_webhook_url_is_checked(self, tmp_path: Path) -> None:
        env = {"CREDITCTL_INSTANCE_PATH": str(tmp_path)}
        assert anchor_sink(load_settings({**env, "CREDITCTL_AUDIT_ANCHOR": "off"})) is None
        with pytest.raises(SystemExit, match="CREDITCTL_AUDIT_ANCHOR"):
            anchor_sink(load_settings({**env, "CREDITCTL_AUDIT_ANCHOR": "http://127.0.0.1/a"}))
        with pytest.raises(SystemExit, match="file:<path>, an https:// URL or off"):
            anchor_sink(load_settings({**env, "CREDITCTL_AUDIT_ANCHOR": "s3://bucket/anchors"}))
        with pytest.raises(SystemExit, match="more than 0"):
            load_settings({**env, "CREDITCTL_AUDIT_ANCHOR_EVERY_S": "0"})
