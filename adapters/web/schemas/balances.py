"""Balances on the wire: every payer account of a customer (the seed system's answer: compat.py)."""

from __future__ import annotations

from marshmallow import Schema, fields

from adapters.web.schemas.money import Money


class PayerAccountSchema(Schema):
    sale_group_code = fields.String()
    sale_group_name = fields.String()
    payer_account_code = fields.String()
    payer_account_name = fields.String()
    status = fields.Function(lambda a: a.status.value)
    balance = Money(attribute="snapshot.amount", allow_none=True)
    fetched_at = fields.DateTime(attribute="snapshot.fetched_at", allow_none=True)
    source = fields.String(attribute="snapshot.source", allow_none=True)


class CustomerBalancesSchema(Schema):
    customer_code = fields.String()
    accounts = fields.List(fields.Nested(PayerAccountSchema))


class BalancesQuerySchema(Schema):
    refresh = fields.Boolean(load_default=False, metadata={"description": "ask the upstream first"})
