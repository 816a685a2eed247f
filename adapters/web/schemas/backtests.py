"""Backtests on the wire: a rule set document and a period in, a summary and changed orders out."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, pre_dump, validate

from adapters.web.cursors import NOT_A_CURSOR, cursor_metadata
from adapters.web.schemas.decisions import FullMatch, ReasonSchema
from adapters.web.schemas.instants import UtcInstant
from adapters.web.schemas.money import Money
from adapters.web.schemas.pages import PageSize, page_size_used
from adapters.web.schemas.rule_documents import rule_document
from creditctl.domain.money import from_fen

OUTCOMES = ["approve", "defer", "block", "freeze"]


class BacktestRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    rule_set = fields.Dict(
        required=True,
        metadata=rule_document("A rule set document, as `creditctl rules export` prints one"),
    )
    start = UtcInstant(
        required=True,
        data_key="from",
        metadata={"description": "Decisions decided at or after (UTC); before `to`"},
    )
    end = UtcInstant(
        required=True, data_key="to", metadata={"description": "...and before (UTC); after `from`"}
    )


class PeriodRequestSchema(Schema):
    """The period of a backtest of a stored rule set (draft or version): its document is the one replayed."""

    class Meta:
        unknown = RAISE

    start = UtcInstant(
        required=True,
        data_key="from",
        metadata={"description": "Decisions decided at or after (UTC); before `to`"},
    )
    end = UtcInstant(
        required=True, data_key="to", metadata={"description": "...and before (UTC); after `from`"}
    )


STATUSES = ["queued", "running", "succeeded", "failed"]


class TallySchema(Schema):
    """Dumps a domain Tally (money counted in fen)."""

    counts = fields.Dict(
        required=True, keys=fields.String(validate=validate.OneOf(OUTCOMES)), values=fields.Integer()
    )
    approved = Money(required=True, metadata={"description": "Money approved (CNY)"})

    @pre_dump
    def _money(self, tally: Any, **_: Any) -> dict[str, Any]:
        return {"counts": dict(tally.counts), "approved": from_fen(tally.approved_fen)}


class ProgressSchema(Schema):
    replayed = fields.Integer(required=True, metadata={"description": "Decisions replayed so far"})
    total = fields.Integer(
        required=True,
        allow_none=True,
        metadata={
            "description": "The decisions of the period when the run started (null while queued); once "
            "it succeeded, the decisions it replayed"
        },
    )


def _nullable_time(description: str) -> fields.DateTime:
    return fields.DateTime(required=True, allow_none=True, metadata={"description": description})


class BacktestSchema(Schema):
    """A run, whatever its status: every member is always there (null where the status has none)."""

    id = fields.String(required=True)
    status = fields.String(
        required=True,
        metadata={
            "enum": STATUSES,
            "description": "queued (waiting for a worker), running, then succeeded or failed (see error)",
        },
    )
    progress = fields.Nested(ProgressSchema, required=True)
    rule_set_name = fields.String(required=True)
    start = fields.DateTime(required=True, data_key="from")
    end = fields.DateTime(required=True, data_key="to")
    requested_by = fields.String(required=True)
    created_at = fields.DateTime(required=True, metadata={"description": "When it was asked for"})
    started_at = _nullable_time("When a worker started it (null while queued)")
    finished_at = _nullable_time("When it ended, succeeded or failed (null before)")
    decisions = fields.Integer(required=True, metadata={"description": "Stored decisions replayed (so far)"})
    changed = fields.Integer(required=True, metadata={"description": "Orders whose outcome changes (so far)"})
    missing_facts = fields.Integer(
        required=True,
        metadata={"description": "Decisions without a fact the rule set reads (unknown to its rules)"},
    )
    missing_by_fact = fields.Dict(required=True, keys=fields.String(), values=fields.Integer())
    params_source = fields.String(required=True, metadata={"description": "Which parameters the replay used"})
    before = fields.Nested(TallySchema, required=True, metadata={"description": "The stored outcomes"})
    after = fields.Nested(
        TallySchema, required=True, metadata={"description": "Under the rule set (so far, while it runs)"}
    )
    error = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": 'Why it failed ("worker stopped: ..." when its worker did); else null'},
    )


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
        allow_none=True, metadata={"description": "Pass as ?cursor= for the next page; null on the last"}
    )
    limit = page_size_used(maximum=1000)


CHANGES_CURSOR = r"^[0-9]{0,18}$"  # a change's sequence number in its run (empty: the first page)


class ChangesQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    cursor = fields.String(
        load_default=None,
        validate=FullMatch(CHANGES_CURSOR, error=NOT_A_CURSOR),
        metadata=cursor_metadata(CHANGES_CURSOR, "the run's order"),
    )
    limit = PageSize(maximum=1000)
    format = fields.String(
        load_default=None,
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "json or csv; without it the Accept header chooses (JSON by default)"},
    )
