"""Decision requests and answers on the wire."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from adapters.web.openapi import NULL_ONLY
from adapters.web.schemas.money import POSITIVE_MONEY_PATTERN, Money
from adapters.web.schemas.text import PLAIN_TEXT, plain_text
from adapters.web.schemas.text import no_control_chars as _no_control_chars
from creditctl.domain.money import fmt, parse_money

# An ECMA pattern for the OpenAPI document, applied with fullmatch (FullMatch) so that Python's "$" does
# not let a final "\n" through.
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


class FullMatch(validate.Regexp):
    """validate.Regexp that must match the whole string, as the ECMA pattern in the document does."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


MAX_METADATA_KEYS = 32
MAX_METADATA_KEY_LENGTH = 64
MAX_METADATA_TEXT = 512


def _metadata_limits(value: dict[str, Any]) -> None:
    if len(value) > MAX_METADATA_KEYS:
        raise ValidationError(f"At most {MAX_METADATA_KEYS} keys.")
    for k, v in value.items():
        if len(k) > MAX_METADATA_KEY_LENGTH:
            raise ValidationError(f"Key {k[:20]!r}... is longer than {MAX_METADATA_KEY_LENGTH} characters.")
        if isinstance(v, dict | list) or (isinstance(v, str) and len(v) > MAX_METADATA_TEXT):
            raise ValidationError(
                f"Value of {k!r} must be a string of at most {MAX_METADATA_TEXT} characters, a number or a "
                "boolean."
            )


def _routable_order_id(value: str) -> None:
    """Every id accepted here must work on every route: no empty, "." or ".." path segment (clients and
    proxies rewrite those before the server sees them)."""
    if not _routable(value):
        raise ValidationError('Must not start or end with "/", hold "//", or a "." or ".." segment.')


def _routable(value: str) -> bool:
    return not any(segment in ("", ".", "..") for segment in value.split("/"))


# PLAIN_TEXT whose "/"-separated segments are neither empty, "." nor "..": the two rules above, as one pattern
# (the lookaheads never meet a line break, which PLAIN_TEXT refuses anyway, so "." reads alike everywhere).
ORDER_ID = r"^(?!/|\.\.?(?:/|$))(?!.*(?://|/$|/\.\.?(?:/|$)))" + PLAIN_TEXT.removeprefix("^")
# A metadata value: a short string, a number, a boolean or null.
METADATA_VALUE = {
    "anyOf": [
        {"type": "string", "maxLength": MAX_METADATA_TEXT},
        {"type": "number"},
        {"type": "boolean"},
        NULL_ONLY,
    ]
}


class DecisionRequestSchema(Schema):
    """An order to decide. `load` takes a body every field of which is plainly valid by a shorter road
    (`fast_decision_request`) and hands anything else, valid or not, to marshmallow, so that every error
    stays the schema's own: the generic load cost ~45 µs of every decision."""

    class Meta:
        unknown = RAISE

    def load(
        self, data: Any, *, many: bool | None = None, partial: Any = None, unknown: str | None = None
    ) -> Any:
        plain = not (many or self.many or partial or self.partial or self.only is not None or self.exclude)
        if plain and unknown in (None, RAISE):
            loaded = fast_decision_request(data)
            if loaded is not None:
                return loaded
        return super().load(data, many=many, partial=partial, unknown=unknown)

    order_id = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=64), _no_control_chars, _routable_order_id],
        metadata={
            "example": "PO/2026/000123",
            "pattern": ORDER_ID,
            "description": "The order system's id, unique per customer (another customer's equal id is "
            "another order). May contain '/' (no empty, '.' or '..' part between them, none at either end); "
            "send it in URLs as is or percent-encoded. No control characters, no whitespace at either end.",
        },
    )
    customer_code = fields.String(
        required=True,
        validate=[FullMatch(_CODE, error="Not a customer code."), _no_control_chars],
        metadata={"example": "8800633175"},
    )
    sale_group_code = fields.String(
        required=True,
        validate=[FullMatch(_CODE, error="Not a sales group code."), _no_control_chars],
        metadata={"example": "GA10"},
    )
    amount = Money(required=True, positive=True)
    channel = fields.String(
        load_default=None,
        allow_none=True,
        validate=[validate.Length(min=1, max=64), _no_control_chars],
        metadata=plain_text(),
    )
    metadata = fields.Dict(
        keys=fields.String(),
        load_default=None,
        allow_none=True,
        validate=_metadata_limits,
        metadata={
            "maxProperties": MAX_METADATA_KEYS,
            "additionalProperties": METADATA_VALUE,
            "description": f"Kept with the order: at most {MAX_METADATA_KEYS} members, each name at most "
            f"{MAX_METADATA_KEY_LENGTH} characters, each value a string of at most {MAX_METADATA_TEXT} "
            "characters, a number, a boolean or null",
        },
    )


