"""Text on the wire: the patterns the document states for plain text (not blank; no control characters and
no whitespace at either end), each the very rule the server applies, so that a client that follows the
document is never refused for its text.

The rules are Python's: a blank string is one `str.strip()` empties (every `str.isspace()` character), and a
control character is one of the Unicode categories Cc, Cf, Zl and Zp (`_no_control_chars`). The character
classes below spell those sets out for a pattern every reader reads alike: ECMA-262, Python's `re` and the
Rust `regex` crate (JSON Schema validators) take `\\uXXXX` escapes, and the few format characters beyond the
Basic Multilingual Plane are written as themselves, one by one (a range of them would not parse as UTF-16).
A reader that sees a string as UTF-16 code units (ECMA-262 without the u flag) refuses somewhat more with
them, never less. tests/api/test_documented_constraints.py compares the classes with Python's rules over
every code point.
"""

from __future__ import annotations

import unicodedata

from marshmallow import ValidationError

# str.isspace(): what str.strip() removes.
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Format characters beyond the BMP: Kaithi, Egyptian hieroglyph, shorthand, musical symbol, tags.
_ASTRAL_FORMAT = (0x110BD, 0x110CD, *range(0x13430, 0x13439), *range(0x1BCA0, 0x1BCA4))
_ASTRAL_FORMAT += (*range(0x1D173, 0x1D17B), 0xE0001, *range(0xE0020, 0xE0080))
# Unicode categories Cc, Cf, Zl and Zp (Unicode 14, Python 3.11's unicodedata).
CONTROL = (
    r"\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    r"\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb" + "".join(map(chr, _ASTRAL_FORMAT))
)
CONTROL_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")

# U+0000, which no text of a request may hold (PostgreSQL's text cannot; adapters/web/json_provider.py refuses
# it in every body and query): each pattern of a request's text refuses it, as the server does.
NUL = r"\x00"
# Not blank: a character that is not whitespace somewhere, and U+0000 nowhere.
NOT_BLANK_CHAR = f"[^{WHITESPACE}{NUL}]"
NOT_BLANK = f"^[^{NUL}]*{NOT_BLANK_CHAR}[^{NUL}]*$"
# One character or more, none of them a control character, neither end whitespace.
PLAIN_TEXT = f"^[^{WHITESPACE}{CONTROL}](?:[^{CONTROL}]*[^{WHITESPACE}{CONTROL}])?$"
PLAIN_TEXT_DESCRIPTION = "No control characters, no whitespace at either end"
# No C0 or C1 control character anywhere (Unicode's Cc): a filter's text. What it is compared with holds none,
# and PostgreSQL's text cannot hold U+0000 (a 500 there). The format characters of Cf are not refused here:
# beside a length, a pattern with those beyond the BMP is one schemathesis cannot generate from.
CC = r"\x00-\x1f\x7f-\x9f"
NO_CONTROL = f"^[^{CC}]*$"


def no_control_chars(value: str) -> None:
    """The server's rule for plain text (the document's PLAIN_TEXT, with a message for each part)."""
    if any(unicodedata.category(ch) in CONTROL_CATEGORIES for ch in value):
        raise ValidationError("Must not contain control characters.")
    if value != value.strip():
        raise ValidationError("Must not start or end with whitespace.")


def without_control_chars(value: str) -> None:
    """The server's rule for a filter's text (the document's NO_CONTROL)."""
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValidationError("Must not contain control characters.")


def plain_text(description: str = "", **metadata: object) -> dict[str, object]:
    """metadata for a plain-text field: its pattern, and what it means in words."""
    said = f"{description} ({PLAIN_TEXT_DESCRIPTION.lower()})" if description else PLAIN_TEXT_DESCRIPTION
    return {"pattern": PLAIN_TEXT, "description": said, **metadata}


def not_blank(description: str = "Not blank", **metadata: object) -> dict[str, object]:
    """metadata for a field that must hold something besides whitespace."""
    return {"pattern": NOT_BLANK, "description": description, **metadata}
