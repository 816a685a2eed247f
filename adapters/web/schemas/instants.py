"""A moment given in a request: ISO 8601 with an offset, made UTC, within years a database can hold.

marshmallow's AwareDateTime accepts 0001-01-01T00:00+14:00, whose UTC is in year 0: converting it then
raised OverflowError deep in the database layer (a 500). This field refuses such moments with a 422."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields

EARLIEST_YEAR, LATEST_YEAR = 1970, 9998


class UtcInstant(fields.AwareDateTime):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            utc = moment.astimezone(UTC)
        except OverflowError:
            utc = None
        if utc is None or not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
            raise ValidationError(f"must be between {EARLIEST_YEAR} and {LATEST_YEAR} (UTC)")
        return utc
