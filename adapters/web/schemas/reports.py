"""Reports on the wire: a period (and a display zone) in; figures out, money as decimal strings.

The services turn a report into plain JSON values (creditctl.services.reports); the schemas describe them."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import available_timezones

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from adapters.web.schemas.instants import DATE_PATTERN, INSTANT_PATTERN
from creditctl.services.reports_decisions import OUTCOMES
from creditctl.services.reports_exposure import MAX_WITHIN_HOURS


def _amount(**kw: Any) -> fields.String:
    return fields.String(metadata={"format": "decimal", "example": "1999.98", **kw})


def _ratio(**kw: Any) -> fields.String:
    meta = {
        "format": "decimal",
        "example": "0.7312",
        "description": "Four places; null when nothing to divide",
    }
    return fields.String(allow_none=True, metadata={**meta, **kw})


# What DateOrTime reads, as the document states it: a date, or a time with its offset (years 0002 to 9998).
DATE_OR_TIME = {
    "anyOf": [
        {"type": "string", "format": "date", "pattern": DATE_PATTERN},
        {"type": "string", "format": "date-time", "pattern": INSTANT_PATTERN},
    ]
}
# Every zone this server knows (IANA names: its tzdata): another name is refused.
ZONES = sorted(available_timezones())


def _member_name(zone: str) -> str:
    """A zone's name in a generated client's enum (x-enum-varnames): openapi-python-client's own drops "+"
    and "-", so that Etc/GMT+1 and Etc/GMT-1 (and GMT0, GMT+0 and GMT-0) were one name, and it refused."""
    spelled = zone.replace("+", "_PLUS_").replace("-", "_MINUS_")
    return re.sub(r"[^A-Za-z0-9]+", "_", spelled).strip("_").upper()


ZONE_NAMES = [_member_name(zone) for zone in ZONES]
assert len(set(ZONE_NAMES)) == len(ZONES), "two zones with one name in a generated client"


class DateOrTime(fields.Field):
    """A date (midnight of that day in the display zone) or a time with its offset."""

    def __init__(self, **kwargs: Any) -> None:
        meta = {"type": "string", **DATE_OR_TIME, "example": "2026-11-30", **kwargs.pop("metadata", {})}
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
    load_default=None,
    validate=validate.OneOf(["json", "csv"]),
    metadata={
        "description": "json or csv; without it the Accept header chooses (text/csv or application/json, "
        "JSON by default). A client generated from this document reads one type per answer: the "
        "report's .csv path answers text/csv only"
    },
)


class PeriodCsvQuerySchema(Schema):
    """A report's period, at its .csv path (where the answer is CSV: no `format`)."""

    class Meta:
        unknown = RAISE

    start = DateOrTime(
        data_key="from",
        load_default=None,
        metadata={
            "description": "Start, inclusive (default: 7 days before `to`, at midnight in `tz`)",
            "example": "2026-11-01",
        },
    )
    end = DateOrTime(
        data_key="to",
        load_default=None,
        metadata={
            "description": "End, exclusive (default: the end of today in `tz`); after `from`, at most 366 "
            "days after it"
        },
    )
    tz = fields.String(
        load_default="Asia/Shanghai",
        validate=validate.Length(min=1, max=64),
        metadata={
            "description": "IANA time zone days are counted in (times stay UTC): one this server knows",
            "enum": ZONES,
            "x-enum-varnames": ZONE_NAMES,
        },
    )


class PeriodQuerySchema(PeriodCsvQuerySchema):
    format = FORMAT


class ExposureCsvQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    within_hours = fields.Integer(
        load_default=24,
        validate=validate.Range(min=1, max=MAX_WITHIN_HOURS),
        metadata={"description": "Holds expiring within this many hours from now"},
    )


class ExposureQuerySchema(ExposureCsvQuerySchema):
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
    start = fields.String(data_key="from", attribute="from", metadata={"format": "date-time"})
    end = fields.String(data_key="to", attribute="to", metadata={"format": "date-time"})
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
    start = fields.String(data_key="from", attribute="from", metadata={"format": "date-time"})
    end = fields.String(data_key="to", attribute="to", metadata={"format": "date-time"})
    tz = fields.String()
    by_operation = fields.List(fields.Nested(OperationFiguresSchema))
