"""The adapter's one error: a BalanceUnavailable that also says whether to retry and whether it is ill health.

Classifying where the error is made keeps retry and breaker policy free of HTTP details.
"""

from __future__ import annotations

from creditctl.ports.balance_provider import BalanceUnavailable

RETRYABLE_CODES = frozenset({"UPSTREAM_TIMEOUT", "SERVICE_UNAVAILABLE", "RATE_LIMITED"})
UNHEALTHY_CODES = frozenset({"UPSTREAM_TIMEOUT", "SERVICE_UNAVAILABLE", "UPSTREAM_MALFORMED"})


class UpstreamError(BalanceUnavailable):
    """Why the upstream gave no balance.

    `local` marks refusals made here before anything was sent (breaker open, rate limit, no time
    left, unknown customer): never retried, never counted by the breaker. `retryable` is true for
    network failures, 5xx and 429 sent upstream. `unhealthy` (timeouts, 5xx, network, malformed)
    is what the circuit breaker counts; 4xx and business refusals are answers, not ill health.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        sent: bool = True,
        retry_after_s: float | None = None,
        status: int | None = None,
        local: bool = False,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(code, message, sent=sent and not local, retry_after_s=retry_after_s)
        self.status = status
        self.local = local
        self.retryable = (code in RETRYABLE_CODES and not local) if retryable is None else retryable
        self.unhealthy = code in UNHEALTHY_CODES and not local

    def __repr__(self) -> str:
        return f"UpstreamError({self.code!r}, {str(self)!r}, sent={self.sent!r}, status={self.status!r})"


def local_error(code: str, message: str, *, retry_after_s: float | None = None) -> UpstreamError:
    """A refusal made here: nothing was sent upstream."""
    return UpstreamError(code, message, sent=False, local=True, retry_after_s=retry_after_s)
