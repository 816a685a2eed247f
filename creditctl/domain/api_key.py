"""API keys: random, shown once, stored as a SHA-256 hash; a role and optionally a set of customers.

A key is issued to an owner (a person, or a named system): "four eyes" compares owners, never keys, so one
person holding two keys is still one person."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
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
        object.__setattr__(self, "owner", canonical_owner(self.owner or self.name))

    @property
    def is_global(self) -> bool:
        """Not limited to some customers: may act on state every customer shares."""
        return self.customers is None

    def may_see(self, customer_code: str) -> bool:
        """A key limited to some customers knows nothing of the others."""
        return self.customers is None or customer_code in self.customers


def canonical_owner(text: str) -> str:
    """An owner as stored and shown: Unicode NFKC, inner whitespace collapsed, no edges. Compared with
    `same_owner`, so that "Alice", " alice " and a full-width Alice are one person."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


RESERVED_OWNER_PREFIXES = ("cli:", "rule:", "admin:")


def owner_problem(text: str) -> str | None:
    """Why `text` cannot name an owner: blank, too long, or holding invisible characters (a zero-width
    space would make "ali\u200bce" look like alice and count as someone else)."""
    canonical = canonical_owner(text)
    if not canonical:
        return "an owner is a person's or a system's name, not blank"
    if len(canonical) > 100:
        return "an owner is at most 100 characters"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Cn") for ch in canonical):
        return "an owner may not hold control, format or unassigned characters"
    if canonical.casefold().startswith(RESERVED_OWNER_PREFIXES):
        reserved = ", ".join(RESERVED_OWNER_PREFIXES)
        return f"an owner may not start with {reserved} (the operator's and the rules')"
    return None


def same_owner(a: str | None, b: str | None) -> bool:
    """Whether two owners are one person (canonical form, case folded); None is nobody."""
    if a is None or b is None:
        return False
    return canonical_owner(a).casefold() == canonical_owner(b).casefold()


def new_secret() -> str:
    """A fresh key: 32 random bytes, URL-safe, with a recognisable prefix for secret scanners."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """A fast hash is right here: the key is 256 random bits, nothing to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()
