"""Money: Decimal CNY with two places in the domain, integer fen at rest, decimal strings on the wire.

Library defaults round money silently (conventions §13); every conversion here refuses instead.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_AMOUNT = Decimal("1000000000000.00")
# Used with fullmatch: `match` with "$" would also accept a final "\n" ("100.00\n").
_MONEY_TEXT = re.compile(r"-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?")


class MoneyError(ValueError):
    """A value that is not exact money: more than two decimals, not a decimal string, not finite."""


def parse_money(text: str) -> Decimal:
    """Parse a decimal string such as "1999.98" into a two-place Decimal, refusing anything else."""
    if not isinstance(text, str):
        raise MoneyError('must be a decimal string such as "1999.98", not a JSON number')
    if not _MONEY_TEXT.fullmatch(text):
        raise MoneyError('must be a decimal string with at most two decimals, such as "1999.98"')
    return Decimal(text).quantize(CENT)


def money(value: Decimal | int | str) -> Decimal:
    """Quantize an exact value to two places, refusing one that would lose digits."""
    try:
        d = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, TypeError) as exc:
        raise MoneyError(f"not a decimal amount: {value!r}") from exc
    if isinstance(value, float) or not d.is_finite():
        raise MoneyError(f"not a finite exact amount: {value!r}")
    q = d.quantize(CENT)
    if q != d:
        raise MoneyError(f"more than two decimals: {value}")
    return q


def to_fen(amount: Decimal) -> int:
    """Decimal CNY to integer fen, exactly."""
    return int(money(amount) * 100)


def from_fen(fen: int) -> Decimal:
    """Integer fen to Decimal CNY with two places."""
    return (Decimal(fen) / 100).quantize(CENT)


def fmt(amount: Decimal | None) -> str | None:
    """Decimal to its wire form, "1999.98"; None stays None."""
    return None if amount is None else str(amount.quantize(CENT))
