"""What a driving adapter (web, CLI) is handed by the composition root: the ports, wired."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.clock import Clock
from creditctl.ports.unit_of_work import UnitOfWork


@dataclass
class AppContext:
    """`uow()` makes a fresh unit of work (one per request or command); `checks` back /readyz."""

    uow: Callable[[], UnitOfWork]
    balances: BalanceProvider
    clock: Clock
    decision_deadline_s: float = 2.0
    checks: dict[str, Callable[[], None]] = field(default_factory=dict)
