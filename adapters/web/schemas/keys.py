"""An API key as its holder sees it: who it is issued to and what it may do (never the secret)."""

from __future__ import annotations

from marshmallow import Schema, fields

from adapters.web.schemas.money import Money


class KeySchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    owner = fields.String(
        required=True,
        metadata={"description": "The person or system the key is issued to; four eyes compares owners"},
    )
    role = fields.Function(
        lambda k: k.role.value, required=True, metadata={"enum": ["orders", "admin", "auditor", "finance"]}
    )
    customers = fields.Function(
        lambda k: None if k.customers is None else sorted(k.customers),
        required=True,
        metadata={
            "type": "array",
            "items": {"type": "string"},
            "nullable": True,
            "description": "The customers the key is limited to; null: every customer",
        },
    )
    approval_limit = Money(
        required=True,
        allow_none=True,
        metadata={"description": "The largest deferred order it may release; null: none"},
    )
    created_at = fields.DateTime(required=True)
