"""A moment given in a request: ISO 8601 with an offset, made UTC.

marshmallow's AwareDateTime accepts 0001-01-01T00:00+14:00, whose UTC is in year 0 (and
9999-12-31T23:59-12:00, in year 10000): converting it raised OverflowError deep in the database layer,
a 500. This field refuses only such moments, with a 422; every other one is kept, as UTC.

The document states what the field takes as a pattern beside format: date-time. RFC 3339 (the format)
also allows a lower-case "t" or "z" and a leap second (:60), which Python does not read; the pattern asks
for the upper-case letters and seconds to :59, and years 0002 to 9998, whose moments are all within the
years 1 to 9999 once made UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields

YEARS = r"(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
DATE_PATTERN = rf"^{YEARS}-[0-9]{{2}}-[0-9]{{2}}$"
_TIME = r"T[0-9]{2}:[0-9]{2}:[0-5][0-9](?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
INSTANT_PATTERN = DATE_PATTERN.removesuffix("$") + _TIME + "$"


class UtcInstant(fields.AwareDateTime):
    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": INSTANT_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("is outside the years 1 to 9999 once made UTC") from None
