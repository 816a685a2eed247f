"""The webhook store port: subscriptions, and the outbox turned into deliveries that workers claim.

Times are the database's (UTC). Delivery is at least once: a claim moves a delivery's due time forward
by a lease, so a worker that dies mid-send leaves it due again when the lease runs out; several workers
never claim the same due delivery at once (SKIP LOCKED on PostgreSQL, the write lock on SQLite).

Subscriptions live outside the unit of work, but every change to one is audited all the same: each
changing method takes the audit entry and appends it in its own transaction, so the event commits with
the change or not at all. A change is made only to the state it was worked out from (`was`): one that
finds the subscription changed meanwhile writes nothing and answers False, and the caller reads again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from creditctl.domain.audit import AuditEntry
from creditctl.domain.webhook import Subscription


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """One claimed (event, subscription) pair; `attempts` counts this attempt and fences the outcome."""

    id: int
    event_id: str
    topic: str
    created_at: datetime
    payload: dict[str, Any]
    attempts: int
    subscription: Subscription


class WebhookStore(Protocol):
    def now(self) -> datetime:
        """The database's time."""
        ...

    def add(self, subscription: Subscription, *, audit: AuditEntry) -> None:
        """Insert it, and append `audit`."""
        ...

    def get(self, subscription_id: str) -> Subscription | None: ...

    def all(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        ...

    def save(self, subscription: Subscription, *, was: Subscription, audit: AuditEntry) -> bool:
        """Store its secrets and times, and append `audit`, if it is still `was`; else False."""
        ...

    def delete(self, was: Subscription, *, audit: AuditEntry) -> bool:
        """Remove a subscription and its deliveries, and append `audit`, if it is still `was`; else
        False (gone, or changed meanwhile)."""
        ...

    def dispatch(self, now: datetime, limit: int) -> int:
        """Turn up to `limit` undispatched events into one pending delivery per active subscription to
        their type (made no later than the event); return how many events were dispatched."""
        ...

    def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[DueDelivery]:
        """Claim pending deliveries due by `now` (oldest due first): attempts + 1, due again at
        `lease_until` unless an outcome is recorded first."""
        ...

    def delivered(self, delivery: DueDelivery, now: datetime, status: int) -> None:
        """Record success (ignored when another claim has moved the delivery on)."""
        ...

    def failed(
        self, delivery: DueDelivery, *, status: int | None, error: str, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt: due again at `retry_at`, or dead (None)."""
        ...

    def disable(self, was: Subscription, reason: str, now: datetime, *, audit: AuditEntry) -> bool:
        """Stop delivering to a subscription (its receiver is gone): its pending deliveries die, and
        `audit` is appended, if it is still `was`; else False."""
        ...

    def redrive(self, now: datetime, delivery_id: int | None = None) -> int:
        """Make dead deliveries (one, or all) of active subscriptions pending again; return how many."""
        ...

    def prune(self, before: datetime) -> int:
        """Delete deliveries delivered before `before` and events dispatched before it with no delivery
        left; return how many rows went."""
        ...

    def counts(self) -> dict[str, int]:
        """Deliveries by status, and undispatched events ("undispatched")."""
        ...
