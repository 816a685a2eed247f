"""The audit trail on the wire: filters and a position cursor in, events with their chain hashes out."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from adapters.web.schemas.instants import UtcInstant
from adapters.web.schemas.pages import PageSize, page_size_used
from adapters.web.schemas.text import NO_CONTROL, without_control_chars


def _filter(length: int, description: str | None = None, **kwargs: Any) -> fields.String:
    """A text filter: 1 to `length` characters, no control character (what it is compared with has none)."""
    metadata = {"pattern": NO_CONTROL, **({"description": description} if description else {})}
    validate_ = [validate.Length(min=1, max=length), without_control_chars]
    return fields.String(load_default=None, validate=validate_, metadata=metadata, **kwargs)


class AuditQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    customer_code = _filter(32)
    sale_group_code = _filter(32, "With customer_code: one account's events")
    order_id = _filter(64)
    type = _filter(64, "decision.made, hold.settled, account.frozen, api_key.created, ...")
    actor = _filter(200, "A key's name")
    since = UtcInstant(load_default=None, data_key="from", metadata={"description": "At or after (UTC)"})
    until = UtcInstant(load_default=None, data_key="to", metadata={"description": "Before (UTC)"})
    cursor = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=2**62),
        metadata={
            "description": "The next_cursor of the previous page, as it is (without it, or 0: the first "
            "page). It is a chain position: any integer in range is taken, and the page holds the events "
            "after it"
        },
    )
    limit = PageSize(maximum=1000)


def _payload(event: Any) -> dict[str, Any]:
    return event.data  # type: ignore[no-any-return]


class AuditEventSchema(Schema):
    position = fields.Integer(metadata={"description": "Place in the hash chain"})
    seq = fields.Integer(metadata={"description": "The database's sequence number, given at insert"})
    at = fields.Function(lambda e: _payload(e)["at"], metadata={"type": "string", "format": "date-time"})
    type = fields.Function(lambda e: _payload(e)["type"], metadata={"type": "string"})
    actor = fields.Function(
        lambda e: _payload(e)["actor"],
        metadata={
            "type": "object",
            "description": "Who: name and role; for a key also owner (the person it is issued to) and "
            "key_id; for the operator at the command line, owner cli:<user>",
        },
    )
    request_id = fields.Function(
        lambda e: _payload(e).get("request_id"), metadata={"type": "string", "nullable": True}
    )
    subject = fields.Function(lambda e: _payload(e)["subject"], metadata={"type": "object"})
    before = fields.Function(
        lambda e: _payload(e).get("before"), metadata={"type": "object", "nullable": True}
    )
    after = fields.Function(lambda e: _payload(e).get("after"), metadata={"type": "object", "nullable": True})
    payload = fields.String(metadata={"description": "The canonical JSON that was hashed, byte for byte"})
    prev_hash = fields.String(metadata={"description": "The previous event's hash (64 zeros for the first)"})
    hash = fields.String(metadata={"description": "SHA-256 (hex) of prev_hash followed by payload, as UTF-8"})


class AuditPageSchema(Schema):
    events = fields.List(fields.Nested(AuditEventSchema))
    next_cursor = fields.Integer(
        allow_none=True, metadata={"description": "Pass as ?cursor= for the next page; null on the last"}
    )
    limit = page_size_used(maximum=1000)
