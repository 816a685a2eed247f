"""Compact JSON, the text `json.dumps(value, separators=(",", ":"), ...)` writes, by an encoder made once.

Why: a decision writes JSON six times (its order's fingerprint, its audit event's canonical form, the
decision row's JSON columns). `json.dumps` with any argument makes a JSONEncoder, whose `encode` then makes
the C encoder, on every call: 1.5-2.5 µs each, for a few µs of encoding. The writer below makes the C
encoder once for its settings and calls it, as `JSONEncoder.encode` does, so the text is the same, byte
for byte (tests/unit/test_json_text.py holds it to `json.dumps`). Where the C encoder is missing (not
CPython), it is the standard library's JSONEncoder, reused.

One difference, on purpose: no circular-reference check (the check keeps a dict of the containers being
written; shared by threads, one could see another's). A value that contains itself then fails with
RecursionError instead of ValueError; what is written here is made of new dicts and lists, or parsed
JSON, which cannot contain itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import (  # type: ignore[attr-defined]  # the C encoder and its string writers, untyped
    c_make_encoder,
    encode_basestring,
    encode_basestring_ascii,
)
from typing import Any

JsonWriter = Callable[[Any], str]


def json_writer(default: Callable[[Any], Any] | None, *, sort_keys: bool, ensure_ascii: bool) -> JsonWriter:
    """`lambda v: json.dumps(v, default=default, sort_keys=sort_keys, ensure_ascii=ensure_ascii,
    separators=(",", ":"))`, made once."""
    if c_make_encoder is None:  # pragma: no cover - CPython always has it
        encoder = json.JSONEncoder(
            default=default, sort_keys=sort_keys, ensure_ascii=ensure_ascii, separators=(",", ":")
        )
        return encoder.encode
    strings = encode_basestring_ascii if ensure_ascii else encode_basestring
    encode = c_make_encoder(
        None,  # markers: no circular-reference check (see the module)
        default if default is not None else _not_serialisable,
        strings,
        None,  # indent
        ":",
        ",",
        sort_keys,
        False,  # skipkeys
        True,  # allow_nan, as json.dumps
    )

    def write(value: Any) -> str:
        if isinstance(value, str):  # JSONEncoder.encode's own shortcut (the same text)
            return strings(value)  # type: ignore[no-any-return]
        return "".join(encode(value, 0))

    return write


def _not_serialisable(value: Any) -> Any:
    """JSONEncoder.default: what json.dumps raises for a value it cannot write."""
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")
