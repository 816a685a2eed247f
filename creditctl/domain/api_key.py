"""API keys: random, shown once, stored as a SHA-256 hash; a role and optionally a set of customers.

A key is issued to an owner (a person, or a named system): "four eyes" compares owners, never keys, so one
person holding two keys is still one person."""

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
    FINANCE = "finance"  # posts payment records: finance's facts, never the customer's own word


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
    # The person (or named system) the key is issued to; a key made without one belongs to its name.
    owner: str = ""

    def __post_init__(self) -> None:
        if not self.owner:
            object.__setattr__(self, "owner", self.name)

    @property
    def is_global(self) -> bool:
        """Not limited to some customers: may act on state every customer shares."""
        return self.customers is None

    def may_see(self, customer_code: str) -> bool:
        """A key limited to some customers knows nothing of the others."""
        return self.customers is None or customer_code in self.customers


def new_secret() -> str:
    """A fresh key: 32 random bytes, URL-safe, with a recognisable prefix for secret scanners."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """A fast hash is right here: the key is 256 random bits, nothing to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()
