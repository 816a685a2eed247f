"""One structured log record and one set of metric samples per upstream call.

Operators troubleshoot the upstream from these records, so every call leaves one, success or not;
nothing in them is upstream text, so nothing in them can carry a secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adapters.haier import metrics
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.ports.reports import UpstreamCall

# Where each call is also recorded (the upstream_calls table, wired by the composition root).
CallSink = Callable[[UpstreamCall], None]

logger = logging.getLogger("creditctl.haier")


@dataclass
class CallRecord:
    """What one upstream call did; the code making the call fills in status and request id."""

    operation: str
    config: str
    attempt: int
    customer_code: str | None = None
    status: int | None = None
    upstream_request_id: str | None = None
    error_code: str | None = None


@contextmanager
def upstream_call(
    operation: str,
    *,
    config: str,
    attempt: int,
    customer_code: str | None = None,
    on_call: CallSink | None = None,
) -> Iterator[CallRecord]:
    """Time the block, then log, count and record it (`on_call`); a BalanceUnavailable inside sets
    the error code."""
    record = CallRecord(operation, config, attempt, customer_code)
    started = time.perf_counter()
    try:
        yield record
    except BalanceUnavailable as exc:
        record.error_code = exc.code
        raise
    except Exception:
        record.error_code = "INTERNAL"
        raise
    finally:
        latency_s = time.perf_counter() - started
        _emit(record, latency_s)
        if on_call is not None:
            _record(on_call, record, latency_s)


def _record(on_call: CallSink, record: CallRecord, latency_s: float) -> None:
    try:
        on_call(
            UpstreamCall(
                called_at=datetime.now(UTC) - timedelta(seconds=latency_s),
                operation=record.operation,
                config=record.config,
                customer_code=record.customer_code,
                status=record.status,
                latency_ms=round(latency_s * 1000, 3),
                attempt=record.attempt,
                error_code=record.error_code,
            )
        )
    except Exception:  # recording is bookkeeping: it never fails the call
        logger.warning("could not record an upstream call", exc_info=True)


def _emit(record: CallRecord, latency_s: float) -> None:
    outcome = record.error_code or "ok"
    metrics.UPSTREAM_CALLS.labels(operation=record.operation, outcome=outcome).inc()
    metrics.UPSTREAM_LATENCY.labels(operation=record.operation).observe(latency_s)
    extra = {
        "operation": record.operation,
        "status": record.status,
        "latency_ms": round(latency_s * 1000, 1),
        "attempt": record.attempt,
        "error_code": record.error_code,
        "upstream_request_id": record.upstream_request_id,
        "config": record.config,
        "customer_code": record.customer_code,
    }
    level = logging.INFO if record.error_code is None else logging.WARNING
    logger.log(
        level,
        "haier %s call %s (status %s, attempt %d, %.0f ms)",
        record.operation,
        outcome,
        record.status,
        record.attempt,
        latency_s * 1000,
        extra=extra,
    )
