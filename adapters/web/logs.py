"""JSON logs with a request id on every line (python-json-logger does the formatting)."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Stamp the current request id (or none) on every record, whoever logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    """One JSON object per line on stderr; idempotent."""
    root = logging.getLogger()
    if any(getattr(h, "_creditctl", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601, UTC
        )
    )
    handler.addFilter(RequestIdFilter())
    handler._creditctl = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
