"""Page sizes: `?limit=` asks for a page of at most that many; past its listing's maximum it is taken as
the maximum (clamped, as the reliability tests' resource limits ask), never refused, and the page says the
size it used (`limit`), so a client that asked for more knows it was given at most that many per page.

The document states the maximum as `x-clamped-maximum` and in words, not as `maximum`: a JSON Schema
`maximum` would call the larger values invalid, which the service does not."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

CLAMPED_MAXIMUM = "x-clamped-maximum"
_DIGITS_OF_A_HUGE_ONE = 19  # more digits than any int64: past every maximum, however many there are


class PageSize(fields.Integer):
    """`?limit=`: a whole number from 1 (0 or less is 422 naming `limit`), at most `maximum` (a larger one
    is taken as `maximum`)."""

    def __init__(self, maximum: int, *, default: int = 100) -> None:
        self.maximum = maximum
        super().__init__(
            load_default=default,
            validate=validate.Range(min=1),
            metadata={
                "description": f"How many per page, from 1 (default {default}); more than {maximum} is "
                f"taken as {maximum}: the page's `limit` says the size used",
                CLAMPED_MAXIMUM: maximum,
            },
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if (
            isinstance(value, str)
            and value.isascii()
            and value.isdigit()
            and len(value) >= _DIGITS_OF_A_HUGE_ONE
        ):
            return self.maximum  # any count of digits (int() refuses over 4,300 of them)
        return min(int(super()._deserialize(value, attr, data, **kwargs)), self.maximum)


def page_size_used(maximum: int) -> fields.Integer:
    """A page's `limit`: the page size it was read with."""
    return fields.Integer(
        metadata={
            "description": f"The page size used: the limit asked for (default 100), at most {maximum}",
            "minimum": 1,
            "maximum": maximum,
        }
    )
