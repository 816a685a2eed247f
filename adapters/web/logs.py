"""JSON logs with a request id on every line (python-json-logger does the formatting)."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonEncoder, JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Stamp the current request id (or none) on every record, whoever logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class LeanJsonFormatter(JsonFormatter):
    """python-json-logger's JsonFormatter, each line the same bytes, in fewer steps (the access line is
    written for every request): the record's extras merged in one pass, the time written as the text its
    encoder would write, and one encoder made once (json.dumps with `cls` makes one a line). Settings it
    does not shorten (defaults, static fields, another encoder or serializer) take JsonFormatter's way.
    tests/unit/test_lean_json_formatter.py compares the two on records of every kind."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain = self.json_serializer is json.dumps and self.json_encoder is JsonEncoder
        self._lean = plain and self.json_default is None and not self.defaults and not self.static_fields
        self._lean = self._lean and not self.rename_fields_keep_missing
        self._encoder = JsonEncoder(ensure_ascii=self.json_ensure_ascii, indent=self.json_indent)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        if not self._lean:
            return super().add_fields(log_data, record, message_dict)
        rename, fields, skip = self.rename_fields, record.__dict__, self._skip_fields
        for field in self._required_fields:
            log_data[rename.get(field, field)] = fields.get(field)
        for key, value in message_dict.items():
            log_data[rename.get(key, key)] = value
        for key, value in fields.items():  # as merge_record_extra
            if key not in skip and not (isinstance(key, str) and key.startswith("_")):
                log_data[rename.get(key, key)] = value
        if self.timestamp:
            key = self.timestamp if isinstance(self.timestamp, str) else "timestamp"
            log_data[rename.get(key, key)] = datetime.fromtimestamp(record.created, tz=UTC).isoformat()
        return None

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        if not self._lean:
            return super().jsonify_log_record(log_data)
        return self._encoder.encode(log_data)


def configure_logging(level: str = "INFO") -> None:
    """One JSON object per line on stderr; idempotent."""
    root = logging.getLogger()
    if any(getattr(h, "_creditctl", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        LeanJsonFormatter(
            "%(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601, UTC
        )
    )
    handler.addFilter(RequestIdFilter())
    handler._creditctl = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
