"""HaierBalanceProvider: the BalanceProvider port over the JSH open platform.

Composition, outermost first: single flight per customer -> retries within the deadline ->
circuit breaker -> token (shared store, single flight) -> rate limiter -> one HTTP call; a 401
invalidates the token, fetches a new one and retries once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import requests

from adapters.haier import metrics
from adapters.haier.balance_client import BalanceClient
from adapters.haier.circuit_breaker import CircuitBreaker
from adapters.haier.config import HaierConfig
from adapters.haier.deadline import Deadline
from adapters.haier.errors import UpstreamError, local_error
from adapters.haier.observe import CallSink
from adapters.haier.rate_limiter import RateLimiter
from adapters.haier.redaction import Redactor
from adapters.haier.retry import RetryPolicy, call_with_retries
from adapters.haier.single_flight import SingleFlight
from adapters.haier.token_client import TokenClient
from adapters.outbound.guarded_adapter import guarded_session
from creditctl.domain.balance import BalanceReport, PayerBalance
from creditctl.ports.clock import Clock, SystemClock
from creditctl.ports.token_store import Token, TokenStore

logger = logging.getLogger("creditctl.haier")
STALE_TOKEN_GRACE_S = 30.0  # keep using a still-valid token for this long when a refresh fails


class HaierBalanceProvider:
    """Balances from Haier's JSH finance API for the customers of one connection config."""

    def __init__(
        self,
        config: HaierConfig,
        *,
        token_store: TokenStore,
        config_name: str,
        session: requests.Session | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        allow_loopback: bool = False,
        retry_policy: RetryPolicy | None = None,
        breaker_threshold: int = 3,
        breaker_cooldown_s: float = 30.0,
        on_call: CallSink | None = None,
    ) -> None:
        self.source = f"haier:{config_name}"
        self._config = config
        self._name = config_name
        self._store = token_store
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._policy = retry_policy or RetryPolicy()
        self._redactor = Redactor(config.secrets())
        self._redactor.add_basic(config.client_id, config.client_secret)
        session = session or guarded_session(allow_loopback=allow_loopback)
        self._tokens = TokenClient(
            config,
            session=session,
            clock=self._clock,
            redactor=self._redactor,
            config_name=config_name,
            on_call=on_call,
        )
        self._balances = BalanceClient(
            config, session=session, redactor=self._redactor, config_name=config_name, on_call=on_call
        )
        self.breaker = CircuitBreaker(
            threshold=breaker_threshold,
            cooldown_s=breaker_cooldown_s,
            monotonic=monotonic,
            on_change=lambda state: metrics.BREAKER_STATE.labels(config=config_name).set(
                metrics.BREAKER_VALUES[state]
            ),
        )
        metrics.BREAKER_STATE.labels(config=config_name).set(0)
        self._limiter = RateLimiter(config.rate_limit_per_s, monotonic=monotonic, sleep=sleep)
        self._flights: SingleFlight[BalanceReport] = SingleFlight()
        self._token_lifetime_s: float | None = None

    def __repr__(self) -> str:
        return f"HaierBalanceProvider(source={self.source!r}, breaker={self.breaker.state!r})"

    @property
    def state(self) -> str:
        """The circuit breaker's state: "closed", "open" or "half_open"."""
        return self.breaker.state

    def customers(self) -> list[str]:
        return sorted(self._config.customers)

    def fetch(self, customer_code: str, *, timeout_s: float) -> BalanceReport:
        """Every payer balance of `customer_code`, or BalanceUnavailable with a stable code."""
        password = self._config.customer_password_for(customer_code)
        if password is None:
            raise local_error(
                "UNKNOWN_CUSTOMER", f"customer {customer_code[:40]!r} is not configured for {self.source}"
            )
        deadline = Deadline(timeout_s, self._monotonic)
        return self._flights.do(
            customer_code,
            lambda: self._fetch_with_retries(customer_code, password, deadline),
            wait_s=timeout_s,
            on_timeout=lambda: UpstreamError(
                "UPSTREAM_TIMEOUT", "a concurrent query for this customer did not finish in time"
            ),
        )

    def _fetch_with_retries(self, customer_code: str, password: str, deadline: Deadline) -> BalanceReport:
        accounts = call_with_retries(
            lambda attempt: self._attempt(customer_code, password, deadline, attempt),
            policy=self._policy,
            deadline=deadline,
            may_retry=self._may_retry,
            sleep=self._sleep,
            rng=self._rng,
            on_retry=self._count_retry,
        )
        return BalanceReport(customer_code, accounts, fetched_at=self._clock.now(), source=self.source)

    def _may_retry(self, exc: BaseException) -> bool:
        """Retry only what may pass next time, and never past a breaker that has opened."""
        return isinstance(exc, UpstreamError) and exc.retryable and self.breaker.state == "closed"

    def _count_retry(self, attempt: int, gap_s: float, exc: BaseException) -> None:
        code = getattr(exc, "code", type(exc).__name__)
        metrics.UPSTREAM_RETRIES.labels(operation="balance", code=code).inc()
        logger.info(
            "haier retry %d after %s in %.3f s",
            attempt,
            code,
            gap_s,
            extra={"operation": "balance", "attempt": attempt, "error_code": code, "config": self._name},
        )

    def _attempt(
        self, customer_code: str, password: str, deadline: Deadline, attempt: int
    ) -> tuple[PayerBalance, ...]:
        if not self.breaker.allow():
            raise local_error(
                "CIRCUIT_OPEN",
                f"{self.source} is failing; calls are paused (not sent)",
                retry_after_s=self.breaker.retry_after_s() or None,
            )
        try:
            accounts = self._query(customer_code, password, deadline, attempt)
        except UpstreamError as exc:
            if exc.local:
                self.breaker.record_neutral()
            elif exc.unhealthy:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()  # an answer (4xx, refusal): the upstream is up
            raise
        except BaseException:
            self.breaker.record_neutral()
            raise
        self.breaker.record_success()
        return accounts

    def _query(
        self, customer_code: str, password: str, deadline: Deadline, attempt: int
    ) -> tuple[PayerBalance, ...]:
        """One query; on 401 invalidate the token, fetch a new one and try once more."""
        token = self._token(deadline, attempt)
        try:
            return self._send(customer_code, password, token, deadline, attempt)
        except UpstreamError as exc:
            if exc.code != "TOKEN_EXPIRED":
                raise
        self._store.invalidate(self._name, token.value)
        token = self._token(deadline, attempt)
        try:
            return self._send(customer_code, password, token, deadline, attempt)
        except UpstreamError as exc:
            if exc.code != "TOKEN_EXPIRED":
                raise
            raise UpstreamError(
                "AUTH_FAILED", "the platform refused a freshly obtained token (401 twice)", status=401
            ) from None

    def _send(
        self, customer_code: str, password: str, token: Token, deadline: Deadline, attempt: int
    ) -> tuple[PayerBalance, ...]:
        self._limiter.acquire(deadline.remaining())
        return self._balances.query(customer_code, password, token, deadline, attempt=attempt)

    def _token(self, deadline: Deadline, attempt: int) -> Token:
        """A shared token; fetched single-flight when due, refreshed early as the platform asks."""

        def fetch() -> Token:
            fresh = self._tokens.fetch(deadline, attempt=attempt)
            self._redactor.add(fresh.value)
            metrics.TOKEN_REFRESHES.labels(config=self._name).inc()
            self._token_lifetime_s = (fresh.expires_at - self._clock.now()).total_seconds()
            return fresh

        refresh_before = self._config.token_refresh_before_s
        if self._token_lifetime_s is not None:  # a short-lived token must not be refreshed on every call
            refresh_before = min(refresh_before, self._token_lifetime_s / 2)
        try:
            token = self._store.obtain(
                self._name, fetch, refresh_before_s=refresh_before, now=self._clock.now()
            )
        except UpstreamError as exc:
            token = self._still_valid_token()
            if token is None or exc.local:
                raise
            logger.warning(
                "haier token refresh failed (%s); using the current token until it expires", exc.code
            )
        self._redactor.add(token.value)
        return token

    def _still_valid_token(self) -> Token | None:
        current = self._store.current(self._name)
        if current is not None and current.valid_for(self._clock.now(), STALE_TOKEN_GRACE_S):
            return current
        return None
