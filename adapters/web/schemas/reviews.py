"""The review queue and freezes on the wire."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from adapters.web.cursors import NOT_A_CURSOR, POSITION_PATTERN, cursor_metadata
from adapters.web.schemas.decisions import _CODE, DecisionSchema, FullMatch
from adapters.web.schemas.money import Money
from adapters.web.schemas.pages import PageSize, page_size_used
from adapters.web.schemas.text import no_control_chars, plain_text

_REASON_CODE = r"^[A-Z][A-Z0-9_]{0,63}$"


class QueueFilterSchema(Schema):
    """Filters of the queue (all optional, combined with and)."""

    class Meta:
        unknown = RAISE

    customer_code = fields.String(validate=FullMatch(_CODE, error="Not a customer code."))
    sale_group_code = fields.String(
        validate=FullMatch(_CODE, error="Not a sales group code."),
        metadata={"description": "With customer_code: one account"},
    )
    reason = fields.String(
        validate=validate.Regexp(_REASON_CODE, error="Not a reason code."),
        metadata={"example": "INSUFFICIENT_BALANCE", "description": "One of the order's reason codes"},
    )
    min_age_s = fields.Integer(
        validate=validate.Range(min=0, max=10**9), metadata={"description": "Deferred at least this long"}
    )
    max_age_s = fields.Integer(
        validate=validate.Range(min=0, max=10**9), metadata={"description": "Deferred at most this long"}
    )
    min_amount = Money(positive=False)
    max_amount = Money(positive=False)


class QueueQuerySchema(QueueFilterSchema):
    limit = PageSize(maximum=500)
    cursor = fields.String(
        load_default=None,
        validate=FullMatch(POSITION_PATTERN, error=NOT_A_CURSOR),
        metadata=cursor_metadata(POSITION_PATTERN, "oldest deferral first"),
    )


class QueuePageSchema(Schema):
    items = fields.List(fields.Nested(DecisionSchema), metadata={"description": "Oldest deferral first"})
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})
    limit = page_size_used(maximum=500)


class ReviewActionSchema(Schema):
    class Meta:
        unknown = RAISE

    reason = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=500), no_control_chars],
        metadata=plain_text(example="Customer confirmed a transfer arriving today"),
    )


class ReleaseActionSchema(ReviewActionSchema):
    override = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Release even though it takes available + credit limit below zero (an "
            "overdraft): only a key not limited to customers whose approval limit covers the overdraft"
        },
    )


class RecheckActionSchema(Schema):
    class Meta:
        unknown = RAISE

    reason = fields.String(
        load_default=None,
        allow_none=True,
        validate=[validate.Length(min=1, max=500), no_control_chars],
        metadata=plain_text(),
    )


class BatchRecheckSchema(Schema):
    class Meta:
        unknown = RAISE

    filter = fields.Nested(
        QueueFilterSchema, load_default=dict, metadata={"description": "Which orders (none: the whole queue)"}
    )
    reason = fields.String(
        load_default=None,
        allow_none=True,
        validate=[validate.Length(min=1, max=500), no_control_chars],
        metadata=plain_text("Why (recorded on each order)"),
    )


class BatchRecheckResultSchema(Schema):
    rechecked = fields.Integer()
    by_outcome = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "approve, defer, block, freeze, expired, decided_meanwhile"},
    )
    more = fields.Boolean(metadata={"description": "More orders matched than one call re-checks: call again"})


class FreezeSchema(Schema):
    id = fields.Integer()
    reason = fields.String()
    frozen_by = fields.String(metadata={"example": "admin:ops-lead"})
    frozen_at = fields.DateTime()
    lifted_at = fields.DateTime(allow_none=True)
    lifted_by = fields.String(allow_none=True)
    lifted_how = fields.Function(
        lambda f: f.lifted_how.value if f.lifted_how else None,
        metadata={"enum": ["manual", "rule", "replaced", None], "nullable": True},
    )
    lift_reason = fields.String(allow_none=True)


class FreezeListSchema(Schema):
    freezes = fields.List(fields.Nested(FreezeSchema), metadata={"description": "Newest first"})
