"""Customers on the wire: every known customer, its payer accounts and where its balance comes from."""

from __future__ import annotations

from marshmallow import Schema, fields

from adapters.web.schemas.balances import PayerAccountSchema


class CustomerSchema(Schema):
    customer_code = fields.String(
        metadata={"description": "the sold-to code at Haier", "example": "8800633175"}
    )
    name = fields.String(metadata={"description": 'as given to `creditctl customer CODE --name`; "" if none'})
    registered = fields.Boolean(
        metadata={"description": "stored in creditctl (false: only the balance provider names it so far)"}
    )
    balance_source = fields.String(
        allow_none=True,
        metadata={
            "description": 'where its balance comes from now: "fake" or "haier:<config name>"; '
            "null when the active provider does not serve it",
            "example": "haier:main",
        },
    )
    accounts = fields.List(
        fields.Nested(PayerAccountSchema),
        metadata={"description": "its payer accounts as stored; balance and fetched_at null until fetched"},
    )


class CustomerListSchema(Schema):
    customers = fields.List(fields.Nested(CustomerSchema))
