"""Payments, credit profiles and credit limit requests on the wire."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from adapters.web.cursors import KEY_MAX_LENGTH, KEY_PATTERN, NOT_A_CURSOR, cursor_metadata
from adapters.web.schemas.decisions import FullMatch
from adapters.web.schemas.instants import UtcInstant
from adapters.web.schemas.money import MONEY_PATTERN, Money
from adapters.web.schemas.pages import PageSize, page_size_used
from adapters.web.schemas.text import NUL, WHITESPACE, not_blank

RATIO = {"type": "string", "format": "decimal", "example": "0.9500"}
# Money from 0.00 (the server refuses a negative amount here; a "-0.00" too, in the document).
NON_NEGATIVE_MONEY = MONEY_PATTERN.replace("^-?", "^", 1)
# Payment dates are from 2000-01-01 (EARLIEST_DATE) to 2100-12-31 (LATEST_DUE_DATE; a paid date to today),
# with format: date, which rules out a day a month does not have.
PAYMENT_DATE = r"^(?:20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}$"
# 1 to 64 characters, neither end whitespace (what str.strip() removes).
INVOICE_ID = rf"^[^{WHITESPACE}{NUL}](?:[^{NUL}]{{0,62}}[^{WHITESPACE}{NUL}])?$"


class PaymentSchema(Schema):
    """One invoice and what was paid on it so far (cumulative), with the date of the latest payment."""

    class Meta:
        unknown = RAISE

    invoice_id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={
            "pattern": INVOICE_ID,
            "description": "No whitespace at either end; unique in a batch (the same invoice listed twice "
            "is refused unless with the same figures)",
        },
    )
    amount = Money(required=True, positive=True, metadata={"description": "Invoice amount (CNY)"})
    due_date = fields.Date(
        required=True, metadata={"pattern": PAYMENT_DATE, "description": "From 2000-01-01 to 2100-12-31"}
    )
    paid_amount = Money(
        load_default=None,
        dump_default=None,
        metadata={
            "pattern": NON_NEGATIVE_MONEY,
            "description": "Paid so far, cumulative (default 0.00); at most amount. Above 0.00 it needs "
            "paid_date; at 0.00 (or omitted) paid_date must be null or omitted",
        },
    )
    paid_date = fields.Date(
        allow_none=True,
        load_default=None,
        metadata={
            "pattern": PAYMENT_DATE,
            "description": "Date of the latest payment: from 2000-01-01 to today (UTC, the database's "
            "clock); given exactly when paid_amount is above 0.00",
        },
    )


class PaymentBatchSchema(Schema):
    class Meta:
        unknown = RAISE

    payments = fields.List(
        fields.Nested(PaymentSchema),
        required=True,
        validate=validate.Length(min=1, max=1000),
        metadata={"description": "1 to 1,000 records; all are stored or none"},
    )


class PaymentResultSchema(Schema):
    invoice_id = fields.String()
    result = fields.String(metadata={"enum": ["created", "updated", "unchanged"]})


class PaymentBatchResultSchema(Schema):
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    results = fields.List(fields.Nested(PaymentResultSchema))


class PaymentPageQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    limit = PageSize(maximum=500)
    cursor = fields.String(
        load_default=None,
        validate=[validate.Length(max=KEY_MAX_LENGTH), FullMatch(KEY_PATTERN, error=NOT_A_CURSOR)],
        metadata=cursor_metadata(KEY_PATTERN, "by invoice id"),
    )


class PaymentRecordSchema(PaymentSchema):
    """A stored payment record: the request's fields, every one of them in each answer."""


class PaymentPageSchema(Schema):
    items = fields.List(fields.Nested(PaymentRecordSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})
    limit = page_size_used(maximum=500)


class BaseLimitSchema(Schema):
    class Meta:
        unknown = RAISE

    base_limit = Money(
        required=True,
        allow_none=True,
        metadata={
            "pattern": NON_NEGATIVE_MONEY,
            "description": "The account's base credit limit, from 0.00; null: the rule parameter "
            "base_credit_limit",
        },
    )
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata=not_blank(example="annual review"),
    )


class GradeBandSchema(Schema):
    grade = fields.String()
    min_on_time_ratio = fields.Decimal(as_string=True, allow_none=True, metadata=RATIO)
    max_overdue_days = fields.Integer(allow_none=True)


