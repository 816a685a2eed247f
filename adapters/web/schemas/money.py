"""Money on the wire: a decimal string with at most two places. marshmallow's Decimal field rounds and
takes JSON numbers (conventions §13); this field refuses both.

The pattern a Money field shows in the OpenAPI document is the very test it applies to what it reads
(with `fullmatch`, so the ECMA reading of "^...$" and Python's agree: no final "\\n" slips through), so
that the document says exactly what the server accepts; the other checks only choose the message.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields

from creditctl.domain.money import MAX_AMOUNT, fmt, parse_money

# Both patterns stop at the contract's ceiling, 1,000,000,000,000.00 (MAX_AMOUNT), either sign.
MONEY_PATTERN = r"^-?(?:(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,2})?|1000000000000(?:\.00?)?)$"
POSITIVE_MONEY_PATTERN = (
    r"^(?:0\.(?:0[1-9]|[1-9][0-9]?)|[1-9][0-9]{0,11}(?:\.[0-9]{1,2})?|1000000000000(?:\.00?)?)$"
)
_NUMERIC = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
TOO_LARGE = "Too large: must be at most 1,000,000,000,000.00."
TWO_DECIMALS = 'Must be a decimal string with at most two decimals, such as "1999.98".'


class Money(fields.String):
    """Decimal CNY as a string such as "1999.98"; `positive` refuses zero and negatives, and the
    contract's ceiling of 1,000,000,000,000.00 applies."""

    def __init__(self, *, positive: bool = False, **kwargs: Any) -> None:
        pattern = POSITIVE_MONEY_PATTERN if positive else MONEY_PATTERN
        metadata = {"format": "decimal", "pattern": pattern, "example": "1999.98"}
        metadata.update(kwargs.pop("metadata", {}))
        super().__init__(metadata=metadata, **kwargs)
        self.positive = positive
        self._accepts = re.compile(pattern)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return fmt(value) if value is not None else None

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if not isinstance(value, str):
            raise ValidationError('Must be a decimal string such as "1999.98", not a JSON number.')
        if self._accepts.fullmatch(value):
            return parse_money(value)
        raise ValidationError(self._why_not(value))

    def _why_not(self, value: str) -> str:
        """The message for a string the pattern refused: its size before its decimals."""
        if not value.strip():
            return "Must not be empty."
        numeric = _NUMERIC.fullmatch(value)
        if numeric is None:
            return TWO_DECIMALS
        amount = Decimal(value)  # exact at any length: comparisons below never round
        if self.positive and amount <= 0:
            return "Must be greater than 0.00."
        if abs(amount) > MAX_AMOUNT:
            return TOO_LARGE
        return TWO_DECIMALS  # a third decimal: every other numeric string the pattern accepts
