"""The anchor sink port: where the audit chain's head is kept outside the database (file, webhook, …)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from creditctl.domain.audit_anchor import Anchor


class AnchorSinkFailed(Exception):
    """The sink did not take the anchor (disk full, receiver down, refused URL): try again later."""


class AnchorSink(Protocol):
    """Somewhere the database's owner cannot rewrite: an append-only file on another machine's disk or a
    mounted volume, a receiver over HTTPS, an object store with retention (write-once buckets).

    An implementation for another store needs these three methods; `write` must not replace what an
    earlier write stored (append, or a new object per anchor)."""

    name: str  # for logs and messages: "file:/var/lib/creditctl/audit-anchors.jsonl", "https://…"

    def write(self, anchor: Anchor) -> None:
        """Store one anchor (its `line()`), durably before returning. Raises AnchorSinkFailed."""
        ...

    def last_position(self) -> int | None:
        """The position of the newest anchor stored, if the sink can read it back (None: it cannot, or
        holds none): the next anchor lists the hashes from there on."""
        ...

    def read_back(self) -> Sequence[Anchor] | None:
        """Every anchor stored, oldest first, for `audit verify`; None when the sink cannot be read back
        (a webhook: the receiver keeps them, and an auditor verifies with the file it holds)."""
        ...
