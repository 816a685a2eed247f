"""Reports on the wire: a period (and a display zone) in; figures out, money as decimal strings.

The views turn a report into plain JSON values with the functions here; the schemas describe them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from creditctl.domain.money import fmt, from_fen
from creditctl.services.reports_decisions import OUTCOMES, DecisionsReport, Tally
from creditctl.services.reports_exposure import MAX_WITHIN_HOURS, ExposureReport
from creditctl.services.reports_upstream import CallFigures, UpstreamReport


def _amount(**kw: Any) -> fields.String:
    return fields.String(metadata={"format": "decimal", "example": "1999.98", **kw})


def _ratio(**kw: Any) -> fields.String:
    meta = {
        "format": "decimal",
        "example": "0.7312",
        "description": "Four places; null when nothing to divide",
    }
    return fields.String(allow_none=True, metadata={**meta, **kw})


class DateOrTime(fields.Field):
    """A date (midnight of that day in the display zone) or a time with its offset."""

    def __init__(self, **kwargs: Any) -> None:
        meta = {"type": "string", "example": "2026-11-30", **kwargs.pop("metadata", {})}
        super().__init__(metadata=meta, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> date | datetime:
        if not isinstance(value, str) or len(value) > 40:
            raise ValidationError(
                "Not a date (2026-11-30) or a time with offset (2026-11-30T08:00:00+08:00)."
            )
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                "Not a date (2026-11-30) or a time with offset (2026-11-30T08:00:00+08:00)."
            ) from None
        if parsed.tzinfo is None:
            raise ValidationError("A time needs its offset (+08:00 or Z).")
        return parsed


FORMAT = fields.String(
    load_default="json", validate=validate.OneOf(["json", "csv"]), metadata={"description": "json or csv"}
)


class PeriodQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    start = DateOrTime(
        data_key="from",
        load_default=None,
        metadata={"description": "Start, inclusive (default: 7 days before `to`, at midnight in `tz`)"},
    )
    end = DateOrTime(
        data_key="to",
        load_default=None,
        metadata={
            "description": "End, exclusive (default: the end of today in `tz`); at most 366 days after `from`"
        },
    )
    tz = fields.String(
        load_default="Asia/Shanghai",
        validate=validate.Length(min=1, max=64),
        metadata={"description": "IANA time zone days are counted in (times stay UTC)"},
    )
    format = FORMAT


class ExposureQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    within_hours = fields.Integer(
        load_default=24,
        validate=validate.Range(min=1, max=MAX_WITHIN_HOURS),
        metadata={"description": "Holds expiring within this many hours from now"},
    )
    format = FORMAT


class OutcomeFiguresSchema(Schema):
    decisions = fields.Integer()
    amount = _amount(description="Money of those orders (CNY)")


class TallySchema(Schema):
    decisions = fields.Integer()
    approval_rate = _ratio(description="Approved decisions / decisions")
    outcomes = fields.Dict(
        keys=fields.String(validate=validate.OneOf(OUTCOMES)), values=fields.Nested(OutcomeFiguresSchema)
    )


class DayTallySchema(TallySchema):
    day = fields.String(metadata={"format": "date", "description": "A day in the display zone"})


class AccountTallySchema(TallySchema):
    customer_code = fields.String()
    sale_group_code = fields.String()


class CustomerTallySchema(TallySchema):
    customer_code = fields.String()


class SaleGroupTallySchema(TallySchema):
    sale_group_code = fields.String()


class ReasonFigureSchema(Schema):
    reason = fields.String()
    decisions = fields.Integer(metadata={"description": "Decisions of that outcome giving this reason"})


class MoneyByOutcomeSchema(Schema):
    approved = _amount()
    deferred = _amount()
    blocked = _amount(description="Blocked and frozen (a freeze blocks its order)")


class DecisionsReportSchema(TallySchema):
    start = fields.String(data_key="from", metadata={"format": "date-time"})
    end = fields.String(data_key="to", metadata={"format": "date-time"})
    tz = fields.String()
    money = fields.Nested(MoneyByOutcomeSchema)
    by_day = fields.List(fields.Nested(DayTallySchema))
    top_reasons = fields.Dict(
        keys=fields.String(validate=validate.OneOf(["block", "defer", "freeze"])),
        values=fields.List(fields.Nested(ReasonFigureSchema)),
    )
    by_account = fields.List(fields.Nested(AccountTallySchema))
    by_customer = fields.List(fields.Nested(CustomerTallySchema))
    by_sale_group = fields.List(fields.Nested(SaleGroupTallySchema))


def tally_json(t: Tally, **keys: str) -> dict[str, Any]:
    return {
        **keys,
        "decisions": t.decisions,
        "approval_rate": None if t.approval_rate is None else str(t.approval_rate),
        "outcomes": {o: {"decisions": t.counts[o], "amount": fmt(t.amount(o))} for o in OUTCOMES},
    }


def decisions_json(r: DecisionsReport) -> dict[str, Any]:
    return {
        **tally_json(r.total),
        "start": r.period.start.isoformat(),
        "end": r.period.end.isoformat(),
        "tz": r.period.tz_name,
        "money": {k: fmt(v) for k, v in r.money.items()},
        "by_day": [tally_json(t, day=d.isoformat()) for d, t in r.by_day],
        "top_reasons": {o: [{"reason": n, "decisions": c} for n, c in rs] for o, rs in r.top_reasons.items()},
        "by_account": [tally_json(t, customer_code=c, sale_group_code=g) for c, g, t in r.by_account],
        "by_customer": [tally_json(t, customer_code=c) for c, t in r.by_customer],
        "by_sale_group": [tally_json(t, sale_group_code=g) for g, t in r.by_sale_group],
    }


class AccountLineSchema(Schema):
    customer_code = fields.String()
    sale_group_code = fields.String()
    status = fields.String(metadata={"enum": ["active", "frozen"]})
    balance = _amount(allow_none=True)
    balance_fetched_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    balance_usable = fields.Boolean()
    exposure = _amount(description="Holds that count now")
    available = fields.String(
        allow_none=True, metadata={"format": "decimal", "description": "balance - exposure - safety margin"}
    )
    credit_limit = _amount()
    credit_grade = fields.String()
    open_holds = fields.Integer()


class ExpiringHoldSchema(Schema):
    hold_id = fields.String()
    order_id = fields.String()
    customer_code = fields.String()
    sale_group_code = fields.String()
    amount = _amount()
    expires_at = fields.String(metadata={"format": "date-time"})


class ExpiringSchema(Schema):
    within_hours = fields.Integer()
    count = fields.Integer()
    amount = _amount()
    holds = fields.List(
        fields.Nested(ExpiringHoldSchema), metadata={"description": "Soonest first, at most 1,000"}
    )


class AgeBucketSchema(Schema):
    bucket = fields.String()
    min_age_s = fields.Integer()
    max_age_s = fields.Integer(allow_none=True)
    count = fields.Integer()
    amount = _amount()


class ExposureReportSchema(Schema):
    as_of = fields.String(metadata={"format": "date-time"})
    total_exposure = _amount()
    total_available = _amount(description="Over accounts with a usable balance")
    accounts = fields.List(fields.Nested(AccountLineSchema))
    expiring_holds = fields.Nested(ExpiringSchema)
    deferred_by_age = fields.List(fields.Nested(AgeBucketSchema))


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def exposure_json(r: ExposureReport) -> dict[str, Any]:
    return {
        "as_of": r.as_of.isoformat(),
        "total_exposure": fmt(r.total_exposure),
        "total_available": fmt(r.total_available),
        "accounts": [
            {
                "customer_code": a.account.customer_code,
                "sale_group_code": a.account.sale_group_code,
                "status": str(a.account.status),
                "balance": fmt(a.account.snapshot.amount) if a.account.snapshot else None,
                "balance_fetched_at": _iso(a.account.snapshot.fetched_at) if a.account.snapshot else None,
                "balance_usable": a.balance_usable,
                "exposure": fmt(a.exposure),
                "available": fmt(a.available),
                "credit_limit": fmt(a.credit_limit),
                "credit_grade": a.credit_grade,
                "open_holds": a.open_holds,
            }
            for a in r.accounts
        ],
        "expiring_holds": {
            "within_hours": r.within_hours,
            "count": r.expiring_count,
            "amount": fmt(r.expiring_amount),
            "holds": [
                {
                    "hold_id": h.hold_id,
                    "order_id": h.order_id,
                    "customer_code": h.customer_code,
                    "sale_group_code": h.sale_group_code,
                    "amount": fmt(from_fen(h.amount_fen)),
                    "expires_at": h.expires_at.isoformat(),
                }
                for h in r.expiring
            ],
        },
        "deferred_by_age": [
            {
                "bucket": b.label,
                "min_age_s": b.min_age_s,
                "max_age_s": b.max_age_s,
                "count": b.count,
                "amount": fmt(b.amount),
            }
            for b in r.deferred_by_age
        ],
    }


class ErrorCountSchema(Schema):
    code = fields.String()
    calls = fields.Integer()


class CallFiguresSchema(Schema):
    calls = fields.Integer()
    succeeded = fields.Integer()
    success_rate = _ratio()
    retries = fields.Integer(metadata={"description": "Calls that were a retry (attempt > 1)"})
    retry_rate = _ratio(description="Retries / calls")
    p95_latency_ms = fields.Float(allow_none=True, metadata={"description": "Nearest-rank 95th percentile"})
    errors = fields.List(
        fields.Nested(ErrorCountSchema), metadata={"description": "By code, most frequent first"}
    )


class OperationFiguresSchema(CallFiguresSchema):
    operation = fields.String(metadata={"example": "balance"})


class UpstreamReportSchema(CallFiguresSchema):
    start = fields.String(data_key="from", metadata={"format": "date-time"})
    end = fields.String(data_key="to", metadata={"format": "date-time"})
    tz = fields.String()
    by_operation = fields.List(fields.Nested(OperationFiguresSchema))


def figures_json(f: CallFigures, **keys: str) -> dict[str, Any]:
    return {
        **keys,
        "calls": f.calls,
        "succeeded": f.succeeded,
        "success_rate": None if f.success_rate is None else str(f.success_rate),
        "retries": f.retries,
        "retry_rate": None if f.retry_rate is None else str(f.retry_rate),
        "p95_latency_ms": f.p95_latency_ms,
        "errors": [{"code": c, "calls": n} for c, n in f.errors],
    }


def upstream_json(r: UpstreamReport) -> dict[str, Any]:
    return {
        **figures_json(r.total),
        "start": r.period.start.isoformat(),
        "end": r.period.end.isoformat(),
        "tz": r.period.tz_name,
        "by_operation": [figures_json(f, operation=op) for op, f in r.by_operation],
    }