_REQUEST_KEYS = frozenset(("order_id", "customer_code", "sale_group_code", "amount", "channel", "metadata"))
_REQUIRED_KEYS = frozenset(("order_id", "customer_code", "sale_group_code", "amount"))
_POSITIVE_MONEY = re.compile(POSITIVE_MONEY_PATTERN)


def _plain_ascii(value: Any, longest: int) -> bool:
    """A string of 1 to `longest` printable ASCII characters, no space at either end: what the schema's
    Length and no_control_chars accept, for the ASCII text that almost every order system sends."""
    return (
        type(value) is str
        and 0 < len(value) <= longest
        and value.isascii()
        and value.isprintable()
        and value[0] != " "
        and value[-1] != " "
    )


def fast_decision_request(data: Any) -> dict[str, Any] | None:
    """What DecisionRequestSchema().load(data) gives, for a body whose every field is plainly valid (ASCII
    text, a money string the pattern accepts, no metadata); None for anything else (the schema decides).
    Never accepts what the schema refuses: tests/api/test_decision_wire_fast_paths.py compares the two."""
    if type(data) is not dict or not (_REQUIRED_KEYS <= data.keys() <= _REQUEST_KEYS):
        return None
    order_id, customer, group, amount = (
        data["order_id"], data["customer_code"], data["sale_group_code"], data["amount"]
    )  # fmt: skip
    channel = data.get("channel")
    if (
        data.get("metadata") is not None
        or not (_plain_ascii(order_id, 64) and _routable(order_id))
        or type(customer) is not str
        or _CODE.fullmatch(customer) is None
        or type(group) is not str
        or _CODE.fullmatch(group) is None
        or type(amount) is not str
        or _POSITIVE_MONEY.fullmatch(amount) is None
        or (channel is not None and not _plain_ascii(channel, 64))
    ):
        return None
    return {
        "order_id": order_id,
        "customer_code": customer,
        "sale_group_code": group,
        "amount": parse_money(amount),
        "channel": channel,
        "metadata": None,
    }


class OrderRefQuerySchema(Schema):
    """Which customer's order, where the calling key sees several customers that used the same id."""

    class Meta:
        unknown = RAISE

    customer_code = fields.String(
        load_default=None,
        validate=[validate.Regexp(_CODE, error="Not a customer code."), _no_control_chars],
        metadata={"description": "The order's customer; needed only when the id is ambiguous (409)."},
    )


class EndHoldRequestSchema(Schema):
    """Release and recheck take no body fields; an unknown one is refused, not ignored."""

    class Meta:
        unknown = RAISE


