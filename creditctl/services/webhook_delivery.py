"""Deliver the outbox: dispatch events to subscriptions, claim due deliveries, POST them signed, record
the outcome (retry with jittered exponential backoff, dead after max attempts, 410 disables)."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from creditctl.domain.webhook import SIGNATURE_HEADER, retry_delay_s, signature_header
from creditctl.ports.notifier import DeliveryFailed, Notifier
from creditctl.ports.secret_box import SecretBox
from creditctl.ports.webhooks import DueDelivery, WebhookStore
from creditctl.services.webhooks import disable_subscription

log = logging.getLogger("creditctl.webhooks")


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    max_attempts: int = 8
    backoff_s: float = 10.0
    backoff_cap_s: float = 3600.0
    lease_s: float = 60.0  # a claim not settled by then is due again (the worker died mid-send)
    batch: int = 20
    retention_s: float = 7 * 86400.0


@dataclass(slots=True)
class RoundResult:
    dispatched: int = 0
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    disabled: list[str] = field(default_factory=list)


class OutcomeNotRecorded(Exception):
    """A receiver answered, but writing its answer failed (the database went away after the POST).

    Until it is written the delivery stays leased to this worker and then falls due again, and the receiver
    would get the event a second time: keep this and call `record()` once the store answers again, before
    claiming anything else. A late record changes nothing if another claim has taken the delivery since
    (the store's fence), so calling it late is always safe."""

    def __init__(self, delivery: DueDelivery, record: Callable[[], None]) -> None:
        super().__init__(
            f"the outcome of webhook delivery {delivery.id} (event {delivery.event_id}) is not written"
        )
        self.delivery = delivery
        self.record = record


def event_body(delivery: DueDelivery) -> bytes:
    """The POSTed JSON: {"id", "type", "created_at", "data"} (compact, keys in this order)."""
    created = delivery.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    document = {
        "id": delivery.event_id,
        "type": delivery.topic,
        "created_at": created,
        "data": delivery.payload,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def deliver_round(
    *,
    store: WebhookStore,
    notifier: Notifier,
    box: SecretBox,
    policy: DeliveryPolicy,
    unix_time: Callable[[], float] = time.time,
    jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.0),
) -> RoundResult:
    """One round: dispatch new events, then claim and send one batch of due deliveries.

    A receiver's answer that cannot be written ends the round with OutcomeNotRecorded (what is left of
    the batch is not sent: it stays leased, then falls due again)."""
    result = RoundResult()
    now = store.now()
    result.dispatched = store.dispatch(now, policy.batch * 5)
    claimed = store.claim(now, now + timedelta(seconds=policy.lease_s), policy.batch)
    result.claimed = len(claimed)
    for delivery in claimed:
        if delivery.subscription.id in result.disabled:
            continue  # disabled by a 410 earlier in this batch: its deliveries are already dead
        _send_one(delivery, now, store, notifier, box, policy, unix_time, jitter, result)
    return result


def _send_one(
    delivery: DueDelivery,
    claimed_at: datetime,
    store: WebhookStore,
    notifier: Notifier,
    box: SecretBox,
    policy: DeliveryPolicy,
    unix_time: Callable[[], float],
    jitter: Callable[[], float],
    result: RoundResult,
) -> None:
    body = event_body(delivery)
    sub = delivery.subscription
    secrets = [box.open(s) for s in sub.signing_secrets(claimed_at)]
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature_header(secrets, int(unix_time()), body),
        "User-Agent": "creditctl-webhooks/1",
    }
    status: int | None = None
    try:
        status = notifier.post(sub.url, body, headers)
    except DeliveryFailed as exc:
        error = exc.message
    else:
        if 200 <= status < 300:
            answered = status
            _write(delivery, lambda: store.delivered(delivery, store.now(), answered))
            result.delivered += 1
            return
        if status == 410:
            disable_subscription(
                sub.id, f"the receiver answered 410 Gone for event {delivery.event_id}", store=store
            )
            result.disabled.append(sub.id)
            log.warning("webhook %s disabled: %s answered 410", sub.id, sub.url)
            return
        error = f"HTTP {status}"
    _retry_or_bury(delivery, store, policy, jitter, status, error, result)


def _retry_or_bury(
    delivery: DueDelivery,
    store: WebhookStore,
    policy: DeliveryPolicy,
    jitter: Callable[[], float],
    status: int | None,
    error: str,
    result: RoundResult,
) -> None:
    if delivery.attempts >= policy.max_attempts:
        _write(delivery, lambda: store.failed(delivery, status=status, error=error, retry_at=None))
        result.dead += 1
        log.warning("webhook delivery %s dead after %s attempts: %s", delivery.id, delivery.attempts, error)
        return
    delay = retry_delay_s(
        delivery.attempts, base_s=policy.backoff_s, cap_s=policy.backoff_cap_s, jitter=jitter()
    )
    _write(
        delivery,
        lambda: store.failed(
            delivery, status=status, error=error, retry_at=store.now() + timedelta(seconds=delay)
        ),
    )
    result.failed += 1


def _write(delivery: DueDelivery, record: Callable[[], None]) -> None:
    """Record a receiver's answer; if the store fails, hand the write to the caller to do again."""
    try:
        record()
    except Exception as exc:
        raise OutcomeNotRecorded(delivery, record) from exc


def prune_delivered(*, store: WebhookStore, policy: DeliveryPolicy) -> int:
    """Delete what was delivered (and events fully delivered) longer ago than the retention period."""
    return store.prune(store.now() - timedelta(seconds=policy.retention_s))


def redrive(*, store: WebhookStore, delivery_id: int | None = None) -> int:
    """Give dead deliveries (one, or all) a fresh set of attempts, due now."""
    return store.redrive(store.now(), delivery_id)
