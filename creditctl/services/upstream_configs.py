"""Managing upstream connection configs: validated, secrets sealed at rest, never shown back.

The config's shape belongs to the adapter; the service is handed its `validate` and `redact`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from creditctl.domain.errors import InvalidRequest, NotFound
from creditctl.ports.clock import Clock
from creditctl.ports.secret_box import SecretBox
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.ports.upstream_configs import StoredConfig

SECRET_FIELDS = ("client_secret", "password", "customer_password")
KEEP = "set"  # sending back "set" for a secret keeps the stored one


@dataclass(frozen=True, slots=True)
class ActiveConfig:
    name: str
    document: dict[str, Any]  # plaintext: hand it only to the adapter that needs it
    updated_at: datetime


def seal_document(document: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    out = copy.deepcopy(document)
    for name in SECRET_FIELDS:
        if isinstance(out.get(name), str) and out[name]:
            out[name] = box.seal(out[name])
    if isinstance(out.get("customers"), dict):
        out["customers"] = {code: box.seal(str(pw)) for code, pw in out["customers"].items()}
    return out


def open_document(document: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    out = copy.deepcopy(document)
    for name in SECRET_FIELDS:
        if isinstance(out.get(name), str) and out[name]:
            out[name] = box.open(out[name])
    if isinstance(out.get("customers"), dict):
        out["customers"] = {code: box.open(pw) for code, pw in out["customers"].items()}
    return out


def put_config(
    name: str,
    document: dict[str, Any],
    *,
    kind: str,
    validate: Callable[[dict[str, Any]], Any],
    redact: Callable[[Any], dict[str, Any]],
    uow: UnitOfWork,
    box: SecretBox,
    clock: Clock,
) -> dict[str, Any]:
    """Create or replace a config. Secrets sent as "set" keep their stored value. Returns it redacted."""
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise InvalidRequest("a config name is 1-64 letters, digits, '-' or '_'", field="name")
    with uow:
        existing = uow.upstream_configs.get(name)
        # Open the stored secrets only to keep some: a config whose secrets no key opens any more
        # (a retired key, tampering) is repaired by sending every secret anew.
        previous = open_document(existing.document, box) if existing and _keeps_any(document) else {}
        merged = _keep_unchanged_secrets(document, previous)
        parsed = validate(merged)  # raises InvalidRequest with every field's problems
        now = clock.now()
        uow.upstream_configs.put(
            StoredConfig(
                name=name,
                kind=kind,
                document=seal_document(merged, box),
                is_active=bool(merged.get("is_active", True)),
                created_at=existing.created_at if existing else now,
                updated_at=now,
            )
        )
        uow.commit()
    return redact(parsed)


def get_config(
    name: str,
    *,
    validate: Callable[[dict[str, Any]], Any],
    redact: Callable[[Any], dict[str, Any]],
    uow: UnitOfWork,
    box: SecretBox,
) -> dict[str, Any]:
    with uow:
        stored = uow.upstream_configs.get(name)
    if stored is None:
        raise NotFound(f"no upstream config named {name!r}", field="name")
    return redact(validate(open_document(stored.document, box))) | {
        "name": stored.name,
        "is_active": stored.is_active,  # the document keeps what was sent; activating another clears this
        "updated_at": stored.updated_at.isoformat(),
    }


def active_config(kind: str, *, uow: UnitOfWork, box: SecretBox) -> ActiveConfig | None:
    with uow:
        stored = uow.upstream_configs.active(kind)
    if stored is None:
        return None
    return ActiveConfig(stored.name, open_document(stored.document, box), stored.updated_at)


def reseal_configs(*, uow: UnitOfWork, box: SecretBox) -> int:
    """Re-encrypt every stored config's secrets under the newest key (key rotation)."""
    with uow:
        configs = uow.upstream_configs.all()
        for c in configs:
            resealed = seal_document(open_document(c.document, box), box)
            uow.upstream_configs.put(
                StoredConfig(c.name, c.kind, resealed, c.is_active, c.created_at, c.updated_at)
            )
        uow.commit()
    return len(configs)


def _keeps_any(document: dict[str, Any]) -> bool:
    customers = document.get("customers")
    return any(document.get(name) == KEEP for name in SECRET_FIELDS) or (
        isinstance(customers, dict) and KEEP in customers.values()
    )


def _keep_unchanged_secrets(document: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(document)
    for name in SECRET_FIELDS:
        if merged.get(name) == KEEP:
            if not previous.get(name):
                raise InvalidRequest(f'{name} is "set" but no value is stored yet', field=name)
            merged[name] = previous[name]
    if isinstance(merged.get("customers"), dict):
        old = previous.get("customers") or {}
        for code, pw in list(merged["customers"].items()):
            if pw == KEEP:
                if code not in old:
                    raise InvalidRequest(
                        f'customers.{code} is "set" but no value is stored yet', field=f"customers.{code}"
                    )
                merged["customers"][code] = old[code]
    return merged