class SettleRequestSchema(Schema):
    """A settle: all that is left, or a part of it under a settlement id (the retry handle)."""

    class Meta:
        unknown = RAISE

    amount = Money(
        positive=True,
        load_default=None,
        metadata={
            "description": "The part Haier debited; omitted: everything still held. At most what is left "
            "(more is 409 naming the remainder). Needs settlement_id or an Idempotency-Key header."
        },
    )
    settlement_id = fields.String(
        load_default=None,
        validate=[validate.Length(min=1, max=64), _no_control_chars],
        metadata={
            "example": "DN-2026-0042",
            "pattern": PLAIN_TEXT,
            "description": "Your id for this part, unique per order (for example Haier's debit note). A "
            "retry with the same id and amount answers 200 unchanged; the same id with another amount is "
            "409. The Idempotency-Key header may carry it instead (if both are sent they must be equal). "
            "No control characters, no whitespace at either end.",
        },
    )


class IdempotencyHeaderSchema(Schema):
    """The Idempotency-Key header: the settlement id, for clients that send one per request."""

    class Meta:
        unknown = EXCLUDE  # every other header

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        load_default=None,
        validate=[validate.Length(min=1, max=64), _no_control_chars],
        metadata=plain_text("Taken as settlement_id; if both are sent they must be equal"),
    )


class SettlementSchema(Schema):
    settlement_id = fields.String(allow_none=True)
    amount = Money()
    settled_at = fields.DateTime()
    counting = fields.Boolean(
        metadata={"description": "Still counts: no balance as of a moment after settled_at has arrived"}
    )


class HoldEventSchema(Schema):
    type = fields.String(metadata={"enum": ["held", "settled", "released", "expired"]})
    amount = Money()
    at = fields.DateTime()
    settlement_id = fields.String(allow_none=True)


class ReasonSchema(Schema):
    rule = fields.String()
    reason = fields.String(metadata={"example": "INSUFFICIENT_BALANCE"})
    message = fields.String()


class BalanceSchema(Schema):
    amount = Money()
    fetched_at = fields.DateTime()
    source = fields.String()


class HoldSchema(Schema):
    id = fields.String()
    order_id = fields.String()
    amount = Money(metadata={"description": "What was held when the order was approved"})
    settled_amount = Money(attribute="settled", metadata={"description": "The sum of the settled parts"})
    remaining = Money(metadata={"description": "Still held (0.00 once the hold has ended)"})
    status = fields.Function(
        lambda h: h.status.value,
        metadata={
            "enum": ["open", "settled", "released", "expired"],
            "description": "open while something is held; settled when settled in full; released or "
            "expired when the remainder was (settled_amount says what was settled before)",
        },
    )
    counting = fields.Boolean(
        metadata={"description": "Counts against the account: the remainder, or a part not yet in a balance"}
    )
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    settlements = fields.List(fields.Nested(SettlementSchema), metadata={"description": "Oldest first"})
    events = fields.List(
        fields.Nested(HoldEventSchema),
        metadata={"description": "The hold's life, oldest first: held, settled parts, released, expired"},
    )


class RuleSetRefSchema(Schema):
    id = fields.Integer()
    version = fields.Integer()


