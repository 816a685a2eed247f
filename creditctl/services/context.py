"""What a driving adapter (web, CLI) is handed by the composition root: the ports, wired."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from creditctl.ports.audit_anchor import AnchorSink
from creditctl.ports.backtests import BacktestStore
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.clock import Clock
from creditctl.ports.console_sessions import ConsoleSessions
from creditctl.ports.decision_history import DecisionHistory
from creditctl.ports.notifier import Notifier
from creditctl.ports.reports import ReportQueries
from creditctl.ports.secret_box import SecretBox
from creditctl.ports.turns import NO_TURNS, Turns
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.ports.webhooks import WebhookStore
from creditctl.services.backtest_replay import BacktestPolicy
from creditctl.services.webhook_delivery import DeliveryPolicy


@dataclass(frozen=True)
class UpstreamConfigTools:
    """How to check and show the upstream's connection config; its shape belongs to the adapter."""

    kind: str
    validate: Callable[[dict[str, Any]], Any]
    redact: Callable[[Any], dict[str, Any]]
    box: SecretBox
    check: Callable[[str | None], list[dict[str, Any]]] | None = None


@dataclass(frozen=True)
class WebhookTools:
    """Webhook subscriptions and their delivery: the store, the sender, the URL policy, the timings."""

    store: WebhookStore
    notifier: Notifier
    box: SecretBox
    check_url: Callable[[str], str]
    policy: DeliveryPolicy
    secret_overlap_s: int = 86400


@dataclass
class AppContext:
    """`uow()` makes a fresh unit of work (one per request or command); `checks` (must pass),
    `status` (reported, this process) and `shared_upstream` (reported, every instance) back /readyz."""

    uow: Callable[[], UnitOfWork]
    balances: BalanceProvider
    clock: Clock
    decision_deadline_s: float = 2.0
    turns: Turns = NO_TURNS  # one account's orders take turns in the process (decide_order)
    checks: dict[str, Callable[[], None]] = field(default_factory=dict)
    status: dict[str, Callable[[], object]] = field(default_factory=dict)
    # The upstream as every instance sees it (the database's shared state), beside `status`, which is
    # this process's own view (its circuit breaker); None when balances come from no upstream.
    shared_upstream: Callable[[], dict[str, Any]] | None = None
    upstream_configs: UpstreamConfigTools | None = None
    balance_source: Callable[[], str] | None = None  # e.g. "haier:main"; default: balances.source
    decision_history: DecisionHistory | None = None  # for backtests
    backtests: BacktestStore | None = None
    backtest_policy: BacktestPolicy = field(default_factory=BacktestPolicy)
    # Reports, audit exports and backtests' history may read a replica (CREDITCTL_READ_DATABASE_URL):
    # `reports` and `read_uow` then read it; `live_reports` is the primary's, for a listing an operator
    # acts on. None: the same as `reports` / `uow`.
    reports: ReportQueries | None = None
    live_reports: ReportQueries | None = None
    read_uow: Callable[[], UnitOfWork] | None = None
    webhooks: WebhookTools | None = None
    # Keys that sign console session cookies, newest first (derived from the instance's secret keys;
    # empty: the console refuses to sign anyone in).
    session_keys: tuple[str, ...] = ()
    console_sessions: ConsoleSessions | None = None  # None: the console signs no one in
    audit_anchor: AnchorSink | None = None  # where the worker anchors the chain's head (None: nowhere)
    audit_anchor_every_s: float = 60.0

    def reports_now(self) -> ReportQueries:
        """Report queries that see every commit (the primary's): for a listing someone acts on."""
        reports = self.live_reports or self.reports
        assert reports is not None, "reports are not wired"
        return reports

    def reading_uow(self) -> UnitOfWork:
        """A unit of work for reads that tolerate lag (exports): the replica's when one is set."""
        return (self.read_uow or self.uow)()

    def source_of_balances(self) -> str:
        """Where balances come from now: "fake", or "haier:<name of the active config>"."""
        return self.balance_source() if self.balance_source else self.balances.source
