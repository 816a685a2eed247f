"""The Haier provider behind CREDITCTL_BALANCE_PROVIDER=haier: it serves the active stored config and
rebuilds its client when an administrator changes that config.

Every call that goes to the upstream first reads the active config's version (a cheap query that opens
no secret), so a change made through any instance is used by every instance from its next upstream call
on: a customer added to the config is served at once, a changed password or host is never used stale.
Decisions served from a stored snapshot never get here, so they pay nothing for this."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any

from adapters.haier.balance_provider import HaierBalanceProvider
from adapters.haier.config import HaierConfig, HaierConfigError
from adapters.haier.observe import CallSink
from creditctl.domain.balance import BalanceReport
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.ports.clock import Clock
from creditctl.ports.secret_box import SecretUnreadable
from creditctl.ports.token_store import TokenStore

log = logging.getLogger("creditctl.haier")

Loader = Callable[[], tuple[str, dict[str, Any], datetime] | None]
VersionLoader = Callable[[], Hashable | None]
_UNSEEN = object()


class ActiveConfigHaierProvider:
    """A BalanceProvider that delegates to a HaierBalanceProvider built from the active config."""

    def __init__(
        self,
        load_active: Loader,
        *,
        load_version: VersionLoader,
        token_store: TokenStore,
        clock: Clock,
        allow_loopback: bool = False,
        on_call: CallSink | None = None,
    ) -> None:
        self._on_call = on_call
        self._load = load_active
        self._load_version = load_version
        self._tokens = token_store
        self._clock = clock
        self._allow_loopback = allow_loopback
        self._lock = threading.Lock()
        self._version: object = _UNSEEN
        self._provider: HaierBalanceProvider | None = None

    source = "haier"

    def active_source(self) -> str:
        """ "haier:<config name>" of the active config, or "haier" while there is none."""
        provider = self.current()
        return provider.source if provider else "haier"

    def current(self) -> HaierBalanceProvider | None:
        """The provider for the active config as it is now, rebuilt when the config changed."""
        version = self._load_version()
        if version == self._version:
            return self._provider
        with self._lock:
            if version != self._version:
                self._provider = self._build()
                # Remembered even when nothing could be built: an unusable config is reported once
                # per change, not once per call.
                self._version = version
            return self._provider

    def _build(self) -> HaierBalanceProvider | None:
        try:
            active = self._load()
        except SecretUnreadable as exc:
            # Its secrets sealed under a retired key, or tampered: serve nothing, so decisions fall
            # back as with no config, instead of failing; say so (the message names no secret).
            log.error("the active Haier config cannot be used: %s", exc.message)
            return None
        if active is None:
            return None
        name, document, _updated_at = active
        try:
            config = HaierConfig.from_dict(document, allow_loopback=self._allow_loopback)
        except HaierConfigError:
            # A stored config that no longer validates (say, its host now resolves to a private
            # address) serves nothing: decisions fall back, readiness shows "unconfigured".
            log.error("the active Haier config %r no longer validates; serving no balances", name)
            return None
        return HaierBalanceProvider(
            config,
            token_store=self._tokens,
            config_name=name,
            clock=self._clock,
            allow_loopback=self._allow_loopback,
            on_call=self._on_call,
        )

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