class DecisionSchema(Schema):
    """A decision on the wire. `dump` writes it with `decision_json` (the same members, in the same order,
    as the fields below, which stay for the OpenAPI document and as the reference the tests compare it
    with): marshmallow's generic walk over 40 fields cost ~70 µs of every decision's answer."""

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        if self.only is not None or self.exclude:  # a narrowed schema: marshmallow's own walk
            return super().dump(obj, many=many)
        if self.many if many is None else many:
            return [decision_json(d) for d in obj]
        return decision_json(obj)

    decision_id = fields.String(attribute="id")
    order_id = fields.String()
    customer_code = fields.String(attribute="order.customer_code")
    sale_group_code = fields.String(attribute="order.sale_group_code")
    outcome = fields.Function(
        lambda d: d.outcome.value, metadata={"enum": ["approve", "defer", "block", "freeze"]}
    )
    state = fields.Function(
        lambda d: d.state.value, metadata={"enum": ["decided", "deferred", "cancelled", "expired"]}
    )
    reasons = fields.List(fields.Nested(ReasonSchema))
    amount = Money(attribute="order.amount")
    channel = fields.String(attribute="order.channel", allow_none=True)
    balance = fields.Nested(BalanceSchema, allow_none=True)
    exposure = Money()
    available = Money(allow_none=True)
    credit_limit = Money()
    credit_grade = fields.String()
    shortfall = Money(allow_none=True)
    hold = fields.Nested(HoldSchema, allow_none=True)
    rule_set = fields.Function(
        lambda d: {"id": d.rule_set_id, "version": d.rule_set_version}, metadata={"type": "object"}
    )
    decided_at = fields.DateTime()
    deferral_expires_at = fields.DateTime(allow_none=True)
    rechecks = fields.Integer()
    rechecked_at = fields.DateTime(
        allow_none=True, metadata={"description": "When a recheck last evaluated it (decided_at stays)"}
    )
    reviews = fields.List(
        fields.Dict(),
        metadata={
            "description": "What people did with it in the review queue, oldest first: action (release, "
            "reject, recheck), by (key name), role, approval_limit, reason, at, outcome_before, "
            "outcome_after, state_after, and the facts at that moment"
        },
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)  # as fields.String


def _time(value: Any) -> str | None:
    return None if value is None else value.isoformat()  # as fields.DateTime ("iso")


def decision_json(d: Any) -> dict[str, Any]:
    """DecisionSchema's dump, written out: every member of the schema above, in its order, each formatted
    as its field does (money with `fmt`, times with `isoformat`, text with `str`)."""
    order, balance, hold = d.order, d.balance, d.hold
    return {
        "decision_id": _text(d.id),
        "order_id": _text(d.order_id),
        "customer_code": _text(order.customer_code),
        "sale_group_code": _text(order.sale_group_code),
        "outcome": d.outcome.value,
        "state": d.state.value,
        "reasons": [
            {"rule": _text(r.rule), "reason": _text(r.reason), "message": _text(r.message)} for r in d.reasons
        ],
        "amount": fmt(order.amount),
        "channel": _text(order.channel),
        "balance": None
        if balance is None
        else {
            "amount": fmt(balance.amount),
            "fetched_at": _time(balance.fetched_at),
            "source": _text(balance.source),
        },
        "exposure": fmt(d.exposure),
        "available": fmt(d.available),
        "credit_limit": fmt(d.credit_limit),
        "credit_grade": _text(d.credit_grade),
        "shortfall": fmt(d.shortfall),
        "hold": None if hold is None else _hold_json(hold),
        "rule_set": {"id": d.rule_set_id, "version": d.rule_set_version},
        "decided_at": _time(d.decided_at),
        "deferral_expires_at": _time(d.deferral_expires_at),
        "rechecks": None if d.rechecks is None else int(d.rechecks),
        "rechecked_at": _time(d.rechecked_at),
        "reviews": None if d.reviews is None else [dict(r) for r in d.reviews],
    }


def _hold_json(h: Any) -> dict[str, Any]:
    return {
        "id": _text(h.id),
        "order_id": _text(h.order_id),
        "amount": fmt(h.amount),
        "settled_amount": fmt(h.settled),
        "remaining": fmt(h.remaining),
        "status": h.status.value,
        "counting": None if h.counting is None else bool(h.counting),
        "created_at": _time(h.created_at),
        "expires_at": _time(h.expires_at),
        "ended_at": _time(h.ended_at),
        "settlements": [
            {
                "settlement_id": _text(s.settlement_id),
                "amount": fmt(s.amount),
                "settled_at": _time(s.settled_at),
                "counting": None if s.counting is None else bool(s.counting),
            }
            for s in h.settlements
        ],
        "events": [
            {
                "type": _text(e.type),
                "amount": fmt(e.amount),
                "at": _time(e.at),
                "settlement_id": _text(e.settlement_id),
            }
            for e in h.events
        ],
    }
