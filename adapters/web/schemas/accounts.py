"""Account views and administrative actions on the wire."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from adapters.web.cursors import NOT_A_CURSOR, POSITION_PATTERN, cursor_metadata
from adapters.web.schemas.decisions import BalanceSchema, FullMatch, HoldSchema
from adapters.web.schemas.money import Money
from adapters.web.schemas.pages import PageSize, page_size_used
from adapters.web.schemas.text import not_blank


class FreezeRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata=not_blank(example="Payment dispute under review"),
    )


class HoldPageQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    status = fields.List(
        fields.String(validate=validate.OneOf(["open", "settled", "released", "expired"])),
        load_default=None,
        metadata={"description": "Only holds in these statuses (repeat the parameter for several)"},
    )
    limit = PageSize(maximum=500)
    cursor = fields.String(
        load_default=None,
        validate=FullMatch(POSITION_PATTERN, error=NOT_A_CURSOR),
        metadata=cursor_metadata(POSITION_PATTERN, "newest first"),
    )


class HoldPageSchema(Schema):
    items = fields.List(
        fields.Nested(HoldSchema),
        metadata={
            "description": "Newest first, each with its events (held, settled parts, released, expired)"
        },
    )
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})
    limit = page_size_used(maximum=500)


class AccountSchema(Schema):
    customer_code = fields.String(attribute="account.customer_code")
    sale_group_code = fields.String(attribute="account.sale_group_code")
    sale_group_name = fields.String(attribute="account.sale_group_name")
    payer_account_code = fields.String(attribute="account.payer_account_code")
    payer_account_name = fields.String(attribute="account.payer_account_name")
    status = fields.Function(lambda v: v.account.status.value, metadata={"enum": ["active", "frozen"]})
    frozen_reason = fields.String(attribute="account.frozen_reason", allow_none=True)
    frozen_at = fields.DateTime(attribute="account.frozen_at", allow_none=True)
    balance = fields.Nested(BalanceSchema, attribute="account.snapshot", allow_none=True)
    balance_age_s = fields.Integer(allow_none=True)
    balance_usable = fields.Boolean()
    exposure = Money()
    available = Money(allow_none=True)
    credit_limit = Money()
    credit_grade = fields.String()
    open_holds = fields.List(
        fields.Nested(HoldSchema),
        metadata={
            "description": "Holds with something still held (not yet settled in full, released or "
            "expired); `remaining` says how much"
        },
    )
    settled_holds_counting = fields.List(
        fields.Nested(HoldSchema),
        metadata={
            "description": "Holds with settled parts that still count: Haier debited them, and no "
            "balance as of a moment after that part's settlement has arrived yet (see settlements)"
        },
    )
    rule_set = fields.Function(
        lambda v: {
            "id": v.rule_set.id,
            "version": v.rule_set.version,
            "name": v.rule_set.name,
            "why": v.rule_set_why.value,
        },
        metadata={
            "type": "object",
            "description": "The rule set deciding for this account and why: 'assigned to the account', "
            "'assigned to the customer' or 'the global default'",
        },
    )
    params = fields.Function(
        lambda v: v.overrides,
        metadata={"type": "object", "description": "This account's parameter overrides (PUT .../params)"},
    )
