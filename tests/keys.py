"""API keys for service tests that never touch a key store: a principal of the authority table."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from itertools import count

from creditctl.domain.api_key import ApiKey, Role

_ids = count(1000)


def key(
    name: str,
    role: Role = Role.ADMIN,
    *,
    customers: frozenset[str] | None = None,
    owner: str = "",
    approval_limit: str | None = None,
) -> ApiKey:
    """A key named `name` (owned by `owner`, default its name), limited to `customers` if given."""
    return ApiKey(
        id=next(_ids),
        name=name,
        role=role,
        customers=customers,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        approval_limit=None if approval_limit is None else Decimal(approval_limit),
        owner=owner,
    )
