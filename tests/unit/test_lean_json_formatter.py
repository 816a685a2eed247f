"""The log lines of LeanJsonFormatter (adapters/web/logs.py) are python-json-logger's JsonFormatter's, byte
for byte: the same record formatted by both, for records of every kind the service writes."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pythonjsonlogger.json import JsonFormatter

from adapters.web.logs import LeanJsonFormatter

SETTINGS: dict[str, Any] = {
    "fmt": "%(levelname)s %(name)s %(message)s %(request_id)s",
    "rename_fields": {"levelname": "level", "name": "logger"},
    "timestamp": "time",
}


def _record(
    msg: Any, args: Any = (), *, extra: dict[str, Any] | None = None, exc_info: Any = None, sinfo: Any = None
) -> logging.LogRecord:
    log = logging.getLogger("creditctl.access")
    record = log.makeRecord(
        log.name, logging.INFO, __file__, 10, msg, args, exc_info, extra=extra, sinfo=sinfo
    )
    record.request_id = "req-1"  # as RequestIdFilter stamps it
    return record


def _raised() -> Any:
    try:
        raise ValueError("bad value")
    except ValueError:
        return sys.exc_info()


RECORDS = {
    "the access line": _record(
        "%s %s %s",
        ("POST", "/v1/decisions", 201),
        extra={"method": "POST", "path": "/v1/decisions", "status": 201, "duration_ms": 1.23, "key": "k"},
    ),
    "no key, no request id": _record("%s", ("GET",), extra={"key": None}),
    "non-ASCII and odd values": _record(
        "客户 %s",
        ("渠道",),
        extra={"amount": Decimal("12.30"), "at": datetime(2026, 12, 5, tzinfo=UTC), "parts": [1, "二"]},
    ),
    "a private attribute is left out": _record("x", extra={"_hidden": 1, "shown": True}),
    "an exception": _record("failed", exc_info=_raised()),
    "a stack": _record("here", sinfo="Stack (most recent call last):\n  frame"),
    "a dict as the message": _record({"event": "upstream.down", "detail": {"code": "X"}}),
}


@pytest.mark.parametrize("name", list(RECORDS))
@pytest.mark.parametrize(
    "settings",
    [SETTINGS, {**SETTINGS, "json_ensure_ascii": False}, {**SETTINGS, "static_fields": {"service": "c"}}],
    ids=["as configured", "not ASCII-only", "static fields (JsonFormatter's way)"],
)
def test_the_lines_are_json_formatters_byte_for_byte(name: str, settings: dict[str, Any]) -> None:
    record = RECORDS[name]
    expected = JsonFormatter(**settings).format(record)
    assert LeanJsonFormatter(**settings).format(record) == expected
    assert '"time": "' in expected
