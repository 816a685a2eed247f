"""The audit trail as files: the events matching a filter, in chain order, as JSON lines (each line the one
`creditctl audit export` writes, verifiable without our code) or as CSV for a spreadsheet."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import replace

from creditctl.domain.audit import AuditEvent, AuditQuery
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.audit import list_audit_events
from creditctl.services.csv_cells import SafeCsvWriter

BATCH = 1000
CSV_COLUMNS = (
    "position",
    "at",
    "type",
    "actor",
    "actor_role",
    "customer_code",
    "sale_group_code",
    "order_id",
    "request_id",
    "before",
    "after",
    "hash",
)


def iter_audit_events(
    q: AuditQuery, *, uow: UnitOfWork, read_uow: UnitOfWork | None = None, batch: int = BATCH
) -> Iterator[AuditEvent]:
    """Every sealed event matching `q` after q.after_position, in chain order, read `batch` at a time
    (a short transaction each): an export of any length in flat memory. A key limited to customers
    asking for another's: UnknownCustomer, as when reading a page. With `read_uow` (a replica's) the
    pages are read there: chain positions are only appended, so a lagging replica gives a prefix."""
    page = replace(q, limit=batch, newest_first=False, before_position=None)
    while True:
        found = list_audit_events(page, uow=uow, read_uow=read_uow)
        yield from found
        if len(found) < batch:
            return
        page = replace(page, after_position=found[-1].position or 0)


def audit_jsonl(events: Iterable[AuditEvent]) -> Iterator[str]:
    """One line per event: position, seq, prev_hash, hash and the payload that was hashed, byte for byte
    (SHA-256(prev_hash + payload) = hash), as `creditctl audit export` writes them."""
    for e in events:
        line = {
            "position": e.position,
            "seq": e.seq,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
            "payload": e.payload,
        }
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"


def audit_csv(events: Iterable[AuditEvent], *, chunk: int = 500) -> Iterator[str]:
    """CSV_COLUMNS, header first; before and after as their JSON; yielded `chunk` rows at a time."""
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(CSV_COLUMNS)
    for n, e in enumerate(events, start=1):
        d, subject = e.data, e.data.get("subject") or {}
        actor = d.get("actor") or {}
        writer.writerow(
            (
                e.position,
                d.get("at"),
                d.get("type"),
                actor.get("name"),
                actor.get("role"),
                subject.get("customer_code", ""),
                subject.get("sale_group_code", ""),
                subject.get("order_id", ""),
                d.get("request_id") or "",
                _json(d.get("before")),
                _json(d.get("after")),
                e.hash,
            )
        )
        if n % chunk == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _json(value: object) -> str:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
