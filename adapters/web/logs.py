"""JSON logs with a request id on every line (python-json-logger does the formatting)."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from pythonjsonlogger.json import JsonEncoder, JsonFormatter

ACCESS_MESSAGE = "%s %s %s"  # method, path, status: the access line's message
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


class AccessLineWriter:
    """The access line (adapters/web/request_context.py access_line) written straight to the handler
    configure_logging installs, as that handler would write it: the same bytes, to its stream, under its
    lock, without the LogRecord (findCaller's stack walk, ~20 attributes) and the formatter's pass over
    them. It writes only while logging's configuration is the one whose line it knows, and otherwise
    returns False for the caller to log the line (logging then does what it is configured to do):
    the logger with no handler or filter of its own and propagating, no handler on a logger between it
    and the root, the root with one handler, our StreamHandler (level at most INFO) with our
    RequestIdFilter alone and a plain LeanJsonFormatter, the default LogRecord factory and level name.
    Those are checked on every call (a few attribute reads). The handler, its formatter and filters are
    vetted when first seen, by formatting probe records both ways: a line that would differ by one byte
    from the formatter's (another setting, rename, reserved attribute) leaves the writer off for them.
    The caller has checked that the logger is enabled for INFO (the level, logging.disable)."""

    _HANDLER_OWN = frozenset({"handle", "emit", "format", "flush", "filter", "acquire", "release"})
    _FORMATTER_OWN = frozenset(
        {"format", "add_fields", "process_log_record", "serialize_log_record", "jsonify_log_record"}
    )

    def __init__(self, logger: logging.Logger) -> None:
        self.log = logger
        self._head = f'{{"level": "INFO", "logger": {encode_basestring_ascii(logger.name)}, "message": '
        self._encoder = JsonEncoder(ensure_ascii=True)  # LeanJsonFormatter's, for the settings it vets
        self._second: tuple[float, str] = (-1.0, "")  # a whole second (time.time()) and its ISO text
        # the handler, formatter and filters last vetted, and whether the line may be written for them
        self._seen: tuple[Any, Any, list[Any], bool] = (None, None, [], False)

    def write(self, method: str, path: str, status: int, duration_ms: float, key: str | None) -> bool:
        """Write the line `log.info("%s %s %s", method, path, status, extra=...)` would; False if the
        configuration is not the one this writer knows (nothing written then)."""
        handler = self._handler()
        if handler is None:
            return False
        request_id = request_id_var.get()
        created = time.time()
        try:
            line = self._line(method, path, status, duration_ms, key, request_id, created)
        except Exception:  # a value of a kind the line was not vetted with: logging writes it
            return False
        lock = handler.lock
        if lock:
            lock.acquire()
        try:  # Handler.handle, StreamHandler.emit and flush
            stream = handler.stream  # type: ignore[attr-defined]
            stream.write(line + handler.terminator)  # type: ignore[attr-defined]
            if handler.stream and hasattr(handler.stream, "flush"):  # type: ignore[attr-defined]
                handler.stream.flush()  # type: ignore[attr-defined]
        except RecursionError:
            raise
        except Exception:
            handler.handleError(self._record(method, path, status, duration_ms, key, request_id, created))
        finally:
            if lock:
                lock.release()
        return True

    def _handler(self) -> logging.Handler | None:
        """The one handler the line goes to, if it is ours and configured as vetted, else None."""
        log, root = self.log, logging.root
        handlers = root.handlers
        if len(handlers) != 1 or log.handlers or log.filters or not log.propagate:
            return None
        handler = handlers[0]
        seen = self._seen
        if handler is not seen[0] or handler.formatter is not seen[1] or handler.filters != seen[2]:
            seen = self._vet(handler)
        if not seen[3] or handler.level > logging.INFO or logging.getLogRecordFactory() is not _Record:
            return None
        parent = log.parent
        while parent is not root and parent is not None:
            if parent.handlers or not parent.propagate:
                return None
            parent = parent.parent
        return handler if logging.getLevelName(logging.INFO) == "INFO" else None

    def _line(
        self,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        key: str | None,
        request_id: str | None,
        created: float,
    ) -> str:
        text, value = encode_basestring_ascii, self._value  # text: a str as the encoder writes it
        finite = type(duration_ms) is float and _isfinite(duration_ms)
        duration = float.__repr__(duration_ms) if finite else value(duration_ms)
        return (
            f"{self._head}{text(ACCESS_MESSAGE % (method, path, status))}, "
            f'"request_id": {text(request_id) if type(request_id) is str else value(request_id)}, '
            f'"method": {text(method) if type(method) is str else value(method)}, '
            f'"path": {text(path) if type(path) is str else value(path)}, '
            f'"status": {int.__repr__(status) if type(status) is int else value(status)}, '
            f'"duration_ms": {duration}, '
            f'"key": {text(key) if type(key) is str else value(key)}, '
            f'"time": "{self._time(created)}"}}'
        )

    def _time(self, created: float) -> str:
        """datetime.fromtimestamp(created, tz=UTC).isoformat(), its date and time of day made once a
        second: the microseconds rounded as datetime rounds them (the fraction times 10**6, half to even)."""
        if not created >= 0:  # before 1970 (or not a number): datetime's own way
            return datetime.fromtimestamp(created, tz=UTC).isoformat()
        fraction, second = math.modf(created)
        micro = round(fraction * 1e6)
        if micro >= 1_000_000:
            micro, second = micro - 1_000_000, second + 1
        cached = self._second
        if second != cached[0]:
            cached = (second, datetime.fromtimestamp(second, tz=UTC).replace(tzinfo=None).isoformat())
            self._second = cached
        return f"{cached[1]}.{micro:06d}+00:00" if micro else f"{cached[1]}+00:00"

    def _value(self, value: Any) -> str:
        """`value` as the formatter's encoder writes it (json.encoder's C encoder for these kinds)."""
        kind = type(value)
        if kind is str:
            return encode_basestring_ascii(value)  # type: ignore[no-any-return]
        if value is None:
            return "null"
        if kind is int:
            return int.__repr__(value)
        if kind is float and math.isfinite(value):
            return float.__repr__(value)
        return self._encoder.encode(value)  # type: ignore[no-any-return]

    def _record(
        self,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        key: str | None,
        request_id: str | None,
        created: float,
    ) -> logging.LogRecord:
        """The record logging would have made for the line (probes; handleError's report)."""
        extra = {"method": method, "path": path, "status": status, "duration_ms": duration_ms, "key": key}
        log = self.log
        record = log.makeRecord(
            log.name, logging.INFO, __file__, 0, ACCESS_MESSAGE, (method, path, status), None, extra=extra
        )
        record.created = created
        record.request_id = request_id  # as RequestIdFilter stamps it
        return record

    def _vet(self, handler: logging.Handler) -> tuple[Any, Any, list[Any], bool]:
        formatter, filters = handler.formatter, list(handler.filters)
        writable = (
            type(handler) is logging.StreamHandler
            and not self._HANDLER_OWN & vars(handler).keys()
            and len(filters) == 1
            and type(filters[0]) is RequestIdFilter
            and "filter" not in vars(filters[0])
            and type(formatter) is LeanJsonFormatter
            and not self._FORMATTER_OWN & vars(formatter).keys()
            and formatter._lean
            and formatter.json_ensure_ascii is True
            and formatter.json_indent is None
        )
        if writable:
            assert formatter is not None
            writable = all(self._agrees(formatter, *probe) for probe in _PROBES)
        seen = (handler, formatter, filters, writable)
        self._seen = seen
        return seen

    def _agrees(self, formatter: logging.Formatter, *fields: Any) -> bool:
        created = time.time()
        try:  # a formatter that fails on the probe: logging reports it (handleError), the writer stays off
            expected = formatter.format(self._record(*fields, created))
            return self._line(*fields, created) == expected
        except Exception:
            return False


_Record = logging.LogRecord
_isfinite = math.isfinite

_PROBES = [  # method, path, status, duration_ms, key, request_id
    ("POST", "/v1/decisions", 201, 1.23, "orders", "0123456789abcdef0123456789abcdef"),
    ("GET", "/v1/accounts/C00001/GA10", 404, 0.1, None, None),
    ("PUT", '/v1/键/\u2028"x\\', 500, 12345.0, '客户 "键"', "erp-2026.11.27_0001"),
]


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
