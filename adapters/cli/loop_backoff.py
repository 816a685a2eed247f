"""How a long-running loop of the worker rides out a failing dependency (the database away, a receiver
down): it keeps running, says so once, waits longer between tries, and says when it works again."""

from __future__ import annotations

import logging
import time

FIRST_WAIT_S = 0.5
MAX_WAIT_S = 5.0  # the longest a loop waits between tries: it resumes within this of the database's return
REMIND_EVERY_S = 300.0  # a streak that goes on is logged again this often, not once per try


class LoopBackoff:
    """One loop's failure streak. `failed(exc)` logs the first failure of a streak at ERROR (with its
    traceback) and then only a reminder every `remind_s`, never a line per try; it returns how long to
    wait before the next try, doubling from `first_s` up to `max_s`. `succeeded()` ends the streak, logged
    at WARNING with its length, so that the log shows both ends of an outage."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        first_s: float = FIRST_WAIT_S,
        max_s: float = MAX_WAIT_S,
        remind_s: float = REMIND_EVERY_S,
    ) -> None:
        self._log, self._what = log, what
        self._first_s, self._max_s, self._remind_s = first_s, max_s, remind_s
        self.failures = 0
        self._since = self._logged_at = 0.0

    def failed(self, exc: BaseException) -> float:
        """Count a failed try; the seconds to wait before the next one."""
        now = time.monotonic()
        if self.failures == 0:
            self._since = self._logged_at = now
            self._log.error(
                "%s failed (%s); trying again every %g s at most, logging nothing more until it works",
                self._what,
                summary(exc),
                self._max_s,
                exc_info=exc,
            )
        elif now - self._logged_at >= self._remind_s:
            self._logged_at = now
            self._log.error(
                "%s still failing after %d tries over %.0f s (%s)",
                self._what,
                self.failures + 1,
                now - self._since,
                summary(exc),
            )
        self.failures += 1
        return min(self._max_s, self._first_s * 2 ** min(self.failures - 1, 16))

    def succeeded(self) -> None:
        """A try worked: end the streak (logged, if there was one)."""
        if self.failures:
            self._log.warning(
                "%s works again, after %d failed tries over %.1f s",
                self._what,
                self.failures,
                time.monotonic() - self._since,
            )
        self.failures = 0


def summary(exc: BaseException) -> str:
    """The exception's type and the first line of what it says (of what caused it, when it wraps one: the
    driver's error inside SQLAlchemy's, the store's failure inside an unwritten webhook outcome)."""
    inner = getattr(exc, "orig", None) or exc.__cause__ or exc
    inner = getattr(inner, "orig", None) or inner
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0] if lines else ''}".rstrip(": ")
