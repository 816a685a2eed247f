"""Webhooks: the events other systems may subscribe to, subscriptions, signatures and retry timing."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

EVENT_TYPES = frozenset(
    {
        "balance.low",
        "account.frozen",
        "account.unfrozen",
        "decision.deferred",
        "decision.released",
        "decision.rejected",
        "decision.expired",
        "credit.limit_changed",
        "upstream.down",
        "upstream.up",
    }
)
SIGNATURE_HEADER = "Creditctl-Signature"


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"  # the receiver answered 410 Gone


@dataclass(slots=True)
class Subscription:
    """Where events of the listed types are POSTed; secrets are sealed at rest (signing needs them)."""

    id: str
    url: str
    events: tuple[str, ...]
    secret: str  # sealed
    previous_secret: str | None  # sealed; signs too until previous_secret_until (rotation overlap)
    previous_secret_until: datetime | None
    status: SubscriptionStatus
    disabled_reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    def signing_secrets(self, now: datetime) -> list[str]:
        """The sealed secrets that sign at `now`: the current one, and the previous one while it overlaps."""
        keep = self.previous_secret and self.previous_secret_until and now < self.previous_secret_until
        return [self.secret, self.previous_secret] if keep else [self.secret]  # type: ignore[list-item]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """hex HMAC-SHA256(secret, "<timestamp>.<raw body>")."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex>[,v1=<hex>]`: one v1 per secret (two during a rotation)."""
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets)])


def retry_delay_s(attempts: int, *, base_s: float, cap_s: float, jitter: float) -> float:
    """Exponential backoff after the `attempts`-th failed attempt, scaled by `jitter` in [0.5, 1.0]
    (drawn by the caller), so that receivers coming back are not hit by every retry at once."""
    return min(cap_s, base_s * 2 ** max(0, attempts - 1)) * jitter
