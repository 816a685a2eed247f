"""Managing upstream connection configs: validated, secrets sealed at rest, never shown back.

The config's shape belongs to the adapter; the service is handed its `validate` and `redact`."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.errors import InvalidRequest, NotFound
from creditctl.ports.clock import Clock
from creditctl.ports.secret_box import SecretBox
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.ports.upstream_configs import StoredConfig

SECRET_FIELDS = ("client_secret", "password", "customer_password")
DESTINATION_FIELDS = ("base_url", "token_url", "auth")  # where the secrets are sent
KEEP = "set"  # sending back "set" for a secret keeps the stored one


@dataclass(frozen=True, slots=True)
class ActiveConfig:
    name: str
    document: dict[str, Any]  # plaintext: hand it only to the adapter that needs it
    updated_at: datetime


def seal_document(document: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """The document as stored: secrets sealed, and numbers kept numbers (see _as_numbers)."""
    out = _as_numbers(copy.deepcopy(document))
    for name in SECRET_FIELDS:
        if isinstance(out.get(name), str) and out[name]:
            out[name] = box.seal(out[name])
    if isinstance(out.get("customers"), dict):
        out["customers"] = {code: box.seal(str(pw)) for code, pw in out["customers"].items()}
    return out


def _as_numbers(value: Any) -> Any:
    """A config's non-integer numbers (a rate, a timeout: never money) as floats. The request's JSON reads
    them as Decimal, which the stored JSON writes as a string: "48.5" read back is text, not a number, and
    the stored config no longer validated (PUT and GET answered 422)."""
    if isinstance(value, Decimal):
        return float(value)  # not money: rates and timeouts of an upstream config
    if isinstance(value, dict):
        return {k: _as_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_numbers(v) for v in value]
    return value


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
    actor: Actor = SYSTEM,
) -> dict[str, Any]:
    """Create or replace a config. Returns it redacted (as the audit event records it: secrets "set").

    A secret sent as "set" keeps its stored value, but only while the destination (base_url, token_url,
    auth) stays the same: a stored secret is never sent to a host it was not given for. The stored
    upstream token is forgotten on every change (the repository drops it with the config write)."""
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise InvalidRequest("a config name is 1-64 letters, digits, '-' or '_'", field="name")
    with uow:
        existing = uow.upstream_configs.get(name)
        # Open the stored secrets only to keep some: a config whose secrets no key opens any more
        # (a retired key, tampering) is repaired by sending every secret anew.
        keeps = existing is not None and _keeps_any(document)
        previous = open_document(existing.document, box) if existing and keeps else {}
        merged = _keep_unchanged_secrets(document, previous)
        parsed = validate(merged)  # raises InvalidRequest with every field's problems
        if keeps:
            _refuse_kept_secrets_for_a_new_destination(document, parsed, previous, validate, redact)
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
        shown = redact(parsed)
        uow.audit.append(
            "upstream_config.changed",
            at=uow.now(),
            actor=actor,
            subject={"config": name, "kind": kind},
            before=None if existing is None else {"updated_at": existing.updated_at},
            after={**shown, "secrets_replaced": _replaced_secrets(document)},
        )
        uow.commit()
    return shown


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


def active_config_version(kind: str, *, uow: UnitOfWork) -> str | None:
    """What changes whenever the active config of `kind` changes (or another becomes active).

    Cheap (one row read, no secret opened): callers compare it before every upstream call. The
    sealed document is part of it, so two writes within one clock tick still differ."""
    with uow:
        stored = uow.upstream_configs.active(kind)
    if stored is None:
        return None
    sealed = json.dumps(stored.document, sort_keys=True, default=str).encode()
    return f"{stored.name}@{stored.updated_at.isoformat()}#{hashlib.sha256(sealed).hexdigest()[:16]}"


def reseal_configs(*, uow: UnitOfWork, box: SecretBox) -> int:
    """Re-encrypt every stored config's secrets under the newest key (key rotation)."""
    with uow:
        configs = uow.upstream_configs.all()
        for c in configs:
            resealed = seal_document(open_document(c.document, box), box)
            uow.upstream_configs.reseal(c.name, resealed)  # the same config: its token stays
        uow.commit()
    return len(configs)


def _replaced_secrets(document: dict[str, Any]) -> list[str]:
    """The secrets this change sent anew (not "set"), by name only: an auditor sees a rotation happen
    without the secret ("customers.<code>" for a customer's password)."""
    named = [name for name in SECRET_FIELDS if document.get(name) not in (None, "", KEEP)]
    customers = document.get("customers")
    if isinstance(customers, dict):
        named += [f"customers.{code}" for code, pw in sorted(customers.items()) if pw not in (None, "", KEEP)]
    return named


def _keeps_any(document: dict[str, Any]) -> bool:
    customers = document.get("customers")
    return any(document.get(name) == KEEP for name in SECRET_FIELDS) or (
        isinstance(customers, dict) and KEEP in customers.values()
    )


def _kept_fields(document: dict[str, Any]) -> list[str]:
    kept = [name for name in SECRET_FIELDS if document.get(name) == KEEP]
    customers = document.get("customers")
    if isinstance(customers, dict):
        kept += [f"customers.{code}" for code, pw in customers.items() if pw == KEEP]
    return kept


def _refuse_kept_secrets_for_a_new_destination(
    document: dict[str, Any],
    parsed: Any,
    previous: dict[str, Any],
    validate: Callable[[dict[str, Any]], Any],
    redact: Callable[[Any], dict[str, Any]],
) -> None:
    """Compared as the adapter reads them (a defaulted token_url equals the same URL sent explicitly)."""
    new = redact(parsed)
    try:
        old = redact(validate(previous))
    except InvalidRequest:
        old = {}  # the stored config no longer validates: treat its destination as unknown
    changed = [f for f in DESTINATION_FIELDS if f not in old or old.get(f) != new.get(f)]
    if not changed:
        return
    why = (
        f"must be sent again: {', '.join(changed)} changed, and a stored secret is kept "
        '("set") only while the destination stays the same'
    )
    fields = _kept_fields(document)
    raise InvalidRequest(f"{', '.join(fields)} {why}", field=fields[0], errors={f: [why] for f in fields})


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
