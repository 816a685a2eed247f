"""API keys: created with a role (and optionally customers), shown once, checked by hash."""

from __future__ import annotations

from dataclasses import dataclass

from creditctl.domain.api_key import ApiKey, Role, hash_secret, new_secret
from creditctl.domain.errors import InvalidRequest, Unauthenticated
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.clock import Clock
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.customers import ensure_known


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key: ApiKey
    secret: str  # shown once, never stored


def create_api_key(
    *,
    name: str,
    role: str,
    customers: list[str] | None,
    uow: UnitOfWork,
    clock: Clock,
    balances: BalanceProvider | None = None,
) -> NewApiKey:
    """Make a key; only its hash is kept.

    A key limited to customers needs each to be known; with `balances`, one the provider names is
    registered on the spot (as on its first decision)."""
    if customers and balances is not None:
        for code in sorted(set(customers)):
            ensure_known(code, uow=uow, balances=balances, now=clock.now())
    return _create(name=name, role=role, customers=customers, uow=uow, clock=clock, replace=False)


def replace_api_key(
    *, name: str, role: str, customers: list[str] | None, uow: UnitOfWork, clock: Clock
) -> NewApiKey:
    """Make a key and revoke, in the same transaction, every active key of the same name: a key
    named for a purpose (the demo's) exists once however often it is made again."""
    return _create(name=name, role=role, customers=customers, uow=uow, clock=clock, replace=True)


def _create(
    *, name: str, role: str, customers: list[str] | None, uow: UnitOfWork, clock: Clock, replace: bool
) -> NewApiKey:
    try:
        role_value = Role(role)
    except ValueError:
        raise InvalidRequest(
            f"role must be one of {[r.value for r in Role]}, not {role!r}", field="role"
        ) from None
    if not name.strip():
        raise InvalidRequest("a name is required", field="name")
    secret = new_secret()
    scope = frozenset(customers) if customers else None
    with uow:
        if scope:
            unknown = sorted(c for c in scope if not uow.customers.exists(c))
            if unknown:
                raise InvalidRequest(f"unknown customers: {', '.join(unknown)}", field="customers")
        if replace:
            for old in uow.api_keys.all():
                if old.name == name and old.revoked_at is None:
                    uow.api_keys.revoke(old.id, clock.now())
        key = uow.api_keys.add(
            name=name, role=role_value, customers=scope, key_hash=hash_secret(secret), now=clock.now()
        )
        uow.commit()
    return NewApiKey(key=key, secret=secret)


def authenticate(secret: str, *, uow: UnitOfWork) -> ApiKey:
    """The key for this secret, or Unauthenticated (the same answer for unknown and revoked)."""
    if not secret:
        raise Unauthenticated("an API key is required")
    with uow:
        key = uow.api_keys.by_hash(hash_secret(secret))
    if key is None:
        raise Unauthenticated("the API key is not valid")
    return key


def revoke_api_key(key_id: int, *, uow: UnitOfWork, clock: Clock) -> bool:
    with uow:
        done = uow.api_keys.revoke(key_id, clock.now())
        uow.commit()
    return done


def key_by_hash(key_hash: str, *, uow: UnitOfWork) -> ApiKey:
    """The active key with this hash (a console session keeps the hash, never the key), or
    Unauthenticated when it was revoked since."""
    with uow:
        key = uow.api_keys.by_hash(key_hash)
    if key is None:
        raise Unauthenticated("the API key of this session is no longer valid")
    return key
