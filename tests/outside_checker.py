"""The outside checker (reliability-tests.md): money counted from what the order systems were told and
what the upstream's own ledger holds, never from creditctl's bookkeeping.

For every account, over the whole run (not only at its end: a payment arriving later must not hide an
overspend that happened before it):

    approved and not released  <=  starting money + payments + credit limit

"Approved" is every order the driver was told it may spend (a decision or a re-check that approved it);
"released" is every approved order the driver cancelled. A settled order stays approved (the upstream
debited it), and so does one whose hold expired (the order system was told it may spend, and nobody
cancelled it). The driver settles or releases only orders it got approved, each at most once, and debits
at the upstream exactly the orders it settles.

Checked at every approval, with everything that could have made it legitimate counted generously: an
approval is counted when its answer is recorded (after it committed), a release from the moment it is
requested, a payment from just before the upstream credits it. So a correct service never trips it,
however the threads interleave. At the end, the same with only the releases creditctl confirmed, and the
ledger itself: it never went below minus the credit limit.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from creditctl.domain.decision import Decision
from rules import Outcome
from tests.ledger_upstream import Account, LedgerUpstream

ZERO = Decimal("0.00")


@dataclass
class _Running:
    approved: Decimal = ZERO
    releasing: Decimal = ZERO  # releases requested (confirmed or not)
    payments: Decimal = ZERO


class OutsideBooks:
    """What the order systems were told, kept by the test's driver (thread-safe)."""

    def __init__(self, upstream: LedgerUpstream, credit_limits: dict[Account, Decimal] | None = None) -> None:
        self._upstream = upstream
        self._lock = threading.Lock()
        self.limits: dict[Account, Decimal] = dict(credit_limits or {})
        self.approved: dict[str, tuple[Account, Decimal]] = {}
        self.releasing: set[str] = set()
        self.released: set[str] = set()
        self.settled: set[str] = set()
        self._running: dict[Account, _Running] = defaultdict(_Running)
        self.overspends: list[str] = []  # found while the run went on

    def saw(self, decision: Decision) -> bool:
        """Record an answer; True when it approves (a replay of an approval records nothing new)."""
        if decision.outcome is not Outcome.APPROVE:
            return False
        order = decision.order
        self.approval(order.order_id, (order.customer_code, order.sale_group_code), order.amount)
        return True

    def approval(self, order_id: str, account: Account, amount: Decimal) -> None:
        """An approval as the order system saw it (from a Decision, or an HTTP answer's fields)."""
        with self._lock:
            if order_id in self.approved:
                return
            self.approved[order_id] = (account, amount)
            r = self._running[account]
            r.approved += amount
            start = self._upstream.totals_of(account).start
            ceiling = start + r.payments + self.limits.get(account, ZERO)
            spent = r.approved - r.releasing
            if spent > ceiling:
                self.overspends.append(
                    f"{account[0]}/{account[1]}: approving {order_id} ({amount}) made "
                    f"approved and not released {spent} > start {start} + payments so far {r.payments} "
                    f"+ credit limit {self.limits.get(account, ZERO)} = {ceiling}"
                )

    def pay(self, account: Account, amount: Decimal) -> None:
        """A payment: counted here first, then credited at the upstream (so never counted late)."""
        with self._lock:
            self._running[account].payments += amount
        self._upstream.credit(account[0], account[1], amount)

    def release_requested(self, order_id: str) -> None:
        with self._lock:
            assert order_id in self.approved, f"the driver releases {order_id}, which it never got approved"
            assert order_id not in self.releasing, f"the driver releases {order_id} twice"
            self.releasing.add(order_id)
            account, amount = self.approved[order_id]
            self._running[account].releasing += amount

    def release_confirmed(self, order_id: str) -> None:
        with self._lock:
            self.released.add(order_id)

    def settle(self, order_id: str) -> None:
        """Called by the driver right after it debited the upstream, before it tells creditctl."""
        with self._lock:
            assert order_id in self.approved, f"the driver settled {order_id}, which it never got approved"
            self.settled.add(order_id)

    def spent(self) -> dict[Account, Decimal]:
        out: dict[Account, Decimal] = defaultdict(lambda: ZERO)
        with self._lock:
            for order_id, (account, amount) in self.approved.items():
                if order_id not in self.released:
                    out[account] += amount
        return dict(out)

    def problems(self) -> list[str]:
        """Every overspend found during the run, then at its end, then in the ledger itself."""
        totals = self._upstream.totals()
        with self._lock:
            out = list(self.overspends)
            overlap = self.releasing & self.settled
        for account, spent in sorted(self.spent().items()):
            t = totals[account]
            limit = self.limits.get(account, ZERO)
            ceiling = t.start + t.payments + limit
            if spent > ceiling:
                out.append(
                    f"{account[0]}/{account[1]}: at the end, approved and not released {spent} > "
                    f"start {t.start} + payments {t.payments} + credit limit {limit} = {ceiling}"
                )
        for account, t in sorted(totals.items()):
            limit = self.limits.get(account, ZERO)
            if t.lowest is not None and t.lowest < -limit:
                out.append(
                    f"{account[0]}/{account[1]}: the upstream ledger went down to {t.lowest} "
                    f"(credit limit {limit}): settled orders spent money that was not there"
                )
        out += [f"order {o}: both released and settled by the driver" for o in sorted(overlap)]
        return out
