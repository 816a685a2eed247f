"""Anchors appended to a JSON-lines file: one line per anchor, written with O_APPEND and fsynced."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from creditctl.domain.audit_anchor import Anchor, parse_anchor, parse_anchors
from creditctl.ports.audit_anchor import AnchorSinkFailed

TAIL_CHUNK = 64 * 1024


class FileAnchorSink:
    """Appends each anchor as one line. Several workers may share the file: each line is one write() on
    a descriptor opened with O_APPEND, so lines never interleave on a local file system. Keep the file
    where the database's owner cannot rewrite it (another volume or host, `chattr +a`, a log shipper)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = f"file:{path}"

    def write(self, anchor: Anchor) -> None:
        data = (anchor.line() + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                written = os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise AnchorSinkFailed(f"{self.name}: {exc.strerror or exc}") from None
        if written != len(data):
            raise AnchorSinkFailed(f"{self.name}: only {written} of {len(data)} bytes were written")

    def last_position(self) -> int | None:
        line = _last_line(self.path)
        if line is None:
            return None
        try:
            return parse_anchor(line).position
        except ValueError:
            return None  # a line cut short by a crash: the next anchor lists hashes from its own start

    def read_back(self) -> Sequence[Anchor] | None:
        try:
            with self.path.open(encoding="utf-8") as f:
                return parse_anchors(f)
        except FileNotFoundError:
            return []


def _last_line(path: Path) -> str | None:
    """The file's last non-empty line, read from the end (a line may hold many hashes)."""
    try:
        with path.open("rb") as f:
            end = f.seek(0, os.SEEK_END)
            tail = b""
            while end > 0:
                start = max(0, end - TAIL_CHUNK)
                f.seek(start)
                tail = f.read(end - start) + tail
                end = start
                stripped = tail.rstrip(b"\n")
                if b"\n" in stripped or end == 0:
                    return stripped.rsplit(b"\n", 1)[-1].decode("utf-8", "replace") or None
    except FileNotFoundError:
        return None
    return None
