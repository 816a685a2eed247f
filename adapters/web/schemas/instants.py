"""A moment given in a request: ISO 8601 with an offset, made UTC.

marshmallow's AwareDateTime accepts 0001-01-01T00:00+14:00, whose UTC is in year 0 (and
9999-12-31T23:59-12:00, in year 10000): converting it raised OverflowError deep in the database layer,
a 500. This field refuses only such moments, with a 422; every other one is kept, as UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields


class UtcInstant(fields.AwareDateTime):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("is outside the years 1 to 9999 once made UTC") from None
