"""Webhook subscriptions: create (the secret shown once), list, delete, rotate the secret."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import uuid4

from creditctl.domain.errors import InvalidRequest, NotFound
from creditctl.domain.webhook import EVENT_TYPES, Subscription, SubscriptionStatus
from creditctl.ports.secret_box import SecretBox
from creditctl.ports.webhooks import WebhookStore

DEFAULT_OVERLAP_S = 86400


class UnknownSubscription(NotFound):
    code = "not_found.webhook"

    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"no webhook subscription {subscription_id!r}")


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
    by: str,
    store: WebhookStore,
    box: SecretBox,
    check_url: Callable[[str], str],
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
        created_by=by,
        created_at=now,
        updated_at=now,
    )
    store.add(subscription)
    return NewSecret(subscription, secret)


def get_subscription(subscription_id: str, *, store: WebhookStore) -> Subscription:
    subscription = store.get(subscription_id)
    if subscription is None:
        raise UnknownSubscription(subscription_id)
    return subscription


def delete_subscription(subscription_id: str, *, store: WebhookStore) -> None:
    """Stop and forget a subscription (its pending deliveries are dropped)."""
    if not store.delete(subscription_id):
        raise UnknownSubscription(subscription_id)


def rotate_secret(
    subscription_id: str, *, store: WebhookStore, box: SecretBox, overlap_s: int = DEFAULT_OVERLAP_S
) -> NewSecret:
    """A new secret signs from now on; the old one signs too (a second v1=) for `overlap_s` seconds."""
    subscription = get_subscription(subscription_id, store=store)
    secret, now = new_secret(), store.now()
    subscription.previous_secret = subscription.secret
    subscription.previous_secret_until = now + timedelta(seconds=overlap_s)
    subscription.secret = box.seal(secret)
    subscription.updated_at = now
    store.save(subscription)
    return NewSecret(subscription, secret)
