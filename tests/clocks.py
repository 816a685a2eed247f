"""Instance clocks that disagree with the database's: real time shifted, or stopped in the past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SkewedClock:
    """Real UTC time plus `offset_s` (negative: a slow clock)."""

    def __init__(self, offset_s: float) -> None:
        self.offset = timedelta(seconds=offset_s)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def __repr__(self) -> str:
        return f"SkewedClock({self.offset.total_seconds():+.1f}s)"


class FrozenClock:
    """Always the same moment: `offset_s` from real time when it was made."""

    def __init__(self, offset_s: float) -> None:
        self._at = datetime.now(UTC) + timedelta(seconds=offset_s)

    def now(self) -> datetime:
        return self._at


class Ticks:
    """A monotonic clock (seconds, as time.monotonic gives) that the test moves by setting `now`."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
