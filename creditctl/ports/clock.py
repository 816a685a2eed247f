"""The clock port: one place time comes from, so tests can move it.

Two clocks, never mixed up (conventions §15). A time that two instances compare (when a hold ends,
when a snapshot was read, when a settlement or a deferral deadline happened) is the database's:
`UnitOfWork.now()` inside a transaction, a database clock (this same protocol) outside one. An
instance's own clock is only for what that process alone decides: its timeouts, backoff, log lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """Wall-clock UTC time."""

    def now(self) -> datetime:
        return datetime.now(UTC)
