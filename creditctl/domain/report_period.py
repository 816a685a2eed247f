"""A report's period: UTC instants stored, days counted in a display time zone (any IANA zone, DST too)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from creditctl.domain.errors import InvalidRequest

DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_DAYS = 7
MAX_SPAN_DAYS = 366


@dataclass(frozen=True, slots=True)
class OffsetSegment:
    """A stretch of the period in which the zone's UTC offset does not change."""

    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    offset_s: int  # local = UTC + offset_s


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """start <= t < end, both aware UTC; `tz` is the zone days are counted in."""

    start: datetime
    end: datetime
    tz: ZoneInfo

    @property
    def tz_name(self) -> str:
        return self.tz.key

    def local_day(self, instant: datetime) -> date:
        """The display zone's date of a UTC instant."""
        return instant.astimezone(self.tz).date()

    def days(self) -> list[date]:
        """Every display-zone date the period touches, oldest first."""
        first, last = self.local_day(self.start), self.local_day(self.end - timedelta(microseconds=1))
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def segments(self) -> list[OffsetSegment]:
        """The period cut where the zone's offset changes (one segment for zones without DST)."""
        cuts = [self.start, *_transitions(self.start, self.end, self.tz), self.end]
        return [OffsetSegment(a, b, _offset_s(a, self.tz)) for a, b in pairwise(cuts) if a < b]


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone `name` (default Asia/Shanghai); InvalidRequest for an unknown one."""
    try:
        return ZoneInfo(name or DEFAULT_TZ)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidRequest(f"unknown time zone {name!r}", field="tz") from None


def report_period(
    start: date | datetime | None, end: date | datetime | None, *, tz: str | None, now: datetime
) -> ReportPeriod:
    """The period asked for. A date means midnight of that day in the zone; `to` defaults to the end
    of today (in the zone), `from` to DEFAULT_DAYS days before `to`. Refused: to <= from, more than
    MAX_SPAN_DAYS days."""
    tzinfo = zone(tz)
    try:
        start_at, end_at = _bounds(start, end, tzinfo, now)
    except OverflowError:  # midnight of 0001-01-01 east of UTC, 7 days before 0001-01-03, ...
        why = "the period reaches outside the years 1 to 9999"
        raise InvalidRequest(why, errors={"from": [why], "to": [why]}) from None
    if end_at <= start_at:
        raise InvalidRequest("'to' must be after 'from'", field="to")
    if end_at - start_at > timedelta(days=MAX_SPAN_DAYS):
        raise InvalidRequest(f"a report covers at most {MAX_SPAN_DAYS} days", field="to")
    return ReportPeriod(start_at, end_at, tzinfo)


def _bounds(
    start: date | datetime | None, end: date | datetime | None, tzinfo: ZoneInfo, now: datetime
) -> tuple[datetime, datetime]:
    if end is None:
        end_at = _midnight(now.astimezone(tzinfo).date() + timedelta(days=1), tzinfo)
    else:
        end_at = _instant(end, tzinfo)
    if start is None:
        start_at = _midnight(end_at.astimezone(tzinfo).date() - timedelta(days=DEFAULT_DAYS), tzinfo)
    else:
        start_at = _instant(start, tzinfo)
    return start_at, end_at


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _instant(value: date | datetime, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidRequest("a time needs its offset (2026-11-30T00:00:00+08:00 or ...Z)")
        return value.astimezone(UTC)
    return _midnight(value, tz)


def _offset_s(instant: datetime, tz: ZoneInfo) -> int:
    offset = instant.astimezone(tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _transitions(start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
    """Instants in (start, end) where the offset changes: hourly probes, then bisection to the second."""
    found: list[datetime] = []
    step = timedelta(hours=1)
    t, before = start, _offset_s(start, tz)
    while t < end:
        nxt = min(t + step, end)
        after = _offset_s(nxt, tz)
        if after != before:
            lo, hi = t, nxt  # offset(lo) == before, offset(hi) != before
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid <= lo:
                    break
                lo, hi = (mid, hi) if _offset_s(mid, tz) == before else (lo, mid)
            if hi < end:
                found.append(hi)
        t, before = nxt, after
    return found
