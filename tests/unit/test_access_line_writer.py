"""The access line written by AccessLineWriter (adapters/web/logs.py) is the line logging writes, byte for
byte, to the same place; and whenever logging is configured otherwise than configure_logging configures
it (another handler, a filter, a level, a formatter, a record factory), the line goes through logging.
Each request is sent twice, at the same clock readings: through access_line as it is, and through
access_line with the writer off (the logging call, as before the writer)."""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from pythonjsonlogger.json import JsonFormatter

from adapters.web import request_context
from adapters.web.logs import LeanJsonFormatter, configure_logging, request_id_var

NOW = 1764963250.123456  # time.time() of both lines
STARTED, ENDED = 100.0, 100.012346  # perf_counter readings: duration_ms 12.35


class Key:
    def __init__(self, name: str) -> None:
        self.name = name


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def as_configured() -> Iterator[tuple[logging.Handler, io.StringIO]]:
    """The root logger as configure_logging leaves it (pytest's own capturing handlers set aside for the
    while), its handler writing to a StringIO; everything restored after."""
    root, access = logging.getLogger(), logging.getLogger("creditctl.access")
    saved = (root.handlers, root.level, access.level, access.propagate, list(access.filters))
    root.handlers = []
    try:
        configure_logging("INFO")
        handler = root.handlers[0]
        stream = io.StringIO()
        handler.setStream(stream)  # type: ignore[attr-defined]
        yield handler, stream
    finally:
        root.handlers, access.propagate, access.filters = saved[0], saved[3], saved[4]
        root.setLevel(saved[1])
        access.setLevel(saved[2])


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_context, "time", SimpleNamespace(perf_counter=lambda: ENDED))
    monkeypatch.setattr("time.time", lambda: NOW)


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What the writer answered for each line (True: written by it)."""
    answers: list[bool] = []
    write = request_context.access_writer.write

    def spy(*args: Any) -> bool:
        answers.append(write(*args))
        return answers[-1]

    monkeypatch.setattr(request_context.access_writer, "write", spy)
    return answers


def both_ways(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, *line: Any) -> tuple[str, str]:
    request_context.access_line(*line)
    by_writer = stream.getvalue()
    stream.seek(0), stream.truncate()
    with monkeypatch.context() as off:
        off.setattr(request_context.access_writer, "write", lambda *args: False)
        request_context.access_line(*line)
    by_logging = stream.getvalue()
    stream.seek(0), stream.truncate()
    return by_writer, by_logging


REQUESTS = {
    "a decision": (
        "0123456789abcdef0123456789abcdef",
        ("POST", "/v1/decisions", 201, STARTED, Key("orders")),
    ),
    "non-ASCII key name": (
        "erp-2026.11.27_0001",
        ("POST", "/v1/decisions", 201, STARTED, Key('客户 "键"\u2028')),
    ),
    "no key, no request id": (None, ("GET", "/v1/accounts/C00001/GA10", 401, STARTED, None)),
    "non-ASCII path": ("r-1", ("GET", "/v1/accounts/客户/G\\A\n", 404, STARTED, Key("ops"))),
    "no start time": ("r-2", ("PUT", "/v1/rules", 500, None, Key("admin"))),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_writers_line_is_loggings_line_byte_for_byte(
    name: str, clocks: None, written: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id, line = REQUESTS[name]
    token = request_id_var.set(request_id)
    try:
        with as_configured() as (_handler, stream):
            by_writer, by_logging = both_ways(stream, monkeypatch, *line)
    finally:
        request_id_var.reset(token)
    assert written == [True]  # the first line was the writer's
    assert by_writer == by_logging
    assert by_writer.endswith("}\n") and by_writer.count("\n") == 1
    assert '"time": "2025-12-05T19:34:10.123456+00:00"' in by_writer


def _another_root_handler(handler: logging.Handler) -> Records:
    records = Records()
    logging.getLogger().addHandler(records)
    return records


def _a_handler_on_creditctl(handler: logging.Handler) -> Records:
    records = Records()
    logging.getLogger("creditctl").addHandler(records)
    return records


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.key = "redacted"
        return True


def _static_fields(handler: logging.Handler) -> None:
    settings = {"rename_fields": {"levelname": "level", "name": "logger"}, "timestamp": "time"}
    handler.setFormatter(
        JsonFormatter(
            "%(levelname)s %(name)s %(message)s %(request_id)s", static_fields={"svc": "c"}, **settings
        )
    )


def _renamed_key(handler: logging.Handler) -> None:
    renames = {"levelname": "level", "name": "logger", "key": "api_key"}
    handler.setFormatter(
        LeanJsonFormatter(
            "%(levelname)s %(name)s %(message)s %(request_id)s", rename_fields=renames, timestamp="time"
        )
    )


def _record_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    made = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = made(*args, **kwargs)
        record.host = "h1"
        return record

    monkeypatch.setattr(logging, "_logRecordFactory", factory)


CONFIGURATIONS: dict[str, Callable[[logging.Handler, pytest.MonkeyPatch], Any]] = {
    "another handler on the root": lambda h, mp: _another_root_handler(h),
    "a handler on creditctl": lambda h, mp: _a_handler_on_creditctl(h),
    "a filter on the access logger": lambda h, mp: logging.getLogger("creditctl.access").addFilter(
        _DropAll()
    ),
    "another filter on the handler": lambda h, mp: h.addFilter(_Redact()),
    "the handler at WARNING": lambda h, mp: h.setLevel(logging.WARNING),
    "the access logger at WARNING": lambda h, mp: logging.getLogger("creditctl.access").setLevel("WARNING"),
    "the access logger not propagating": lambda h, mp: setattr(
        logging.getLogger("creditctl.access"), "propagate", False
    ),
    "creditctl not propagating": lambda h, mp: mp.setattr(logging.getLogger("creditctl"), "propagate", False),
    "another formatter": lambda h, mp: _static_fields(h),
    "the formatter renaming key": lambda h, mp: _renamed_key(h),
    "a record factory adding a field": lambda h, mp: _record_factory(mp),
    # logging reports the failure through handleError and the caller goes on; the writer must not raise
    "a formatter failing on every record": lambda h, mp: h.setFormatter(
        LeanJsonFormatter("%(levelname)s %(asctime)s %(message)s", datefmt="%H\0")
    ),
    "the access logger disabled": lambda h, mp: mp.setattr(
        logging.getLogger("creditctl.access"), "disabled", True
    ),
    "logging disabled at INFO": lambda h, mp: logging.disable(logging.INFO),
    "INFO named otherwise": lambda h, mp: mp.setitem(logging._levelToName, logging.INFO, "NOTICE"),
}


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_a_line_logging_is_configured_otherwise_for_goes_through_logging(
    name: str, clocks: None, written: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    creditctl = logging.getLogger("creditctl")
    saved_handlers = list(creditctl.handlers)
    token = request_id_var.set("r-9")
    try:
        with as_configured() as (handler, stream):
            assert both_ways(stream, monkeypatch, "POST", "/v1/decisions", 201, STARTED, Key("k"))[0]
            assert written == [True]  # as configured: the writer's
            seen = CONFIGURATIONS[name](handler, monkeypatch)
            by_writer, by_logging = both_ways(
                stream, monkeypatch, "POST", "/v1/decisions", 201, STARTED, Key("客")
            )
            if isinstance(seen, Records):
                assert [r.getMessage() for r in seen.records] == ["POST /v1/decisions 201"] * 2
    finally:
        request_id_var.reset(token)
        creditctl.handlers = saved_handlers
        logging.disable(logging.NOTSET)
    assert written[1:] in ([False], [])  # [] when the level keeps access_line from building the line
    assert by_writer == by_logging


@pytest.mark.parametrize("in_order", [True, False], ids=["in order", "shuffled"])
def test_the_writers_time_is_datetimes_isoformat(in_order: bool) -> None:
    random.seed(20261205)
    edges = [-1.5, 0.0, 1.0, 1764963250.0, 1764963250.9999995, 1764963250.9999996, 1764963250.0000005, 1e-7]
    halves = [1764963250 + k / 1e6 + 5e-7 for k in range(0, 10**6, 997)]
    stamps = edges + halves + [random.uniform(0, 4e9) for _ in range(20000)]
    writer = request_context.access_writer
    for stamp in sorted(stamps) if in_order else stamps:  # in order: each second's text made once, reused
        assert writer._time(stamp) == datetime.fromtimestamp(stamp, tz=UTC).isoformat(), stamp
