"""Page cursors: what a paged operation hands out as `next_cursor` and takes back as `?cursor=`.

A cursor is opaque to a client: it passes the next_cursor of a page as it is. Every string of a cursor's
documented pattern is one the server takes, because a cursor stands for a position in the listing's
order and any position has a page after it: a client that follows the document is never refused its
cursor, and a string outside the pattern is a 422 naming `cursor`.

- a position cursor (holds, the review queue): the row's time as microseconds since 1970-01-01 UTC, a
  dot, and the row's id (both, because rows share a time);
- a key cursor (payment records): the last key of the page (an invoice id), base64url-encoded (UTF-8).
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

from creditctl.domain.errors import InvalidRequest

POSITION_PATTERN = r"^[0-9]{1,17}\.[0-9A-Za-z_-]{1,64}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# base64url with or without its padding; any such string decodes (an empty one: the first page).
KEY_PATTERN = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}(?:==)?|[A-Za-z0-9_-]{3}=?)?$"
KEY_MAX_LENGTH = 344  # 64 characters of 4 bytes each (an invoice id), encoded
_POSITION = re.compile(POSITION_PATTERN)
_KEY = re.compile(KEY_PATTERN)
NOT_A_CURSOR = "not a cursor this service gives (pass next_cursor as it is)"


def cursor_metadata(pattern: str, order: str) -> dict[str, str]:
    """The document's word on a cursor parameter: what it is, its pattern."""
    return {
        "pattern": pattern,
        "description": "The next_cursor of the previous page, as it is: an opaque string, without it the "
        f"first page. Any string of this pattern is taken (as a position in the order, {order}): "
        "one outside it is refused (422 naming cursor)",
    }


def encode_position(at: datetime, row_id: str) -> str:
    """The cursor after the row created (or decided) at `at` with id `row_id`."""
    return f"{(at - _EPOCH) // _MICROSECOND}.{row_id}"


def decode_position(cursor: str | None) -> tuple[datetime, str] | None:
    """The (time, id) position a cursor stands for; None: the first page."""
    if cursor is None:
        return None
    if not _POSITION.fullmatch(cursor):
        raise InvalidRequest(NOT_A_CURSOR, field="cursor")
    micros, row_id = cursor.split(".", 1)
    return _EPOCH + int(micros) * _MICROSECOND, row_id


def encode_key(key: str | None) -> str | None:
    return None if key is None else base64.urlsafe_b64encode(key.encode()).decode()


def decode_key(cursor: str | None) -> str | None:
    """The key a cursor stands for; None: the first page. Bytes that are not UTF-8, and U+0000 (which no
    key holds, and PostgreSQL's text cannot: a 500 there), read as U+FFFD."""
    if cursor is None:
        return None
    if len(cursor) > KEY_MAX_LENGTH or not _KEY.fullmatch(cursor):
        raise InvalidRequest(NOT_A_CURSOR, field="cursor")
    padded = cursor + "=" * (-len(cursor) % 4)
    return base64.urlsafe_b64decode(padded).decode("utf-8", "replace").replace("\x00", "\ufffd")
