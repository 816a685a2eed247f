"""The Haier provider behind CREDITCTL_BALANCE_PROVIDER=haier: it serves the active stored config and
rebuilds its client when an administrator changes that config (checked every few seconds)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from adapters.haier.balance_provider import HaierBalanceProvider
from adapters.haier.config import HaierConfig, HaierConfigError
from creditctl.domain.balance import BalanceReport
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.ports.clock import Clock
from creditctl.ports.secret_box import SecretUnreadable
from creditctl.ports.token_store import TokenStore

log = logging.getLogger("creditctl.haier")

Loader = Callable[[], tuple[str, dict[str, Any], datetime] | None]


class ActiveConfigHaierProvider:
    """A BalanceProvider that delegates to a HaierBalanceProvider built from the active config."""

    source = "haier"

    def __init__(
        self,
        load_active: Loader,
        *,
        token_store: TokenStore,
        clock: Clock,
        allow_loopback: bool = False,
        recheck_s: float = 5.0,
    ) -> None:
        self._load = load_active
        self._tokens = token_store
        self._clock = clock
        self._allow_loopback = allow_loopback
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._checked = 0.0
        self._key: tuple[str, datetime] | None = None
        self._provider: HaierBalanceProvider | None = None

    def current(self) -> HaierBalanceProvider | None:
        """The provider for the active config, rebuilt when the config changed."""
        if time.monotonic() - self._checked < self._recheck_s:
            return self._provider
        with self._lock:
            if time.monotonic() - self._checked < self._recheck_s:
                return self._provider
            try:
                active = self._load()
            except SecretUnreadable as exc:
                # Its secrets sealed under a retired key, or tampered: serve nothing, so decisions fall
                # back as with no config, instead of failing; say so (the message names no secret).
                log.error("the active Haier config cannot be used: %s", exc.message)
                self._provider, self._key = None, None
                self._checked = time.monotonic()
                return None
            if active is None:
                self._provider, self._key = None, None
            elif self._key != (active[0], active[2]):
                try:
                    config = HaierConfig.from_dict(active[1], allow_loopback=self._allow_loopback)
                except HaierConfigError:
                    # A stored config that no longer validates (say, its host now resolves to a private
                    # address) serves nothing: decisions fall back, readiness shows "unconfigured".
                    self._provider, self._key = None, None
                    self._checked = time.monotonic()
                    return None
                self._provider = HaierBalanceProvider(
                    config,
                    token_store=self._tokens,
                    config_name=active[0],
                    clock=self._clock,
                    allow_loopback=self._allow_loopback,
                )
                self._key = (active[0], active[2])
            self._checked = time.monotonic()
            return self._provider

    def fetch(self, customer_code: str, *, timeout_s: float) -> BalanceReport:
        provider = self.current()
        if provider is None:
            raise BalanceUnavailable(
                "SERVICE_UNAVAILABLE", "no active Haier config; PUT one first", sent=False
            )
        return provider.fetch(customer_code, timeout_s=timeout_s)

    def customers(self) -> list[str]:
        provider = self.current()
        return provider.customers() if provider else []

    def breaker_state(self) -> str:
        provider = self.current()
        return provider.state if provider else "unconfigured"
