"""API key authentication and role checks. Keys are looked up by hash, cached briefly per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request

from creditctl.domain.api_key import ApiKey, Role, hash_secret
from creditctl.domain.audit import Actor, key_actor
from creditctl.domain.authority import AUTHORITY, Act, Scope, authorize
from creditctl.domain.errors import Forbidden, Unauthenticated
from creditctl.services.api_keys import authenticate

F = TypeVar("F", bound=Callable[..., Any])
CACHE_TTL_S = 10.0  # a revoked key stops working within this many seconds


class KeyCache:
    def __init__(self, ttl_s: float = CACHE_TTL_S, max_size: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._items: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> ApiKey | None:
        item = self._items.get(key_hash)
        if item is None or time.monotonic() - item[0] > self.ttl_s:
            return None
        return item[1]

    def put(self, key_hash: str, key: ApiKey) -> None:
        with self._lock:
            if len(self._items) >= self.max_size:
                self._items.clear()
            self._items[key_hash] = (time.monotonic(), key)


def presented_secret() -> str:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("X-API-Key", "").strip()


def current_key() -> ApiKey:
    """The caller's key, authenticated once per request."""
    key: ApiKey | None = g.get("api_key")
    if key is not None:
        return key
    secret = presented_secret()
    if not secret:
        raise Unauthenticated("send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    cache: KeyCache = current_app.extensions["creditctl.keys"]
    digest = hash_secret(secret)
    key = cache.get(digest)
    if key is None:
        key = authenticate(secret, uow=current_app.extensions["creditctl"].uow())
        cache.put(digest, key)
    current_app.extensions["creditctl.rate_limit"].take(key.id)  # RateLimited: 429, nothing done
    g.api_key = key
    return key


def requires(*roles: Role, global_scope: bool = False) -> Callable[[F], F]:
    """Let the view run only for a key with one of `roles`.

    global_scope=True marks a call that changes or reveals state shared by every customer (upstream
    configs, rule sets, keys, webhooks): a key limited to some customers is refused with 403 there,
    whatever its role, because what such a call touches is not any one customer's."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            check_role(*roles, global_scope=global_scope)
            return view(*args, **kwargs)

        wrapper.__dict__.setdefault("_roles", roles)
        wrapper.__dict__.setdefault("_global_scope", global_scope)
        return wrapper  # type: ignore[return-value]

    return decorate


def requires_act(act: Act) -> Callable[[F], F]:
    """The gate of an act of the authority table (creditctl/domain/authority.py): its roles and, for an
    act only global keys may do, no customer limit, so the route and the table cannot disagree; a refusal
    names the act (errors.authority). Where the act depends on the request (a raise or a lowering, whose
    freeze, an overdraft), the route names the lesser act and the service escalates with `authorize`."""
    rule = AUTHORITY[act]
    gate = requires(*rule.roles, global_scope=rule.scope is Scope.GLOBAL)

    def decorate(view: F) -> F:
        gated = gate(view)

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authorize(act, current_key())
            return gated(*args, **kwargs)

        wrapper.__dict__.update(gated.__dict__)
        return wrapper  # type: ignore[return-value]

    return decorate


def requires_global_admin(view: F) -> F:
    """An admin call on global state: an admin key that is not limited to some customers."""
    return requires(Role.ADMIN, global_scope=True)(view)


def check_role(*roles: Role, global_scope: bool = False) -> ApiKey:
    """The caller's key when it has one of `roles` (and no customer limit if global_scope); else 403.

    For checks that depend on the request (a query parameter that makes a read a write)."""
    return _with_role(current_key(), roles, global_scope)


def _with_role(key: ApiKey, roles: tuple[Role, ...], global_scope: bool) -> ApiKey:
    if key.role not in roles:
        raise Forbidden(f"this call needs a key with role {' or '.join(r.value for r in roles)}")
    if global_scope and key.customers is not None:
        raise Forbidden(
            "this call changes or shows settings shared by every customer; "
            "a key limited to some customers may not make it"
        )
    return key


def gate(act: Act) -> ApiKey:
    """What `requires_act(act)` checks, in its order (the act, then its roles and scope), for a view
    that checks it itself: the caller's key, looked up once."""
    key = current_key()
    authorize(act, key)
    rule = AUTHORITY[act]
    return _with_role(key, rule.roles, rule.scope is Scope.GLOBAL)


def scope() -> frozenset[str] | None:
    """The customers the caller may see (None: all)."""
    return current_key().customers


def actor() -> Actor:
    """Who is making this request, for the audit trail: the key's name and role, the request id."""
    return key_actor(current_key(), g.get("request_id"))
