"""The seed system's balance answer on the wire, for existing front ends: camelCase, success flag, and
errors as a message string with a code beside it (never a problem document)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from adapters.web.schemas.money import Money


class SeedQuerySchema(Schema):
    customer_code = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "the sold-to code of the customer at Haier", "example": "8800633175"},
    )
    sale_group_code = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "the sales group; without it, the customer's first payer account"},
    )


class SeedAccountSchema(Schema):
    payerAccountBalance = Money(
        required=True, metadata={"description": "the stored balance (CNY), a decimal string"}
    )
    payerAccountName = fields.String(required=True)
    payerAccountCode = fields.String(required=True)
    saleGroupCode = fields.String(required=True)
    saleGroupName = fields.String(required=True)
    fetchedAt = fields.DateTime(
        required=True, metadata={"description": "when this balance was read from Haier (UTC)"}
    )
    source = fields.String(required=True, metadata={"description": '"fake" or "haier:<config name>"'})


class SeedBalanceSchema(Schema):
    success = fields.Boolean(required=True, metadata={"enum": [True]})
    data = fields.Nested(
        SeedAccountSchema, required=True, metadata={"description": "the payer account asked for"}
    )
    accounts = fields.List(
        fields.Nested(SeedAccountSchema),
        required=True,
        metadata={"description": "every payer account of the customer"},
    )


class SeedErrorSchema(Schema):
    success = fields.Boolean(required=True, metadata={"enum": [False]})
    error = fields.String(
        required=True,
        metadata={
            "description": "a message for a person, to show as it is",
            "example": "unknown customer '8800999999'",
        },
    )
    code = fields.String(
        required=True,
        metadata={
            "description": "what went wrong, for code: UNAUTHENTICATED, FORBIDDEN, INVALID_REQUEST, "
            "UNKNOWN_CUSTOMER, UNKNOWN_SALE_GROUP, an upstream code (AUTH_FAILED, TOKEN_EXPIRED, "
            "INVALID_CREDENTIALS, BALANCE_QUERY_FAILED, UPSTREAM_TIMEOUT, UPSTREAM_MALFORMED, "
            "RATE_LIMITED, SERVICE_UNAVAILABLE, CIRCUIT_OPEN) or INTERNAL_ERROR",
            "example": "UNKNOWN_CUSTOMER",
        },
    )
