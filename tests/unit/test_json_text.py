"""The JSON writers made once write what json.dumps writes with the same settings, byte for byte: the audit
trail's hashed canonical form, the order fingerprint, the exact-JSON columns and the API's compact answers
depend on it (an event sealed before this writer must verify after it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sql.types import ExactJson, _default
from adapters.web.json_provider import _COMPACT, ExactJSONProvider
from creditctl.domain.audit import _plain, canonical_json
from creditctl.domain.decision import _FINGERPRINT_JSON
from creditctl.domain.json_text import json_writer


class Colour(Enum):
    RED = "red"


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # past 64 bits too
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),  # every code point: non-ASCII, controls, U+2028, quotes, backslashes
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))])),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(max_size=8), inner, max_size=5),
        st.frozensets(st.integers(), max_size=4),
    ),
    max_leaves=25,
)


def _both(value: Any, default: Any, *, sort_keys: bool, ensure_ascii: bool) -> tuple[str, str]:
    made = json_writer(default, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    expected = json.dumps(
        value, default=default, sort_keys=sort_keys, ensure_ascii=ensure_ascii, separators=(",", ":")
    )
    return made(value), expected


@settings(max_examples=400, deadline=None)
@given(value=_values, sort_keys=st.booleans(), ensure_ascii=st.booleans())
def test_a_writer_made_once_writes_what_json_dumps_writes(
    value: Any, sort_keys: bool, ensure_ascii: bool
) -> None:
    # _default: Decimals, datetimes and sets as the exact-JSON columns write them
    made, expected = _both(value, _default, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    assert made == expected


@settings(max_examples=300, deadline=None)
@given(value=_values)
def test_each_writer_of_the_service_writes_its_json_dumps_bytes(value: Any) -> None:
    payload = {"after": value, "at": datetime(2026, 12, 5, 21, 0, tzinfo=UTC), "type": "decision.made"}
    assert canonical_json(payload) == json.dumps(
        payload, default=_plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    body = {"metadata": value, "amount": "12.34"}
    assert _FINGERPRINT_JSON(body) == json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    column = ExactJson().process_bind_param(value, None)  # type: ignore[arg-type]
    assert column == (
        None  # SQL NULL, not the text null
        if value is None
        else json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    )
    provider = ExactJSONProvider
    assert _outcome(lambda: _COMPACT(payload)) == _outcome(
        lambda: json.dumps(
            payload,
            default=provider.default,
            sort_keys=provider.sort_keys,
            ensure_ascii=provider.ensure_ascii,
            separators=(",", ":"),
        )
    )


def _outcome(write: Any) -> tuple[str, str]:
    """The text written, or the kind of error raised (the provider refuses sets, as json.dumps does)."""
    try:
        return "text", write()
    except (TypeError, ValueError) as exc:
        return "error", type(exc).__name__


@pytest.mark.parametrize("value", ["plain", '键 \u2028 "q" \\', "", Colour.RED, Decimal("1E+2"), None, 7])
def test_top_level_scalars_and_enums_are_written_alike(value: Any) -> None:
    made, expected = _both(value, _plain, sort_keys=True, ensure_ascii=False)
    assert made == expected


def test_a_value_it_cannot_write_fails_as_json_dumps_fails() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_writer(None, sort_keys=False, ensure_ascii=True)({"x": object()})
    with pytest.raises(TypeError, match="not JSON serializable"):
        json.dumps({"x": object()})
