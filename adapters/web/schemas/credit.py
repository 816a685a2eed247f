"""Payments, credit profiles and credit limit requests on the wire."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from adapters.web.schemas.instants import UtcInstant
from adapters.web.schemas.money import Money

RATIO = {"type": "string", "format": "decimal", "example": "0.9500"}
NOT_BLANK = {"pattern": r"\S", "description": "Not blank"}


class PaymentSchema(Schema):
    """One invoice and what was paid on it so far (cumulative), with the date of the latest payment."""

    class Meta:
        unknown = RAISE

    invoice_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    amount = Money(required=True, positive=True, metadata={"description": "Invoice amount (CNY)"})
    due_date = fields.Date(required=True)
    paid_amount = Money(
        load_default=None,
        dump_default=None,
        metadata={"description": "Paid so far, cumulative (default 0.00); at most amount"},
    )
    paid_date = fields.Date(
        allow_none=True, load_default=None, metadata={"description": "Date of the latest payment"}
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

    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    cursor = fields.String(
        load_default=None,
        validate=validate.Length(max=200),
        metadata={"description": "next_cursor of a page"},
    )


class PaymentRecordSchema(PaymentSchema):
    """A stored payment record: the request's fields, every one of them in each answer."""


class PaymentPageSchema(Schema):
    items = fields.List(fields.Nested(PaymentRecordSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})


class BaseLimitSchema(Schema):
    class Meta:
        unknown = RAISE

    base_limit = Money(
        required=True,
        allow_none=True,
        metadata={
            "description": "The account's base credit limit; null: the rule parameter base_credit_limit"
        },
    )
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata=NOT_BLANK | {"example": "annual review"},
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
        metadata={"description": "When it ends (UTC ISO 8601): in the future (the database's clock)"},
    )
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata=NOT_BLANK | {"example": "seasonal stock"},
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
