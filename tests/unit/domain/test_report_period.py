"""Report periods: dates are midnights in the display zone, defaults, limits, offset segments with DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from creditctl.domain.errors import InvalidRequest
from creditctl.domain.report_period import report_period

NOW = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # already 1 December in Shanghai


class TestReportPeriod:
    def test_defaults_to_the_last_seven_whole_days_in_shanghai(self) -> None:
        p = report_period(None, None, tz=None, now=NOW)
        assert p.tz_name == "Asia/Shanghai"
        assert p.end == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # midnight 2 Dec, +08:00
        assert p.end - p.start == timedelta(days=7)
        assert p.days()[-1] == date(2026, 12, 1) and len(p.days()) == 7
        assert [(s.offset_s) for s in p.segments()] == [8 * 3600]

    def test_a_dst_change_cuts_the_period_where_the_offset_changes(self) -> None:
        p = report_period(date(2026, 3, 1), date(2026, 4, 1), tz="America/New_York", now=NOW)
        segments = p.segments()
        assert [s.offset_s for s in segments] == [-5 * 3600, -4 * 3600]
        assert segments[0].end == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 02:00 EST
        assert segments[0].end == segments[1].start and segments[1].end == p.end
        assert len(p.days()) == 31

    @pytest.mark.parametrize(
        ("start", "end", "tz", "message"),
        [
            (date(2026, 11, 30), date(2026, 11, 30), "UTC", "after"),
            (date(2025, 1, 1), date(2026, 11, 30), "UTC", "at most 366 days"),
            (None, None, "Mars/Olympus", "unknown time zone"),
            (datetime(2026, 11, 1), None, "UTC", "offset"),
            # past the years a datetime holds (an OverflowError, a 500 at the API)
            (date(1, 1, 1), date(1, 1, 2), "Asia/Shanghai", "outside the years 1 to 9999"),
            (None, date(1, 1, 3), "UTC", "outside the years 1 to 9999"),
        ],
    )
    def test_refuses_bad_periods(self, start, end, tz, message) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(InvalidRequest, match=message):
            report_period(start, end, tz=tz, now=NOW)
