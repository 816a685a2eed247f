"""API keys: created with a role (and optionally customers), shown once, checked by hash."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from creditctl.domain.api_key import ApiKey, Role, canonical_owner, hash_secret, new_secret, owner_problem
from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.errors import InvalidRequest, Unauthenticated
from creditctl.domain.money import parse_money
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.clock import Clock
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.customers import ensure_known


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key: ApiKey
    secret: str  # shown once, never stored
    revoked: int = 0  # active keys of the same name it replaced (replace_api_key), now revoked


def create_api_key(
    *,
    name: str,
    role: str,
    customers: list[str] | None,
    uow: UnitOfWork,
    clock: Clock,
    balances: BalanceProvider | None = None,
    actor: Actor = SYSTEM,
    approval_limit: str | None = None,
    owner: str | None = None,
) -> NewApiKey:
    """Make a key issued to `owner` (a person or a named system; without one, the key's name); only its
    hash is kept.

    A key limited to customers needs each to be known; with `balances`, one the provider names is
    registered on the spot (as on its first decision). `approval_limit` (a decimal string, admin keys
    only) is the largest deferred order the key may release from the review queue. A finance key posts
    payment records, which no key limited to the customer they describe may do: it is never limited."""
    limit = _approval_limit(approval_limit, role)
    if role == Role.FINANCE.value and customers:
        raise InvalidRequest(
            "a finance key posts payment records, which a key limited to the customer they describe may "
            "not do: make it without --customer",
            field="customers",
        )
    if customers and balances is not None:
        for code in sorted(set(customers)):
            ensure_known(code, uow=uow, balances=balances, now=clock.now())
    return _create(
        name=name,
        role=role,
        customers=customers,
        uow=uow,
        clock=clock,
        replace=False,
        approval_limit=limit,
        actor=actor,
        owner=owner,
    )


def _approval_limit(text: str | None, role: str) -> Decimal | None:
    if text is None:
        return None
    if role != Role.ADMIN.value:
        raise InvalidRequest("only an admin key may have an approval limit", field="approval_limit")
    try:
        limit = parse_money(text)
    except (ValueError, ArithmeticError):
        raise InvalidRequest(
            f"approval limit must be an amount such as 100000.00, not {text!r}", field="approval_limit"
        ) from None
    if limit <= 0:
        raise InvalidRequest("approval limit must be above zero", field="approval_limit")
    return limit


def replace_api_key(
    *,
    name: str,
    role: str,
    customers: list[str] | None,
    uow: UnitOfWork,
    clock: Clock,
    actor: Actor = SYSTEM,
) -> NewApiKey:
    """Make a key and revoke, in the same transaction, every active key of the same name: a key
    named for a purpose (the demo's) exists once however often it is made again. `revoked` on the
    answer says how many it revoked."""
    return _create(name=name, role=role, customers=customers, uow=uow, clock=clock, replace=True, actor=actor)


def _create(
    *,
    name: str,
    role: str,
    customers: list[str] | None,
    uow: UnitOfWork,
    clock: Clock,
    replace: bool,
    actor: Actor,
    approval_limit: Decimal | None = None,
    owner: str | None = None,
) -> NewApiKey:
    try:
        role_value = Role(role)
    except ValueError:
        raise InvalidRequest(
            f"role must be one of {[r.value for r in Role]}, not {role!r}", field="role"
        ) from None
    if not name.strip():
        raise InvalidRequest("a name is required", field="name")
    if len(name) > 100:
        raise InvalidRequest("a name is at most 100 characters", field="name")
    problem = owner_problem(owner if owner is not None else name)  # without one, the name is the owner
    if problem is not None:
        raise InvalidRequest(problem, field="owner" if owner is not None else "name")
    secret = new_secret()
    scope = frozenset(customers) if customers else None
    revoked = 0
    with uow:
        if scope:
            unknown = sorted(c for c in scope if not uow.customers.exists(c))
            if unknown:
                raise InvalidRequest(f"unknown customers: {', '.join(unknown)}", field="customers")
        if replace:
            for old in uow.api_keys.all():
                if old.name == name and old.revoked_at is None and uow.api_keys.revoke(old.id, clock.now()):
                    _record(uow, "api_key.revoked", old, actor)
                    revoked += 1
        key = uow.api_keys.add(
            name=name,
            role=role_value,
            customers=scope,
            key_hash=hash_secret(secret),
            now=clock.now(),
            approval_limit=approval_limit,
            owner=canonical_owner(owner if owner is not None else name),
        )
        _record(uow, "api_key.created", key, actor)
        uow.commit()
    return NewApiKey(key=key, secret=secret, revoked=revoked)


def authenticate(secret: str, *, uow: UnitOfWork) -> ApiKey:
    """The key for this secret, or Unauthenticated (the same answer for unknown and revoked)."""
    if not secret:
        raise Unauthenticated("an API key is required")
    with uow:
        key = uow.api_keys.by_hash(hash_secret(secret))
    if key is None:
        raise Unauthenticated("the API key is not valid")
    return key


def revoke_api_key(key_id: int, *, uow: UnitOfWork, clock: Clock, actor: Actor = SYSTEM) -> bool:
    """Revoke an active key; False when there is no such key or it was revoked already."""
    with uow:
        key = next((k for k in uow.api_keys.all() if k.id == key_id), None)
        done = uow.api_keys.revoke(key_id, clock.now())
        if done and key is not None:
            _record(uow, "api_key.revoked", key, actor)
        uow.commit()
    return done


def _record(uow: UnitOfWork, type_: str, key: ApiKey, actor: Actor) -> None:
    uow.audit.append(
        type_,
        at=uow.now(),
        actor=actor,
        subject={"key_id": key.id, "key_name": key.name},
        after={
            "role": key.role.value,
            "owner": key.owner,
            "customers": key.customers,
            "approval_limit": key.approval_limit,
            "revoked": type_ == "api_key.revoked",
        },
    )


def key_by_hash(key_hash: str, *, uow: UnitOfWork) -> ApiKey:
    """The active key with this hash (a console session keeps the hash, never the key), or
    Unauthenticated when it was revoked since."""
    with uow:
        key = uow.api_keys.by_hash(key_hash)
    if key is None:
        raise Unauthenticated("the API key of this session is no longer valid")
    return key