class ProfileChangeSchema(Schema):
    at = fields.DateTime()
    trigger = fields.String(metadata={"enum": ["payments", "base_limit", "limit_request", "daily"]})
    by = fields.String()
    reason = fields.String(allow_none=True)
    grade = fields.String()
    limit = Money()
    inputs = fields.Dict(
        metadata={"description": "Facts, base, multiplier, average balance, cap, as strings"}
    )


def _terms(v: Any) -> dict[str, Any]:
    t = v.terms
    return {
        "base": t.base,
        "base_source": t.base_source,
        "grade": t.grade,
        "multiplier": t.multiplier,
        "graded_limit": t.graded,
        "cap_factor": t.cap_factor,
        "average_balance": t.average_balance,
        "cap": t.cap,
        "profile_limit": t.profile_limit,
        "temporary_limit": t.temporary,
        "credit_limit": t.limit,
    }


class TermsSchema(Schema):
    base = Money()
    base_source = fields.String(metadata={"enum": ["account", "rule_set"]})
    grade = fields.String(metadata={"enum": ["A", "B", "C", "D"]})
    multiplier = fields.Decimal(as_string=True, metadata=RATIO)
    graded_limit = Money(metadata={"description": "base x multiplier, rounded down to the fen"})
    cap_factor = fields.Decimal(as_string=True, metadata=RATIO)
    average_balance = Money(allow_none=True)
    cap = Money(allow_none=True, metadata={"description": "cap_factor x average_balance; null: no cap"})
    profile_limit = Money(metadata={"description": "graded_limit, at most cap"})
    temporary_limit = Money(allow_none=True, metadata={"description": "An approved request, while it runs"})
    credit_limit = Money(metadata={"description": "max(profile_limit, temporary_limit): credit.limit"})


class PaymentFactsSchema(Schema):
    max_overdue_days = fields.Integer()
    on_time_ratio = fields.Decimal(as_string=True, metadata=RATIO)
    overdue_amount = Money()
    invoices_judged = fields.Integer(attribute="judged")
    invoices_paid_on_time = fields.Integer(attribute="on_time")


class CreditProfileSchema(Schema):
    customer_code = fields.String(attribute="account.customer_code")
    sale_group_code = fields.String(attribute="account.sale_group_code")
    computed_at = fields.DateTime(attribute="now")
    payment = fields.Nested(PaymentFactsSchema)
    grade_bands = fields.List(fields.Nested(GradeBandSchema), attribute="bands")
    matched_band = fields.Function(lambda v: v.terms.band.grade, metadata={"type": "string"})
    base_limit_reason = fields.String(attribute="account.credit.base_limit_reason", allow_none=True)
    temporary_until = fields.DateTime(attribute="account.credit.temporary_until", allow_none=True)
    terms = fields.Function(lambda v: TermsSchema().dump(_terms(v)), metadata={"type": "object"})
    history = fields.List(fields.Nested(ProfileChangeSchema))


class LimitRequestBodySchema(Schema):
    class Meta:
        unknown = RAISE

    amount = Money(required=True, positive=True, metadata={"description": "The limit to raise to (CNY)"})
    until = UtcInstant(
        required=True,
        metadata={
            "description": "When it ends (UTC ISO 8601): in the future (the database's clock), at most "
            "366 days ahead (a longer line is a base limit)"
        },
    )
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata=not_blank(example="seasonal stock"),
    )


class LimitDecisionBodySchema(Schema):
    class Meta:
        unknown = RAISE

    note = fields.String(load_default=None, validate=validate.Length(max=500))


class LimitRequestSchema(Schema):
    id = fields.String()
    customer_code = fields.String()
    sale_group_code = fields.String()
    amount = Money()
    until = fields.DateTime()
    reason = fields.String()
    status = fields.String(metadata={"enum": ["pending", "approved", "rejected", "superseded", "expired"]})
    requested_by = fields.String()
    requested_at = fields.DateTime()
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    note = fields.String(allow_none=True)


class LimitRequestListSchema(Schema):
    items = fields.List(fields.Nested(LimitRequestSchema))


class LimitRequestQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    status = fields.String(
        load_default=None,
        validate=validate.OneOf(["pending", "approved", "rejected", "superseded", "expired"]),
    )
