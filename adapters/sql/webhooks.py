"""Webhook subscriptions and deliveries on SQL (see creditctl.ports.webhooks for the contract).

A subscription change and its audit event go in one transaction on one connection (SqlAuditLog, as the
unit of work uses), after the row is locked as it was read (FOR UPDATE on PostgreSQL; every SQLite
transaction holds the write lock). A creation or a rotation made for a request with an Idempotency-Key
inserts the key's record in that same transaction (claim_before_commit), as a unit of work's commit does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from adapters.sql.audit import SqlAuditLog
from adapters.sql.database_clock import SqlDatabaseClock
from adapters.sql.idempotency import claim_before_commit
from adapters.sql.tables import outbox, webhook_deliveries, webhook_subscriptions
from creditctl.domain.audit import AuditEntry
from creditctl.domain.webhook import Subscription, SubscriptionStatus
from creditctl.ports.webhooks import DueDelivery

_s, _d, _o = webhook_subscriptions.c, webhook_deliveries.c, outbox.c


class SqlWebhookStore:
    def __init__(self, engine: Engine, clock: SqlDatabaseClock | None = None) -> None:
        self._engine = engine
        self._clock = clock or SqlDatabaseClock(engine)

    def now(self) -> datetime:
        return self._clock.now()

    def add(self, subscription: Subscription, *, audit: AuditEntry) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                insert(webhook_subscriptions).values(_values(subscription) | {"id": subscription.id})
            )
            _append(conn, audit)
            claim = claim_before_commit(conn)  # a retried POST with its Idempotency-Key: this one only
        if claim is not None:
            claim.written = True

    def get(self, subscription_id: str) -> Subscription | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(webhook_subscriptions).where(_s.id == subscription_id)).first()
            conn.rollback()
        return None if row is None else _subscription(row)

    def all(self) -> list[Subscription]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(webhook_subscriptions).order_by(_s.created_at, _s.id)).all()
            conn.rollback()
        return [_subscription(r) for r in rows]

    def save(self, subscription: Subscription, *, was: Subscription, audit: AuditEntry) -> bool:
        with self._engine.begin() as conn:
            if not _lock(conn, was):
                return False
            conn.execute(
                update(webhook_subscriptions).where(_s.id == subscription.id).values(_values(subscription))
            )
            _append(conn, audit)
            claim = claim_before_commit(conn)
        if claim is not None:
            claim.written = True
        return True

    def delete(self, was: Subscription, *, audit: AuditEntry) -> bool:
        with self._engine.begin() as conn:
            if not _lock(conn, was):
                return False
            conn.execute(delete(webhook_deliveries).where(_d.subscription_id == was.id))
            conn.execute(delete(webhook_subscriptions).where(_s.id == was.id))
            _append(conn, audit)
        return True

    def dispatch(self, now: datetime, limit: int) -> int:
        try:
            with self._engine.begin() as conn:
                events = conn.execute(
                    select(_o.id, _o.topic, _o.created_at)
                    .where(_o.dispatched_at.is_(None))
                    .order_by(_o.created_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                ).all()
                if not events:
                    return 0
                subs = conn.execute(
                    select(_s.id, _s.events, _s.created_at).where(_s.status == SubscriptionStatus.ACTIVE)
                ).all()
                rows = [
                    {
                        "event_id": e.id,
                        "subscription_id": s.id,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for e in events
                    for s in subs
                    if e.topic in s.events and s.created_at <= e.created_at
                ]
                if rows:
                    conn.execute(insert(webhook_deliveries), rows)
                conn.execute(
                    update(outbox).where(_o.id.in_([e.id for e in events])).values(dispatched_at=now)
                )
        except IntegrityError:  # another worker dispatched the same events first (SQLite, several workers)
            return 0
        return len(events)

    def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[DueDelivery]:
        due = (
            select(_d.id)
            .where(_d.status == "pending", _d.next_attempt_at <= now)
            .order_by(_d.next_attempt_at, _d.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with self._engine.begin() as conn:
            ids = (
                conn.execute(
                    update(webhook_deliveries)
                    .where(_d.id.in_(due))
                    .values(attempts=_d.attempts + 1, next_attempt_at=lease_until)
                    .returning(_d.id)
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            rows = conn.execute(
                select(
                    _d.id.label("delivery_id"),
                    _d.attempts,
                    _o.id.label("event_id"),
                    _o.topic,
                    _o.payload,
                    _o.created_at.label("event_created_at"),
                    webhook_subscriptions,
                )
                .join(outbox, _o.id == _d.event_id)
                .join(webhook_subscriptions, _s.id == _d.subscription_id)
                .where(_d.id.in_(ids))
                .order_by(_d.id)
            ).all()
        return [
            DueDelivery(
                id=r.delivery_id,
                event_id=r.event_id,
                topic=r.topic,
                created_at=r.event_created_at,
                payload=r.payload,
                attempts=r.attempts,
                subscription=_subscription(r),
            )
            for r in rows
        ]

    def delivered(self, delivery: DueDelivery, now: datetime, status: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(*_fence(delivery))
                .values(status="delivered", delivered_at=now, last_status=status, last_error=None)
            )

    def failed(
        self, delivery: DueDelivery, *, status: int | None, error: str, retry_at: datetime | None
    ) -> None:
        values: dict[str, Any] = {"last_status": status, "last_error": error[:500]}
        if retry_at is None:
            values["status"] = "dead"
        else:
            values["next_attempt_at"] = retry_at
        with self._engine.begin() as conn:
            conn.execute(update(webhook_deliveries).where(*_fence(delivery)).values(values))

    def disable(self, was: Subscription, reason: str, now: datetime, *, audit: AuditEntry) -> bool:
        with self._engine.begin() as conn:
            if not _lock(conn, was):
                return False
            conn.execute(
                update(webhook_subscriptions)
                .where(_s.id == was.id)
                .values(status=SubscriptionStatus.DISABLED, disabled_reason=reason[:500], updated_at=now)
            )
            conn.execute(
                update(webhook_deliveries)
                .where(_d.subscription_id == was.id, _d.status == "pending")
                .values(status="dead", last_error=f"subscription disabled: {reason}"[:500])
            )
            _append(conn, audit)
        return True

    def redrive(self, now: datetime, delivery_id: int | None = None) -> int:
        active = select(_s.id).where(_s.status == SubscriptionStatus.ACTIVE)
        stmt = update(webhook_deliveries).where(_d.status == "dead", _d.subscription_id.in_(active))
        if delivery_id is not None:
            stmt = stmt.where(_d.id == delivery_id)
        with self._engine.begin() as conn:
            return conn.execute(
                stmt.values(status="pending", attempts=0, next_attempt_at=now, last_error=None)
            ).rowcount

    def prune(self, before: datetime) -> int:
        with self._engine.begin() as conn:
            gone = conn.execute(
                delete(webhook_deliveries).where(_d.status == "delivered", _d.delivered_at < before)
            ).rowcount
            gone += conn.execute(
                delete(outbox).where(
                    _o.dispatched_at < before,
                    ~exists().where(_d.event_id == _o.id),
                )
            ).rowcount
        return gone

    def counts(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(_d.status, func.count()).group_by(_d.status)).all()
            waiting = conn.execute(
                select(func.count()).select_from(outbox).where(_o.dispatched_at.is_(None))
            ).scalar_one()
            conn.rollback()
        return {**{status: n for status, n in rows}, "undispatched": waiting}

    def reseal_all(self, reseal: Callable[[str], str]) -> int:
        """Key rotation: re-encrypt every subscription's signing secrets (the current and, while it still
        signs, the previous) under the newest key, in one transaction; the secrets themselves do not
        change, so receivers notice nothing. Not an audited change of a subscription."""
        count = 0
        with self._engine.begin() as conn:
            rows = conn.execute(select(_s.id, _s.secret, _s.previous_secret).with_for_update()).all()
            for row in rows:
                previous = None if row.previous_secret is None else reseal(row.previous_secret)
                conn.execute(
                    update(webhook_subscriptions)
                    .where(_s.id == row.id)
                    .values(secret=reseal(row.secret), previous_secret=previous)
                )
                count += 1
        return count


def _lock(conn: Connection, was: Subscription) -> bool:
    """Lock the subscription if it is still as `was` was read: every change writes updated_at, a
    rotation the secret, a disable the status. False when it is gone or changed meanwhile."""
    still = (
        _s.id == was.id,
        _s.updated_at == was.updated_at,
        _s.secret == was.secret,
        _s.status == was.status.value,
    )
    return conn.execute(select(_s.id).where(*still).with_for_update()).first() is not None


def _append(conn: Connection, entry: AuditEntry) -> None:
    SqlAuditLog(conn).append(
        entry.type,
        at=entry.at,
        actor=entry.actor,
        subject=entry.subject,
        before=entry.before,
        after=entry.after,
    )


def _fence(delivery: DueDelivery) -> tuple[Any, ...]:
    """Only the claim that made this attempt records its outcome (a later claim has moved it on)."""
    return (_d.id == delivery.id, _d.status == "pending", _d.attempts == delivery.attempts)


def _values(s: Subscription) -> dict[str, Any]:
    return {
        "url": s.url,
        "events": list(s.events),
        "secret": s.secret,
        "previous_secret": s.previous_secret,
        "previous_secret_until": s.previous_secret_until,
        "status": s.status.value,
        "disabled_reason": s.disabled_reason,
        "created_by": s.created_by,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


def _subscription(r: Row[Any]) -> Subscription:
    return Subscription(
        id=r.id,
        url=r.url,
        events=tuple(r.events),
        secret=r.secret,
        previous_secret=r.previous_secret,
        previous_secret_until=r.previous_secret_until,
        status=SubscriptionStatus(r.status),
        disabled_reason=r.disabled_reason,
        created_by=r.created_by,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )
