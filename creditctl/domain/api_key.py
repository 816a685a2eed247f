"""API keys: random, shown once, stored as a SHA-256 hash; a role and optionally a set of customers."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

KEY_PREFIX = "cck_"


class Role(StrEnum):
    ORDERS = "orders"
    ADMIN = "admin"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    role: Role
    customers: frozenset[str] | None
    created_at: datetime
    revoked_at: datetime | None = None
    # Approval authority: the largest order amount this key may release from the review queue
    # (None: it may not release at all).
    approval_limit: Decimal | None = None

    def may_see(self, customer_code: str) -> bool:
        """A key limited to some customers knows nothing of the others."""
        return self.customers is None or customer_code in self.customers


def new_secret() -> str:
    """A fresh key: 32 random bytes, URL-safe, with a recognisable prefix for secret scanners."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """A fast hash is right here: the key is 256 random bits, nothing to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()
