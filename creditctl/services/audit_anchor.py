"""Anchoring the audit chain: its head, and every hash since the last anchor, written outside the database."""

from __future__ import annotations

from creditctl.domain.audit import iso
from creditctl.domain.audit_anchor import Anchor
from creditctl.ports.audit_anchor import AnchorSink
from creditctl.ports.unit_of_work import UnitOfWork

# At most this many hashes in one anchor (about 67 bytes each): an anchor after a long pause, or the
# first one of a sink that cannot say where it stopped, lists the last ones only, and the report of a
# difference before them gives the range instead of the event.
MAX_ANCHOR_HASHES = 100_000
READ_BATCH = 10_000


def anchor_audit(
    *, uow: UnitOfWork, sink: AnchorSink, since: int | None = None, max_hashes: int = MAX_ANCHOR_HASHES
) -> Anchor | None:
    """Write the chain's head and the hashes of the positions after `since` (default: the sink's last
    anchor) to `sink`; None when the head has not moved since then (nothing is written).

    The hashes are those stored: the sealer's, checked against the payloads by `audit verify`."""
    if since is None:
        since = sink.last_position()
    with uow:
        position, digest = uow.audit.head()
        if position == 0 or (since is not None and position <= since):
            return None
        start = max(since or 0, position - max_hashes)
        hashes: list[str] = []
        while start + len(hashes) < position:
            after = start + len(hashes)
            links = uow.audit.chain(after_position=after, limit=min(READ_BATCH, position - after))
            if not links or [link[0] for link in links] != list(range(after + 1, after + 1 + len(links))):
                hashes = []  # a seal is missing: `audit verify` says where; the head alone is anchored
                break
            hashes.extend(str(link[4]) for link in links)
        now = uow.now()
    if not hashes or hashes[-1] != digest:
        hashes = [digest]
    anchor = Anchor(position, digest, iso(now), position - len(hashes), tuple(hashes))
    sink.write(anchor)
    return anchor
