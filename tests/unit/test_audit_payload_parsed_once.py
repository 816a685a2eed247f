"""The sealer parses each stored payload once: the hashed text and the fields it reads (its time, its
type) come from the same json.loads, where sealed_payload and then AuditEvent parsed it twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from creditctl.domain import audit as audit_domain
from creditctl.domain.audit import AuditEvent, canonical_json, sealed_event, sealed_payload

DB_AT = datetime(2026, 12, 5, 22, 46, 5, 759574, tzinfo=UTC)
WRITER_PAYLOAD = canonical_json(
    {"type": "decision.made", "at": "2026-12-05T22:46:05.747260Z", "subject": {"order_id": "PO-1"}, "n": 1.5}
)


class CountingJson:
    """json.loads, counted (tests/adapters/test_audit_sealer_parses_once.py uses it too)."""

    def __init__(self) -> None:
        self.loads_calls = 0

    def loads(self, text: str, **kw: Any) -> Any:
        self.loads_calls += 1
        return json.loads(text, **kw)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> CountingJson:
    shim = CountingJson()
    monkeypatch.setattr(audit_domain, "json", shim)
    return shim


@pytest.mark.parametrize(
    "payload",
    [
        WRITER_PAYLOAD,  # the writer's time: re-serialised with the database's
        WRITER_PAYLOAD.replace("2026-12-05T22:46:05.747260Z", "2026-12-05T22:46:05.759574Z"),  # as stored
    ],
)
def test_a_sealed_event_is_parsed_once_and_equals_what_sealed_payload_and_audit_event_gave(
    payload: str, counting: CountingJson
) -> None:
    event = sealed_event(7, payload, DB_AT)
    assert counting.loads_calls == 1
    old = AuditEvent(seq=7, payload=sealed_payload(payload, DB_AT))  # the two parses of before
    assert (event.payload, event.data) == (old.payload, old.data)
    assert event.data == json.loads(event.payload)
    assert event.data["at"] == "2026-12-05T22:46:05.759574Z"


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", '"text"'])
def test_text_no_sealer_accepts_keeps_its_bytes_and_shows_no_fields(payload: str) -> None:
    event = sealed_event(7, payload, DB_AT)
    assert (event.payload, event.data) == (payload, {})
    assert sealed_payload(payload, DB_AT) == payload
