"""Balances on the wire: every payer account of a customer, and the seed system's compatible answer."""

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


class CompatQuerySchema(Schema):
    customer_code = fields.String(required=True)
    sale_group_code = fields.String(load_default=None)


class SeedBalanceSchema(Schema):
    """One payer account in the seed system's words (documentation of the compatible answer)."""

    payerAccountBalance = fields.String(metadata={"example": "1999.98"})  # camelCase: the seed system's names
    payerAccountName = fields.String()
    payerAccountCode = fields.String()
    saleGroupCode = fields.String()
    saleGroupName = fields.String()
    fetchedAt = fields.String(metadata={"format": "date-time"})
    source = fields.String()


class SeedAnswerSchema(Schema):
    success = fields.Boolean(metadata={"enum": [True]})
    data = fields.Nested(SeedBalanceSchema)
    accounts = fields.List(fields.Nested(SeedBalanceSchema))


class SeedErrorSchema(Schema):
    code = fields.String(metadata={"example": "UNKNOWN_CUSTOMER"})
    message = fields.String()


class SeedFailureSchema(Schema):
    success = fields.Boolean(metadata={"enum": [False]})
    error = fields.Nested(SeedErrorSchema)
