"""Webhook subscriptions: create (the secret shown once), list, delete, rotate the secret, disable.

Every change is an audit event written with it (the store appends it in the change's transaction).
The events say where a subscription posts what and when its secret was rotated, never a secret."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import uuid4

from creditctl.domain.audit import SYSTEM, Actor, AuditEntry
from creditctl.domain.audit_records import webhook_state, webhook_subject
from creditctl.domain.errors import Conflict, InvalidRequest, NotFound
from creditctl.domain.webhook import EVENT_TYPES, Subscription, SubscriptionStatus
from creditctl.ports.secret_box import SecretBox
from creditctl.ports.webhooks import WebhookStore

DEFAULT_OVERLAP_S = 86400
CHANGE_ATTEMPTS = 5
T = TypeVar("T")


class UnknownSubscription(NotFound):
    code = "not_found.webhook"

    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"no webhook subscription {subscription_id!r}")


class SubscriptionBusy(Conflict):
    code = "conflict.webhook_busy"

    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"webhook subscription {subscription_id!r} kept changing meanwhile; try again")


@dataclass(frozen=True, slots=True)
class NewSecret:
    subscription: Subscription
    secret: str  # in clear, shown once


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def create_subscription(
    url: str,
    events: Sequence[str],
    *,
    store: WebhookStore,
    box: SecretBox,
    check_url: Callable[[str], str],
    actor: Actor = SYSTEM,
) -> NewSecret:
    """Subscribe `url` to `events`; the URL must pass the outbound URL policy (ValueError: refused)."""
    try:
        check_url(url)
    except ValueError as exc:
        raise InvalidRequest(f"url is not allowed: {exc}", field="url") from None
    unknown = sorted(set(events) - EVENT_TYPES)
    if not events or unknown:
        why = f"unknown event types {unknown}" if unknown else "at least one event type is required"
        raise InvalidRequest(f"{why}; known: {sorted(EVENT_TYPES)}", field="events")
    secret, now = new_secret(), store.now()
    subscription = Subscription(
        id=uuid4().hex,
        url=url,
        events=tuple(sorted(set(events))),
        secret=box.seal(secret),
        previous_secret=None,
        previous_secret_until=None,
        status=SubscriptionStatus.ACTIVE,
        disabled_reason=None,
        created_by=actor.name,
        created_at=now,
        updated_at=now,
    )
    store.add(subscription, audit=_entry("created", now, actor, None, subscription))
    return NewSecret(subscription, secret)


def get_subscription(subscription_id: str, *, store: WebhookStore) -> Subscription:
    subscription = store.get(subscription_id)
    if subscription is None:
        raise UnknownSubscription(subscription_id)
    return subscription


def delete_subscription(subscription_id: str, *, store: WebhookStore, actor: Actor = SYSTEM) -> None:
    """Stop and forget a subscription (its pending deliveries are dropped)."""

    def attempt(was: Subscription, now: datetime) -> bool | None:
        return store.delete(was, audit=_entry("deleted", now, actor, was, None)) or None

    _change(subscription_id, store, attempt)


def rotate_secret(
    subscription_id: str,
    *,
    store: WebhookStore,
    box: SecretBox,
    overlap_s: int = DEFAULT_OVERLAP_S,
    actor: Actor = SYSTEM,
) -> NewSecret:
    """A new secret signs from now on; the old one signs too (a second v1=) for `overlap_s` seconds."""
    secret = new_secret()
    sealed = box.seal(secret)

    def attempt(was: Subscription, now: datetime) -> Subscription | None:
        rotated = replace(
            was,
            secret=sealed,
            previous_secret=was.secret,
            previous_secret_until=now + timedelta(seconds=overlap_s),
            updated_at=now,
        )
        entry = _entry("secret_rotated", now, actor, was, rotated, secret_rotated_at=now)
        return rotated if store.save(rotated, was=was, audit=entry) else None

    return NewSecret(_change(subscription_id, store, attempt), secret)


def disable_subscription(subscription_id: str, reason: str, *, store: WebhookStore) -> bool:
    """Stop delivering to a subscription whose receiver is gone (creditctl's own decision, audited as
    the system's). False when there is nothing to do (it is gone, or disabled already), or when it kept
    changing meanwhile: the receiver's next 410 disables it then, and the worker's round goes on."""

    def attempt(was: Subscription, now: datetime) -> bool | None:
        if was.status is SubscriptionStatus.DISABLED:
            return False
        after = replace(was, status=SubscriptionStatus.DISABLED, disabled_reason=reason, updated_at=now)
        entry = _entry("disabled", now, SYSTEM, was, after)
        return store.disable(was, reason, now, audit=entry) or None

    try:
        return _change(subscription_id, store, attempt)
    except (UnknownSubscription, SubscriptionBusy):
        return False


def _change(
    subscription_id: str, store: WebhookStore, attempt: Callable[[Subscription, datetime], T | None]
) -> T:
    """Read the subscription and `attempt` a change to it (None: it changed meanwhile, nothing was
    written); read again and retry. So an event's `before` is exactly the state its change replaced."""
    for _ in range(CHANGE_ATTEMPTS):
        done = attempt(get_subscription(subscription_id, store=store), store.now())
        if done is not None:
            return done
    raise SubscriptionBusy(subscription_id)


def _entry(
    change: str,
    at: datetime,
    actor: Actor,
    before: Subscription | None,
    after: Subscription | None,
    **more: datetime,
) -> AuditEntry:
    subject = before if before is not None else after
    assert subject is not None
    return AuditEntry(
        type=f"webhook_subscription.{change}",
        at=at,
        actor=actor,
        subject=webhook_subject(subject),
        before=None if before is None else webhook_state(before),
        after=None if after is None else webhook_state(after) | more,
    )
