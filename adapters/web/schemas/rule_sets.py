"""Rule sets, their publication, assignments, overrides and simulations on the wire."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from adapters.web.schemas.instants import UtcInstant
from adapters.web.schemas.money import Money
from adapters.web.schemas.params import params_metadata
from adapters.web.schemas.rule_documents import rule_document

_DOCUMENT = {
    "type": "object",
    "description": "A rule document: {name, params, auto_unfreeze?, rules}; see the README's catalogue. "
    "Its known params have the bounds the Params schema states (published: refused outside them).",
}


# Rule set ids are 32-bit in the database (and in the /v1/rule-sets/{id} routes); a larger one is refused.
MAX_RULE_SET_ID = 2147483647


def _rule_set_id(description: str, **kwargs: Any) -> fields.Integer:
    return fields.Integer(
        validate=validate.Range(min=1, max=MAX_RULE_SET_ID),
        metadata={"description": description},
        **kwargs,
    )


def _reason() -> fields.String:
    return fields.String(
        required=True, validate=validate.Length(min=1, max=500), metadata={"example": "Q4 tightening"}
    )


class RuleSetSchema(Schema):
    id = fields.Integer(attribute="record.id")
    name = fields.String(attribute="record.name")
    version = fields.Integer(
        attribute="record.version", allow_none=True, metadata={"description": "null: a draft"}
    )
    status = fields.Function(
        lambda v: v.status.value, metadata={"enum": ["draft", "published", "active", "retired"]}
    )
    created_at = fields.DateTime(attribute="record.created_at")
    created_by = fields.String(attribute="record.created_by")
    updated_at = fields.DateTime(attribute="record.updated_at")
    published_at = fields.DateTime(attribute="record.published_at", allow_none=True)
    published_by = fields.String(attribute="record.published_by", allow_none=True)
    reason = fields.String(attribute="record.reason", allow_none=True)
    effective_at = fields.DateTime(
        attribute="record.effective_at",
        allow_none=True,
        metadata={"description": "When it becomes the default (database clock); null: once published"},
    )
    rolled_back_from = fields.Integer(attribute="record.rolled_back_from", allow_none=True)


class RuleSetDetailSchema(RuleSetSchema):
    document = fields.Raw(attribute="record.document", metadata=_DOCUMENT)


class RuleSetListSchema(Schema):
    rule_sets = fields.List(fields.Nested(RuleSetSchema))


class DraftSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    document = fields.Dict(
        load_default=None,
        metadata=rule_document(
            "The draft's rules (see the README's catalogue); omitted on POST: a copy of the active set's. "
            "A draft is kept as sent: publishing it (and simulating or backtesting it) needs it valid"
        ),
    )


class DraftReplacementSchema(DraftSchema):
    """PUT replaces the draft's name and document: both are sent (a missing document stored {} before)."""

    document = fields.Dict(
        required=True,
        metadata=rule_document(
            "The draft's rules (see the README's catalogue). A draft is kept as sent: publishing it (and "
            "simulating or backtesting it) needs it valid"
        ),
    )


class PublishSchema(Schema):
    class Meta:
        unknown = RAISE

    reason = _reason()
    effective_at = UtcInstant(
        load_default=None, metadata={"description": "Become the default at this time (UTC); default: now"}
    )


class RollbackSchema(Schema):
    class Meta:
        unknown = RAISE

    reason = _reason()


class RuleProblemSchema(Schema):
    pointer = fields.String(metadata={"description": "RFC 6901 pointer into the document"})
    message = fields.String()


class ValidationSchema(Schema):
    valid = fields.Boolean()
    errors = fields.List(fields.Nested(RuleProblemSchema))


class DiffQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    from_ = _rule_set_id("rule set id", required=True, data_key="from")
    to = _rule_set_id("rule set id", required=True)


