"""The shared balance report port: the newest upstream answer per customer, and who is fetching it.

Several instances on one database share it, so that a stale balance is fetched once per database,
not once per instance or per request."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from creditctl.domain.balance import BalanceReport


class SharedBalanceReports(Protocol):
    def latest(self, customer_code: str) -> tuple[BalanceReport | None, str | None, datetime | None]:
        """(newest stored report or None, last error code or None, when that error happened)."""
        ...

    def try_lease(self, customer_code: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take the right to fetch this customer until `until`, unless someone else holds it now."""
        ...

    def store(self, report: BalanceReport, holder: str) -> None:
        """Keep the report (if newer than the stored one) and end the holder's lease."""
        ...

    def fail(self, customer_code: str, holder: str, code: str, now: datetime) -> None:
        """Record the fetch's failure code and end the holder's lease."""
        ...
