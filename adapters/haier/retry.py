"""Retry network errors, 5xx and 429 a bounded number of times, inside the caller's deadline.

tenacity runs the loop; this module supplies the policy: exponential backoff with +-25 % jitter,
Retry-After honoured (never come back sooner), and no sleep that would end past the deadline
(then the last error is raised as it was). Sleep and randomness are injected so tests are exact.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception

from adapters.haier.deadline import Deadline

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many retries, how far apart, and how much time an attempt needs to be worth starting."""

    max_retries: int = 3
    base_s: float = 0.2
    max_backoff_s: float = 5.0
    jitter: float = 0.25
    min_attempt_s: float = 0.05

    def backoff_s(self, retry_number: int, rng: random.Random) -> float:
        """The gap before retry `retry_number` (1-based): base * 2^(n-1), capped, then +-jitter."""
        gap = min(self.max_backoff_s, self.base_s * 2 ** (retry_number - 1))
        return gap * (1 + rng.uniform(-self.jitter, self.jitter))


def call_with_retries(
    attempt_fn: Callable[[int], T],
    *,
    policy: RetryPolicy,
    deadline: Deadline,
    may_retry: Callable[[BaseException], bool],
    sleep: Callable[[float], None],
    rng: random.Random,
    on_retry: Callable[[int, float, BaseException], None] = lambda n, gap, exc: None,
) -> T:
    """Run `attempt_fn(attempt_number)` until it returns, retrying what `may_retry` accepts.

    Stops, re-raising the last error unchanged, after `policy.max_retries` retries or when the next
    gap plus a minimal attempt would not fit in the deadline.
    """

    def wait(state: RetryCallState) -> float:
        gap = policy.backoff_s(state.attempt_number, rng)
        retry_after = getattr(_error(state), "retry_after_s", None)
        return max(gap, retry_after) if retry_after else gap

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number > policy.max_retries:
            return True
        return state.upcoming_sleep + policy.min_attempt_s > deadline.remaining()

    def before_sleep(state: RetryCallState) -> None:
        on_retry(state.attempt_number, state.upcoming_sleep, _error(state))

    attempts = itertools.count(1)
    retrying = Retrying(
        retry=retry_if_exception(may_retry),
        wait=wait,
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(lambda: attempt_fn(next(attempts)))


def _error(state: RetryCallState) -> BaseException:
    outcome = state.outcome
    assert outcome is not None and outcome.failed  # tenacity waits and stops only after a failure
    error = outcome.exception()
    assert error is not None
    return error