class DiffSchema(Schema):
    rules = fields.Dict(metadata={"description": "added, removed (rules), changed ({id, before, after})"})
    params = fields.Dict(
        metadata={"description": "added, removed ({name: value}), changed ({name: {before, after}})"}
    )
    auto_unfreeze_changed = fields.Boolean()


class AssignSchema(Schema):
    class Meta:
        unknown = RAISE

    rule_set_id = _rule_set_id("a published version's id", required=True)
    reason = _reason()


class AssignmentSchema(Schema):
    customer_code = fields.String()
    sale_group_code = fields.Function(
        lambda a: a.sale_group_code or None, metadata={"type": "string", "nullable": True}
    )
    rule_set_id = fields.Integer()
    assigned_by = fields.String()
    assigned_at = fields.DateTime()
    reason = fields.String()


class ParamsSchema(Schema):
    class Meta:
        unknown = RAISE

    params = fields.Dict(
        required=True,
        metadata=params_metadata(
            "Known params only: integers for *_s/*_days, decimal strings otherwise; {} clears."
        ),
    )


MAX_DAYS = 36500  # a hundred years: more is a mistake, and far more is beyond what a date can hold
MAX_AGE_S = 10**9  # about 31 years


class HypotheticalPaymentSchema(Schema):
    class Meta:
        unknown = RAISE

    max_overdue_days = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_DAYS))
    on_time_ratio = fields.Decimal(
        load_default=None,
        allow_none=True,
        places=4,
        as_string=True,
        validate=validate.Range(min=0, max=1),  # a lambda's False refuses nothing in marshmallow 4
        metadata={"description": "0..1; default 1", "minimum": 0, "maximum": 1},
    )
    overdue_amount = Money(load_default=Decimal("0.00"))


class HypotheticalAccountSchema(Schema):
    class Meta:
        unknown = RAISE

    balance = Money(required=True, allow_none=True, metadata={"description": "null: no balance known"})
    balance_age_s = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_AGE_S))
    exposure = Money(load_default=Decimal("0.00"))
    params = fields.Dict(load_default=dict, metadata=params_metadata("Overrides, as on a real account."))
    payment = fields.Nested(HypotheticalPaymentSchema, load_default=None)
    frozen = fields.Boolean(load_default=False)
    age_days = fields.Integer(load_default=365, validate=validate.Range(min=0, max=MAX_DAYS))


class SimulateSchema(Schema):
    class Meta:
        unknown = RAISE

    amount = Money(required=True, positive=True)
    sale_group_code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    customer_code = fields.String(
        load_default=None,
        metadata={
            "description": "A real account: its stored snapshot, exposure, params. This or `account` is "
            "required (with both, `account` is used)"
        },
    )
    channel = fields.String(load_default=None)
    account = fields.Nested(
        HypotheticalAccountSchema,
        load_default=None,
        metadata={"description": "Instead of customer_code (this or customer_code is required)"},
    )


def dump_simulation(sim: Any) -> dict[str, Any]:
    """The outcome, reasons and the full trace: each rule, matched or not, the values it read."""
    a = sim.assessment
    return {
        "outcome": a.outcome.value,
        "reasons": [{"rule": r.rule, "reason": r.reason, "message": r.message} for r in a.reasons],
        "shortfall": a.shortfall,
        "rule_set_version": sim.rule_set_version,
        "facts": a.facts,
        "trace": [
            {
                "rule": t.rule_id,
                "matched": t.matched,
                "enabled": t.enabled,
                "reads": dict(t.reads),
                "params": dict(t.params),
            }
            for t in sim.evaluation.trace
        ],
    }


class SimulationSchema(Schema):
    outcome = fields.String(metadata={"enum": ["approve", "defer", "block", "freeze"]})
    reasons = fields.List(fields.Dict())
    shortfall = Money(allow_none=True)
    rule_set_version = fields.Integer(allow_none=True)
    facts = fields.Dict()
    trace = fields.List(fields.Dict())
