"""Money on the wire: a decimal string with at most two places. marshmallow's Decimal field rounds and
takes JSON numbers (conventions §13); this field refuses both."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields

from creditctl.domain.money import MAX_AMOUNT, MoneyError, fmt, parse_money

MONEY_PATTERN = r"^-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$"


class Money(fields.String):
    """Decimal CNY as a string such as "1999.98"; `positive` refuses zero and negatives, and the
    contract's ceiling of 1,000,000,000,000.00 applies."""

    def __init__(self, *, positive: bool = False, **kwargs: Any) -> None:
        metadata = {"format": "decimal", "pattern": MONEY_PATTERN, "example": "1999.98"}
        metadata.update(kwargs.pop("metadata", {}))
        super().__init__(metadata=metadata, **kwargs)
        self.positive = positive

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return fmt(value) if value is not None else None

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if not isinstance(value, str):
            raise ValidationError('Must be a decimal string such as "1999.98", not a JSON number.')
        if not value.strip():
            raise ValidationError("Must not be empty.")
        try:
            amount = parse_money(value)
        except MoneyError as exc:
            raise ValidationError(
                'Must be a decimal string with at most two decimals, such as "1999.98".'
            ) from exc
        if self.positive and amount <= 0:
            raise ValidationError("Must be greater than 0.00.")
        if abs(amount) > MAX_AMOUNT:
            raise ValidationError("Must not exceed 1000000000000.00.")
        return amount
