"""Backtests on the wire: a rule set document and a period in, a summary and changed orders out."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from adapters.web.schemas.decisions import ReasonSchema
from adapters.web.schemas.instants import UtcInstant
from adapters.web.schemas.money import Money
from creditctl.domain.money import from_fen

OUTCOMES = ["approve", "defer", "block", "freeze"]


class BacktestRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    rule_set = fields.Dict(
        required=True,
        metadata={"description": "A rule set document, as `creditctl rules export` prints one"},
    )
    start = UtcInstant(
        required=True,
        data_key="from",
        metadata={"description": "Decisions decided at or after (UTC); before `to`"},
    )
    end = UtcInstant(required=True, data_key="to", metadata={"description": "...and before (UTC)"})


class PeriodRequestSchema(Schema):
    """The period of a backtest of a stored rule set (draft or version): its document is the one replayed."""

    class Meta:
        unknown = RAISE

    start = UtcInstant(
        required=True,
        data_key="from",
        metadata={"description": "Decisions decided at or after (UTC); before `to`"},
    )
    end = UtcInstant(required=True, data_key="to", metadata={"description": "...and before (UTC)"})


def _tally(tally: Any) -> dict[str, Any]:
    return {"counts": dict(tally.counts), "approved": str(from_fen(tally.approved_fen))}


class TallySchema(Schema):
    counts = fields.Dict(keys=fields.String(validate=validate.OneOf(OUTCOMES)), values=fields.Integer())
    approved = Money(metadata={"description": "Money approved (CNY)"})


class BacktestSchema(Schema):
    id = fields.String()
    status = fields.String(metadata={"enum": ["running", "done", "failed"]})
    rule_set_name = fields.String()
    start = fields.DateTime(data_key="from")
    end = fields.DateTime(data_key="to")
    requested_by = fields.String()
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    decisions = fields.Integer(metadata={"description": "Stored decisions replayed"})
    changed = fields.Integer(metadata={"description": "Orders whose outcome changes"})
    missing_facts = fields.Integer(
        metadata={"description": "Decisions without a fact the rule set reads (unknown to its rules)"}
    )
    missing_by_fact = fields.Dict(keys=fields.String(), values=fields.Integer())
    params_source = fields.String(metadata={"description": "Which parameters the replay used"})
    before = fields.Function(lambda run: _tally(run.before), metadata={"type": "object"})
    after = fields.Function(lambda run: _tally(run.after), metadata={"type": "object"})
    error = fields.String(allow_none=True)


class ChangedOrderSchema(Schema):
    seq = fields.Integer()
    order_id = fields.String()
    customer_code = fields.String()
    sale_group_code = fields.String()
    amount = Money()
    before = fields.String(metadata={"enum": OUTCOMES})
    after = fields.String(metadata={"enum": OUTCOMES})
    reasons = fields.List(fields.Nested(ReasonSchema), metadata={"description": "Why, under the rule set"})


class ChangesPageSchema(Schema):
    changes = fields.List(fields.Nested(ChangedOrderSchema))
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "Pass as ?cursor= for the next page"}
    )


class ChangesQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    cursor = fields.String(load_default=None, validate=validate.Length(max=18))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    format = fields.String(
        load_default=None,
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "json or csv; without it the Accept header chooses (JSON by default)"},
    )
